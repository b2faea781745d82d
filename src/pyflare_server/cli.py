"""The server's commands, added to ``pyflare`` through the ``pyflare.commands`` entry point.

``pyflare server`` runs the receivers, the pipeline and the query API;
``pyflare demo`` runs the same server and feeds it generated traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

__all__ = ["register"]


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML settings (collector.yaml shape)")
    parser.add_argument(
        "--store",
        help="where spans go: duckdb:///path/to/file.duckdb (default ./.pyflare/server.duckdb)",
    )
    parser.add_argument("--host", help="interface every listener binds (default 0.0.0.0)")
    parser.add_argument("--otlp-http-port", type=int, metavar="PORT", help="default 4318")
    parser.add_argument("--otlp-grpc-port", type=int, metavar="PORT", help="default 4317")
    parser.add_argument("--api-port", type=int, metavar="PORT", help="default 8080")
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow auth off (server.auth.enabled: false) on a non-loopback address",
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = ("store", "host", "otlp_http_port", "otlp_grpc_port", "api_port", "log_level")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _load(args: argparse.Namespace, **defaults: Any) -> Any:
    from pyflare.errors import ConfigError
    from pyflare_server.settings import ServerSettings

    given = _overrides(args)
    try:
        settings = ServerSettings.load(args.config, overrides={**defaults, **given})
        if getattr(args, "insecure", False):
            from pyflare_server.auth.exposure import with_insecure

            settings = with_insecure(settings)
        return settings
    except ConfigError as exc:
        # Name the flag the user typed rather than the settings' override key.
        message = str(exc)
        for name in given:
            flag = "--" + name.replace("_", "-")
            message = message.replace(f"override {name}", flag)
        raise ConfigError(message) from exc


def _configure_logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


def _cmd_server(args: argparse.Namespace) -> int:
    from pyflare_server.server import Listeners, run_server

    settings = _load(args)
    _configure_logging(settings.server.log_level)

    def ready(listeners: Listeners, core: object) -> None:
        sys.stderr.write(
            f"PyFlare server ready: OTLP/HTTP http://{listeners.otlp_http}, "
            f"OTLP/gRPC {listeners.otlp_grpc}, API http://{listeners.api} "
            f"(store {settings.server.store}); Ctrl-C or SIGTERM stops it\n"
        )
        sys.stderr.flush()

    run_server(settings, on_ready=ready)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pyflare_server.demo_command import run_demo

    # A demo listens on this machine only, unless --host says otherwise.
    settings = _load(args, store="duckdb:///./.pyflare/demo.duckdb", host="127.0.0.1")
    _configure_logging(settings.server.log_level if args.log_level else "warning")
    return asyncio.run(
        run_demo(
            settings,
            duration_s=args.duration,
            rate=args.rate,
            seed=args.seed,
            backfill_s=args.history * 60,
        )
    )


def register(subparsers: Any) -> None:
    """Add ``server`` and ``demo`` to the ``pyflare`` command."""
    server = subparsers.add_parser(
        "server",
        help="run PyFlare's server: OTLP/HTTP :4318, OTLP/gRPC :4317, query API :8080",
        description="Receive OTLP from any OpenTelemetry SDK or Collector, process it and "
        "store it. Settings: flags > PYFLARE_* variables > --config file > defaults.",
    )
    _add_server_flags(server)
    server.set_defaults(handler=_cmd_server)

    demo = subparsers.add_parser(
        "demo",
        help="run the server and feed it realistic generated traffic",
        description="Start PyFlare's server on ./.pyflare/demo.duckdb, send it the last "
        "minutes of traffic of a RAG chatbot, an agent and a classifier whose inputs drift, "
        "show what arrived, then keep sending live traffic.",
    )
    _add_server_flags(demo)
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="live traffic after the history, then stop (default: until Ctrl-C)",
    )
    demo.add_argument(
        "--history",
        type=float,
        default=10.0,
        metavar="MINUTES",
        help="minutes of past traffic sent first (default 10)",
    )
    demo.add_argument("--rate", type=float, default=20.0, help="traces per second (default 20)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the traffic")
    demo.set_defaults(handler=_cmd_demo)

    from pyflare_server.keys_command import register_keys

    register_keys(subparsers)

    # pyflare worker (the scaled mode's consumer group): see worker_command.
    __import__("pyflare_server.worker_command", fromlist=["register"]).register(subparsers)
