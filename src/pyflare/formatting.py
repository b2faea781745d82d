"""Values shown to people, and the terminal list of traces built from them.

Durations, costs and token counts read the same wherever PyFlare shows them: in a
trace's waterfall and tree (:mod:`pyflare.views`), and in the one-row-per-trace table
that ``pyflare traces`` prints (:func:`traces_table`). Missing values show as ``—``
rather than 0, since 0 would claim a measurement that wasn't made.

Frames come from the store through pandas, so a cell may be None, ``NA``, ``NaT`` or
NaN; :func:`is_null`, :func:`opt_str` and :func:`opt_int` read any of them as missing.
Everything shown comes from user data, so strings reach rich as plain ``Text``, never
parsed as markup.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, SupportsInt

import pandas as pd
from rich import box
from rich.table import Table
from rich.text import Text

__all__ = [
    "NAME_CHARS",
    "format_cost",
    "format_duration",
    "format_tokens",
    "is_null",
    "opt_int",
    "opt_str",
    "traces_table",
    "truncate",
]

# Span and operation names are cut to this, so a long one can't push the numbers aside.
NAME_CHARS = 80
_DASH = "—"


def _three_digits(value: float, unit: str, limit: float) -> str | None:
    """``value`` with three significant digits, or None if it rounds up to ``limit``."""
    for decimals, below in ((2, 10.0), (1, 100.0), (0, 1000.0)):
        if round(value, decimals) < min(below, limit):
            return f"{value:.{decimals}f} {unit}"
    return None


def format_duration(ns: int | None) -> str:
    """A human duration: ``'850 µs'``, ``'12.3 ms'``, ``'1.24 s'``, ``'2m 03s'``; None is ``'—'``."""
    if ns is None:
        return _DASH
    if ns < 0:
        return "-" + format_duration(-ns)
    if ns < 1_000:
        return f"{ns} ns"
    for scale, unit in ((1e3, "µs"), (1e6, "ms"), (1e9, "s")):
        limit = 60.0 if unit == "s" else 1000.0
        text = _three_digits(ns / scale, unit, limit)
        if text is not None:
            return text
    seconds = round(ns / 1e9)
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    minutes = round(ns / 6e10)
    return f"{minutes // 60}h {minutes % 60:02d}m"


def format_cost(micros: int | None) -> str:
    """Dollars from micro-dollars: ``'$0.001234'`` below $1, ``'$12.35'`` above; None is ``'—'``."""
    if micros is None:
        return _DASH
    if micros < 0:
        return "-" + format_cost(-micros)
    if micros < 1_000_000:
        fraction = f"{micros:06d}".rstrip("0").ljust(2, "0")
        return f"$0.{fraction}"
    cents = (micros + 5_000) // 10_000
    return f"${cents // 100:,}.{cents % 100:02d}"


def format_tokens(tokens: int | None) -> str:
    """A token count with thousands separators; None is ``'—'``."""
    return _DASH if tokens is None else f"{tokens:,}"


def truncate(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_null(value: object) -> bool:
    """Whether a frame cell is missing: None, ``NA``, ``NaT`` or NaN."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def opt_str(value: object) -> str | None:
    """A frame cell as a str, or None when it is missing."""
    return None if is_null(value) else str(value)


def opt_int(value: object) -> int | None:
    """A frame cell as an int, or None when it is missing or unreadable as one."""
    if is_null(value):
        return None
    try:
        return int(value) if isinstance(value, SupportsInt) else int(str(value))
    except (OverflowError, ValueError):
        return None


def _status_cell(status: str | None, errors: int | None) -> Text:
    count = errors or (1 if status == "error" else 0)
    if count:
        return Text(f"✗ {count} error{'s' if count != 1 else ''}", style="red")
    return Text("✓ ok", style="green")


def _start_cell(value: object, today: str) -> str:
    """Start time in UTC: the time alone for today's traces, with the date otherwise."""
    if is_null(value):
        return _DASH
    try:
        stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if stamp.strftime("%Y-%m-%d") == today:
        return stamp.strftime("%H:%M:%S")
    return stamp.strftime("%Y-%m-%d %H:%M")


def traces_table(df: pd.DataFrame) -> Table:
    """A rich table listing traces, one row each (the frame a trace search returns)."""
    records: Iterator[dict[str, Any]] = (
        {str(k): v for k, v in r.items()} for r in df.to_dict("records")
    )
    rows = list(records)
    has_model = any(opt_str(r.get("model_id")) for r in rows)
    services = {opt_str(r.get("service_name")) for r in rows}
    # One service for every row (the usual case) goes in the title, not a column.
    one_service = next(iter(services)) if len(services) == 1 else None
    title = f"{len(rows):,} trace{'s' if len(rows) != 1 else ''}"
    if one_service:
        title += f" of {one_service}"
    today = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
    # A light box: in an 80-column terminal every character counts.
    table = Table(
        title=f"{title} (times UTC)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("trace", style="magenta", no_wrap=True, min_width=8)
    table.add_column("start", no_wrap=True, min_width=8)
    if one_service is None:
        table.add_column("service", overflow="ellipsis", max_width=24, no_wrap=True)
    # Names give way first when the terminal is narrow (cut with an ellipsis).
    table.add_column("operation", overflow="ellipsis", max_width=40)
    if has_model:
        table.add_column("model", style="cyan", overflow="ellipsis", max_width=28)
    table.add_column("spans", justify="right", no_wrap=True, min_width=5)
    table.add_column("duration", justify="right", style="yellow", no_wrap=True, min_width=8)
    table.add_column("status", no_wrap=True, min_width=6, overflow="ellipsis")
    table.add_column("tokens", justify="right", no_wrap=True, min_width=6)
    table.add_column("cost", justify="right", style="green", no_wrap=True, min_width=5)
    for r in rows:
        cells: list[str | Text] = [
            Text((opt_str(r.get("trace_id")) or "")[:8]),
            _start_cell(r.get("start_time"), today),
        ]
        if one_service is None:
            cells.append(Text(opt_str(r.get("service_name")) or ""))
        cells += [
            Text(truncate(opt_str(r.get("operation_name")) or "", NAME_CHARS)),
        ]
        if has_model:
            cells.append(Text(opt_str(r.get("model_id")) or ""))
        span_count = opt_int(r.get("span_count"))
        cells += [
            _DASH if span_count is None else f"{span_count:,}",
            format_duration(opt_int(r.get("duration_ns"))),
            _status_cell(opt_str(r.get("status_code")), opt_int(r.get("error_count"))),
            format_tokens(opt_int(r.get("total_tokens"))),
            format_cost(opt_int(r.get("cost_micros"))),
        ]
        table.add_row(*cells)
    return table
