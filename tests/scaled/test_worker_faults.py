"""Faults: a worker killed mid-batch, brokers down at start and mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml
from _kafka_broker import Broker, free_port
from _kafka_otlp_requests import traces
from _kafka_worker import FAST_RECONNECT, running_worker, scaled_settings, span_count, wait_for
from starlette.testclient import TestClient
from test_worker import produce

from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.app import create_app
from pyflare_server.pipeline.kafka import KafkaQueue

PROTOBUF = {"Content-Type": "application/x-protobuf"}

# A worker that dies (os._exit) right after its second store write, before the commit.
CRASHING_WORKER = """
import os, sys
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.settings import ServerSettings
from pyflare_server.worker import Worker

settings = ServerSettings.load(sys.argv[1], env={})
store = DuckDBSpanStore(settings.store_path)
real_write = store.write
writes = []

def write(batch):
    real_write(batch)
    writes.append(batch.num_rows)
    if len(writes) == 2:
        os._exit(9)

store.write = write
Worker(settings, store, processors=[]).run()
"""


def _config(tmp_path: Path, broker: Broker, **consumer: int) -> Path:
    config = {
        "collector": {
            "kafka": {
                "brokers": [broker.bootstrap],
                "topics": {"partitions": 2, "replication_factor": 1},
                "consumer": {"session_timeout_ms": 6000, "max_wait_ms": 100, **consumer},
            }
        },
        "server": {"store": f"duckdb:///{tmp_path / 'w.duckdb'}"},
    }
    path = tmp_path / "pyflare.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _produce_traces(broker: Broker, n: int) -> set[tuple[str, str]]:
    messages = []
    spans = set()
    for _ in range(n):
        request, _ = traces(1, 3)
        for span in request.resource_spans[0].scope_spans[0].spans:
            spans.add((span.trace_id.hex(), span.span_id.hex()))
        messages.append((None, request.SerializeToString()))
    produce(broker.bootstrap, "pyflare.traces", messages)
    return spans


def _stored(path: Path) -> list[tuple[str, str]]:
    store = DuckDBSpanStore(str(path))
    try:
        rows = store.sql("SELECT trace_id, span_id FROM traces").to_pylist()
    finally:
        store.close()
    return [(row["trace_id"], row["span_id"]) for row in rows]


def test_a_worker_dying_between_its_write_and_its_commit_loses_and_repeats_nothing(
    broker: Broker, tmp_path: Path
) -> None:
    config = _config(tmp_path, broker, max_batch_spans=5)
    sent = _produce_traces(broker, 20)
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_WORKER, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == 9, crashed.stderr
    assert 0 < len(_stored(tmp_path / "w.duckdb")) < len(sent)  # died mid-stream
    settings = scaled_settings(broker.bootstrap, tmp_path / "w.duckdb")
    store = DuckDBSpanStore(str(tmp_path / "w.duckdb"))
    with running_worker(settings, store, processors=[]):
        wait_for(lambda: span_count(store) == len(sent), "every span")
    store.close()
    stored = _stored(tmp_path / "w.duckdb")
    assert sorted(stored) == sorted(sent)  # each exactly once


def _metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_pyflare_worker_killed_mid_run_and_restarted_stores_every_span_once(
    broker: Broker, tmp_path: Path
) -> None:
    config = _config(tmp_path, broker, max_batch_spans=3)
    sent = _produce_traces(broker, 60)
    port = free_port()
    pyflare = str(Path(sys.executable).with_name("pyflare"))
    first = subprocess.Popen(
        [pyflare, "worker", "--config", str(config), "--metrics-port", str(port)],
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    try:
        wait_for(lambda: _metric(port, "pyflare_worker_commits_total") >= 2, "some commits")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert 0 < len(_stored(tmp_path / "w.duckdb")) < len(sent)  # killed mid-stream
    settings = scaled_settings(broker.bootstrap, tmp_path / "w.duckdb")
    store = DuckDBSpanStore(str(tmp_path / "w.duckdb"))
    with running_worker(settings, store, processors=[]):
        wait_for(lambda: span_count(store) == len(sent), "every span")
    store.close()
    assert sorted(_stored(tmp_path / "w.duckdb")) == sorted(sent)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYFLARE_", "OTEL_"))}


def test_brokers_down_at_start_and_mid_run_give_503_and_lose_nothing_accepted(
    tmp_path: Path,
) -> None:
    broker = Broker(tmp_path)  # not started yet: down at start
    settings = scaled_settings(broker.bootstrap, tmp_path / "s.duckdb")
    store = DuckDBSpanStore(str(tmp_path / "s.duckdb"))
    queue = KafkaQueue(
        settings.collector.kafka, delivery_timeout_s=1.5, client_config=FAST_RECONNECT
    )
    accepted: set[str] = set()

    def post(client: TestClient) -> int:
        request, ids = traces(1, 2)
        response = client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
        if response.status_code == 200:
            accepted.update(ids)
        else:
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]
        return response.status_code

    try:
        with TestClient(create_app(settings, store=store, queue=queue)) as client:
            assert post(client) == 503
            broker.start()
            wait_for(lambda: post(client) == 200, "the receiver to recover")
            with running_worker(settings, store, processors=[]):
                wait_for(lambda: span_count(store) == 2 * len(accepted), "the first spans")
                broker.stop()  # mid-run
                assert post(client) == 503
                broker.start()  # the same port, empty
                wait_for(lambda: post(client) == 200, "the receiver to recover again")
                post(client)
                wait_for(lambda: span_count(store) == 2 * len(accepted), "every accepted span")
    finally:
        broker.stop()
    stored = {row["trace_id"] for row in store.sql("SELECT trace_id FROM traces").to_pylist()}
    assert stored == accepted
    store.close()
