"""A real PyFlare server on free ports, in a background thread, for tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from pyflare.errors import StoreError
from pyflare.store.base import SpanStore
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.app import ServerCore
from pyflare_server.server import Listeners, serve
from pyflare_server.settings import ServerSettings


@dataclass
class LiveServer:
    listeners: Listeners
    core: ServerCore
    store_path: Path

    @property
    def http(self) -> str:
        return "http://" + self.listeners.otlp_http

    @property
    def api(self) -> str:
        return "http://" + self.listeners.api

    @property
    def grpc(self) -> str:
        return self.listeners.otlp_grpc


@contextmanager
def live_server(
    tmp_path: Path,
    config: dict[str, Any] | None = None,
    *,
    store: SpanStore | None = None,
    **overrides: Any,
) -> Iterator[LiveServer]:
    """Run ``serve()`` until the block ends (then drain and stop it, as SIGTERM does)."""
    store_path = tmp_path / "server.duckdb"
    options: dict[str, Any] = {
        "store": f"duckdb:///{store_path}",
        "host": "127.0.0.1",
        "otlp_http_port": 0,
        "otlp_grpc_port": 0,
        "api_port": 0,
        **overrides,
    }
    # Decoding in this process unless the test asks for workers (they take a
    # second to start).
    config = {**(config or {})}
    collector = config.setdefault("collector", {})
    collector.setdefault("otlp", {}).setdefault("decode_workers", 0)
    config_file = tmp_path / "pyflare.yaml"
    config_file.write_text(yaml.safe_dump(config))
    settings = ServerSettings.load(config_file, env={}, overrides=options)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    found: list[tuple[Listeners, ServerCore]] = []
    failure: list[BaseException] = []

    def on_ready(listeners: Listeners, core: ServerCore) -> None:
        found.append((listeners, core))
        started.set()

    def run() -> None:
        try:
            loop.run_until_complete(serve(settings, stop=stop, on_ready=on_ready, store=store))
        except BaseException as exc:
            failure.append(exc)
        finally:
            started.set()
            loop.close()

    thread = threading.Thread(target=run, name="pyflare-test-server", daemon=True)
    thread.start()
    started.wait(30)
    if failure:
        raise failure[0]
    listeners, core = found[0]
    try:
        yield LiveServer(listeners, core, store_path)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        assert not thread.is_alive(), "the server did not stop"
        if failure:
            raise failure[0]


class FlakyStore(DuckDBSpanStore):
    """A real DuckDB store whose writes can be made to fail or to wait."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.fail = False
        self.gate = threading.Event()
        self.gate.set()

    def write(self, batch: pa.Table) -> int:
        self.gate.wait(30)
        if self.fail:
            raise StoreError("disk full (test)")
        return super().write(batch)
