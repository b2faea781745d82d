"""The ``pyflare`` command.

``pyflare traces``, ``pyflare traces TRACE_ID``, ``pyflare sql "…"``,
``pyflare costs`` (and its ``breakdown``, ``forecast``, ``recompute`` and
``prices`` sub-commands) and ``pyflare version`` read the local store. Commands of optional packages (the
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


def _usd(micros: object) -> str:
    """Micro-dollars for a table: $1.234567 (exact); blank when not priced."""
    import pandas as pd

    if micros is None or micros is pd.NA:
        return "unpriced"
    whole, fraction = divmod(int(micros), 1_000_000)  # type: ignore[call-overload]
    return f"${whole:,}.{fraction:06d}"


def _group_names(value: str | None) -> list[str]:
    return [name.strip() for name in (value or "").split(",") if name.strip()]


def _cost_table(frame: Any, title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    money = {"cost_micros"}
    hidden = {"cost_usd"}
    for column in frame.columns:
        if column not in hidden:
            table.add_column(str(column), justify="right" if column != frame.columns[0] else "left")
    for row in frame.itertuples(index=False):
        cells = [
            _usd(value) if column in money else _cell(value)
            for column, value in zip(frame.columns, row, strict=True)
            if column not in hidden
        ]
        table.add_row(*cells)
    return table


def _cmd_costs(args: argparse.Namespace) -> int:
    from pyflare import analysis

    group_by = _group_names(args.group_by)
    frame = analysis.costs(group_by, since=args.since, until=args.until, store=args.store)
    totals = analysis.costs(None, since=args.since, until=args.until, store=args.store)
    console = _console()
    if group_by:
        console.print(_cost_table(frame, f"Cost by {', '.join(group_by)} since {args.since}"))
    total = totals.to_dict("records")[0]
    console.print(
        f"total {_usd(total['cost_micros']) if total['requests'] else '$0.000000'} "
        f"over {total['requests']} calls ({total['unpriced_requests']} unpriced, "
        f"{total['estimated_token_requests']} with estimated tokens)"
    )
    return 0


def _cmd_costs_breakdown(args: argparse.Namespace) -> int:
    from pyflare import analysis
    from pyflare.store.base import COST_BREAKDOWNS

    column = COST_BREAKDOWNS[args.by]
    frame = analysis.costs(column, since=args.since, until=args.until, store=args.store)
    title = f"Top {args.limit} {args.by}s by cost since {args.since}"
    _console().print(_cost_table(frame.head(args.limit), title))
    return 0


def _cmd_costs_forecast(args: argparse.Namespace) -> int:
    from pyflare import analysis
    from pyflare.cost.forecast import forecast_daily

    handle, owned = analysis.open_local_store(args.store)
    try:
        days, costs = analysis.daily_cost_series(
            handle, model_id=args.model, team=args.team, history_days=args.history
        )
    finally:
        if owned:
            handle.close()
    scope = " ".join(f"{k}={v}" for k, v in (("model", args.model), ("team", args.team)) if v)
    if not days:
        sys.stderr.write(
            f"pyflare: no costs in the last {args.history} complete days ({scope or 'all calls'})"
            "; nothing to forecast\n"
        )
        return 1
    forecast = forecast_daily(days, costs, args.days).to_dict()
    from rich.table import Table

    table = Table()
    for column in ("day", "cost", "lower", "upper"):
        table.add_column(column, justify="left" if column == "day" else "right")
    for point in forecast["points"]:
        table.add_row(
            str(point["day"]),
            _usd(point["cost_micros"]),
            _usd(point["lower_micros"]),
            _usd(point["upper_micros"]),
        )
    console = _console()
    console.print(f"Daily cost forecast ({scope or 'all calls'}, {forecast['method']})")
    console.print(table)
    mape = forecast.get("mape_percent")
    console.print(
        f"next {args.days} days: {_usd(forecast['total_cost_micros'])}; backtest MAPE: "
        f"{'n/a' if mape is None else f'{mape:.1f}%'} over {forecast['backtest_days']} days"
    )
    return 0


def _cmd_costs_recompute(args: argparse.Namespace) -> int:
    from pyflare import analysis

    price_book = None
    if args.prices:
        from pyflare.cost.prices import PriceBook

        price_book = PriceBook.from_yaml(args.prices)
    result = analysis.recompute_costs(
        args.since, args.until, store=args.store, price_book=price_book
    )
    sys.stdout.write(
        f"repriced {result['spans']} model calls: {result['spans_changed']} spans changed, "
        f"{result['cost_rows']} cost rows written\n"
        f"total cost {_usd(result['cost_micros_before'])} -> {_usd(result['cost_micros_after'])}; "
        f"unpriced calls {result['unpriced_before']} -> {result['unpriced_after']}\n"
    )
    return 0


def _cmd_costs_prices(args: argparse.Namespace) -> int:
    from pyflare.cost.prices import PriceBook, update_catalogue

    if args.update:
        count = update_catalogue(url=args.url, save_to=args.save)
        saved = f", saved to {args.save}" if args.save else ""
        sys.stdout.write(f"price catalogue updated: {count} providers{saved}\n")
        if not args.model:
            return 0
    if not args.model:
        sys.stderr.write("pyflare: name a model (pyflare costs prices gpt-4o) or pass --update\n")
        return 2
    book = PriceBook.from_yaml(args.prices) if args.prices else PriceBook.default()
    schedule = book.schedule(args.model, args.provider)
    if not schedule:
        sys.stdout.write(
            f"{args.model}: no price (unpriced: its calls get no cost, never $0); add it to a "
            "price file (pyflare costs prices MODEL --prices prices.yaml)\n"
        )
        return 1
    from rich.table import Table

    table = Table(title=f"Prices of {args.model} (per million tokens)")
    for column in (
        "model",
        "provider",
        "from",
        "input",
        "output",
        "cached input",
        "per call",
        "source",
    ):
        table.add_column(column)
    current = book.lookup(args.model, args.provider)
    for price in schedule:
        since = "always" if not price.effective_from_ns else _iso_day(price.effective_from_ns)
        marker = " (now)" if price is current else ""
        cached = price.cached_input_micros_per_mtok
        table.add_row(
            price.model_id,
            price.provider or "",
            since + marker,
            _usd(price.input_micros_per_mtok),
            _usd(price.output_micros_per_mtok),
            "" if cached is None else _usd(cached),
            _usd(price.request_micros),
            price.source,
        )
    _console().print(table)
    return 0


def _iso_day(ns: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


def _add_costs(commands: Any) -> None:
    from pyflare.store.base import COST_BREAKDOWNS

    costs = commands.add_parser("costs", help="what model calls cost, by model, user, feature…")
    costs.add_argument("--since", default="24h", help="e.g. 24h, 7d or an ISO 8601 time")
    costs.add_argument("--until", help="e.g. 1h or an ISO 8601 time (default: now)")
    costs.add_argument(
        "--group-by",
        default="model_id",
        help="comma list of model_id, user_id, feature_id, team, environment, provider, "
        "service_name, hour, day",
    )
    costs.add_argument("--store", help="duckdb:///path/to/file.duckdb")
    costs.set_defaults(handler=_cmd_costs)
    sub = costs.add_subparsers(dest="costs_command", metavar="SUBCOMMAND")

    breakdown = sub.add_parser("breakdown", help="the costliest users, models, features or teams")
    breakdown.add_argument("--by", choices=sorted(COST_BREAKDOWNS), default="model")
    breakdown.add_argument("--since", default="24h")
    breakdown.add_argument("--until")
    breakdown.add_argument("--limit", type=int, default=10)
    breakdown.add_argument("--store", help="duckdb:///path/to/file.duckdb")
    breakdown.set_defaults(handler=_cmd_costs_breakdown)

    forecast = sub.add_parser("forecast", help="forecast daily cost, with prediction intervals")
    forecast.add_argument("--model", help="one model's calls (default: all)")
    forecast.add_argument("--team", help="one team's calls")
    forecast.add_argument("--days", type=int, default=30, help="days ahead (default 30)")
    forecast.add_argument("--history", type=int, default=90, help="days of history to fit on")
    forecast.add_argument("--store", help="duckdb:///path/to/file.duckdb")
    forecast.set_defaults(handler=_cmd_costs_forecast)

    recompute = sub.add_parser("recompute", help="reprice stored calls with the current prices")
    recompute.add_argument("--since", required=True, help="e.g. 2026-11-01 or 7d")
    recompute.add_argument("--until", help="default: now")
    recompute.add_argument("--prices", help="a YAML price file to price with")
    recompute.add_argument("--store", help="duckdb:///path/to/file.duckdb")
    recompute.set_defaults(handler=_cmd_costs_recompute)

    prices = sub.add_parser("prices", help="which price applies to a model, and from where")
    prices.add_argument("model", nargs="?")
    prices.add_argument("--provider", help="e.g. openai, anthropic, azure")
    prices.add_argument("--prices", help="a YAML price file (user prices over the catalogue)")
    prices.add_argument("--update", action="store_true", help="download the latest catalogue")
    prices.add_argument("--url", help="where --update downloads from (default: genai-prices')")
    prices.add_argument("--save", help="with --update: also save the catalogue to this file")
    prices.set_defaults(handler=_cmd_costs_prices)


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

    _add_costs(commands)

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
