"""Running a worker in a thread for tests, and the settings of a scaled deployment."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.settings import ServerSettings
from pyflare_server.worker import Worker

WAIT_S = 60.0
# Tests reconnect quickly after an outage (librdkafka backs off up to 10 s by default).
FAST_RECONNECT = {"reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500}


def scaled_settings(bootstrap: str, store_path: Path, **collector: Any) -> ServerSettings:
    config: dict[str, Any] = {
        "collector": {
            "kafka": {
                "brokers": [bootstrap],
                "topics": {"partitions": 2, "replication_factor": 1},
                "consumer": {"session_timeout_ms": 6000, "max_wait_ms": 100},
            },
            **collector,
        },
        # The receiver in these tests is reached in process: no credentials.
        "server": {
            "store": f"duckdb:///{store_path}",
            "auth": {"enabled": False, "insecure": True},
        },
    }
    return ServerSettings.model_validate(config)


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Poll ``check`` until true; fail naming ``what`` if it never becomes true."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@contextmanager
def running_worker(settings: ServerSettings, store: Any, **options: Any) -> Iterator[Worker]:
    """A Worker consuming in a background thread until the block ends."""
    options.setdefault("consumer_extra", FAST_RECONNECT)
    worker = Worker(settings, store, **options)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:  # surfaced by the test
            failures.append(exc)

    thread = threading.Thread(target=run, name="test-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive(), "the worker did not stop"
    if failures:
        raise failures[0]


def span_count(store: DuckDBSpanStore) -> int:
    return int(store.sql("SELECT count(*) AS n FROM traces").column("n")[0].as_py())
