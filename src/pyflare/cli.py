"""The ``pyflare`` command.

``pyflare traces``, ``pyflare traces TRACE_ID``, ``pyflare sql "…"`` and
``pyflare version`` read the local store. Commands of optional packages (the
server's ``server``, ``worker``, ``demo``, ``keys``) join through the
``pyflare.commands`` entry-point group: each entry point names a function
``register(subparsers)`` that adds its sub-commands.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from pyflare._version import __version__
from pyflare.errors import PyFlareError

__all__ = ["main"]

ENTRY_POINT_GROUP = "pyflare.commands"
# Commands that other PyFlare packages provide, and the extra that brings them.
_OPTIONAL_COMMANDS = {
    "server": "server",
    "worker": "server",
    "demo": "server",
    "keys": "server",
}


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False)


def _cmd_version(args: argparse.Namespace) -> int:
    import duckdb
    from opentelemetry.sdk.version import __version__ as otel_sdk_version

    sys.stdout.write(
        f"pyflare {__version__}\n"
        f"opentelemetry-sdk {otel_sdk_version}\n"
        f"duckdb {duckdb.__version__}\n"
        f"python {sys.version.split()[0]}\n"
    )
    return 0


def _cmd_traces(args: argparse.Namespace) -> int:
    from pyflare import analysis

    console = _console()
    if args.trace_id:
        view = analysis.get_trace(args.trace_id, store=args.store)
        if view.span_count == 0:
            console.print(f"no trace {args.trace_id} in the store")
            return 1
        console.print(view)
        return 0
    from pyflare.views import traces_table

    frame = analysis.traces(
        service=args.service,
        model_id=args.model,
        status=args.status,
        since=args.since,
        min_duration=args.min_duration,
        text=args.text,
        limit=args.limit,
        store=args.store,
    )
    console.print(traces_table(frame))
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    from pyflare import analysis

    frame = analysis.sql(args.query, max_rows=args.max_rows, store=args.store)
    if args.format == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", date_unit="ns"))
        sys.stdout.write("\n")
    else:
        from rich.table import Table

        table = Table(show_lines=False)
        for column in frame.columns:
            table.add_column(str(column))
        for row in frame.itertuples(index=False):
            table.add_row(*(_cell(value) for value in row))
        _console().print(table)
    return 0


def _cell(value: object) -> str:
    """A table cell: missing values (None, pandas' NA, NaT) as blanks."""
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    return str(value)


def _optional_command(name: str, extra: str) -> Callable[[argparse.Namespace], int]:
    def missing(args: argparse.Namespace) -> int:
        sys.stderr.write(
            f'`pyflare {name}` comes with PyFlare\'s server: pip install "pyflare[{extra}]"\n'
        )
        if importlib.util.find_spec("pyflare_server") is not None:
            # The package is there but registered no such command: say so, rather
            # than send the user round in circles with the same install line.
            sys.stderr.write(
                f"(pyflare_server {__version__} is installed but has no `{name}` command yet)\n"
            )
        return 2

    return missing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyflare",
        description="PyFlare: observability for AI/ML workloads. Reads the local store "
        "(PYFLARE_STORE, default ./.pyflare/pyflare.duckdb).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what PyFlare does")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    version = commands.add_parser("version", help="print versions")
    version.set_defaults(handler=_cmd_version)

    traces = commands.add_parser("traces", help="list recent traces, or show one as a tree")
    traces.add_argument("trace_id", nargs="?", help="show this trace as a tree")
    traces.add_argument("--service", help="root span's service")
    traces.add_argument("--model", help="a span's model id")
    traces.add_argument("--status", choices=["ok", "error", "unset"])
    traces.add_argument("--since", help="e.g. 15m, 1h, 7d or an ISO 8601 time")
    traces.add_argument("--min-duration", help="e.g. 500ms, 2s")
    traces.add_argument("--text", help="search input and output previews")
    traces.add_argument("--limit", type=int, default=20)
    traces.add_argument("--store", help="duckdb:///path/to/file.duckdb")
    traces.set_defaults(handler=_cmd_traces)

    sql = commands.add_parser("sql", help="run a read-only SELECT over PyFlare's tables")
    sql.add_argument("query")
    sql.add_argument("--format", choices=["table", "csv", "json"], default="table")
    sql.add_argument("--max-rows", type=int, default=10_000)
    sql.add_argument("--store", help="duckdb:///path/to/file.duckdb")
    sql.set_defaults(handler=_cmd_sql)

    registered = set()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register = entry.load()
            register(commands)
            registered.add(entry.name)
        except Exception as exc:  # a broken plug-in must not break the CLI
            logging.getLogger(__name__).warning(
                "PyFlare command plug-in %r failed to load: %r", entry.name, exc
            )
    for name, extra in _OPTIONAL_COMMANDS.items():
        if name not in commands.choices:
            placeholder = commands.add_parser(name, help=f"(needs pyflare[{extra}])")
            placeholder.set_defaults(handler=_optional_command(name, extra))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        result: int = handler(args)
        return result
    except PyFlareError as exc:
        sys.stderr.write(f"pyflare: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `pyflare traces | head`: the reader left. Point stdout at devnull so that
        # the interpreter's final flush doesn't complain as well.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
