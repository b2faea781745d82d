"""``pyflare worker``: run one member of the scaled mode's consumer group.

Reads ``collector.kafka`` (brokers, topics, consumer group) and
``server.store`` from the same settings as ``pyflare server``; runs until
SIGTERM or Ctrl-C, then commits what it stored and leaves the group. Its
self-metrics, consumer lag included, are served as Prometheus text at
``http://HOST:PORT/metrics`` (``--metrics-port``, default 9464; 0 turns it off).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

__all__ = ["register", "run_worker"]

DEFAULT_METRICS_PORT = 9464


def _open_store(url: str) -> Any:
    """The store ``url`` names (DuckDB, ClickHouse or chdb)."""
    from pyflare_server.storage.factory import open_server_store

    return open_server_store(url)


def run_worker(settings: Any, *, metrics_port: int | None = None, metrics_host: str = "") -> int:
    """Run a :class:`~pyflare_server.worker.Worker` until a signal stops it."""
    from prometheus_client import start_http_server

    from pyflare.errors import ConfigError
    from pyflare_server.worker import Worker

    if not settings.collector.kafka.brokers:
        raise ConfigError(
            "pyflare worker needs Kafka: set collector.kafka.brokers in the --config file "
            "or PYFLARE_COLLECTOR__KAFKA__BROKERS (host:port,host:port)"
        )
    store = _open_store(settings.server.store)
    try:
        worker = Worker(settings, store)

        def stop(signum: int, frame: object) -> None:
            worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if metrics_port:
            start_http_server(metrics_port, addr=metrics_host, registry=worker.telemetry.registry)
        brokers = ",".join(settings.collector.kafka.brokers)
        sys.stderr.write(
            f"PyFlare worker ready: group {settings.collector.kafka.consumer.group_id} on "
            f"{brokers}, store {settings.server.store}; SIGTERM or Ctrl-C stops it\n"
        )
        sys.stderr.flush()
        worker.run()
    finally:
        store.close()
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from pyflare_server.cli import _configure_logging, _load

    settings = _load(args)
    _configure_logging(settings.server.log_level)
    port = DEFAULT_METRICS_PORT if args.metrics_port is None else args.metrics_port
    return run_worker(settings, metrics_port=port, metrics_host=settings.api_host)


def register(subparsers: Any) -> None:
    """Add ``worker`` to the ``pyflare`` command."""
    worker = subparsers.add_parser(
        "worker",
        help="consume PyFlare's Kafka topics, process and store (the scaled mode)",
        description="Join the consumer group of collector.kafka, run the processors (cost, "
        "drift) and write the store; offsets are committed after the store write. "
        "Settings: flags > PYFLARE_* variables > --config file > defaults.",
    )
    worker.add_argument("--config", metavar="FILE", help="YAML settings (collector.yaml shape)")
    worker.add_argument(
        "--store",
        help="where rows go: duckdb:///path/to/file.duckdb (default ./.pyflare/server.duckdb)",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help=f"serve /metrics (consumer lag…) on this port (default {DEFAULT_METRICS_PORT}; 0: off)",
    )
    worker.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )
    worker.set_defaults(
        handler=_cmd_worker, host=None, otlp_http_port=None, otlp_grpc_port=None, api_port=None
    )
