"""The ClickHouse SQL of the cost methods: summaries, breakdowns, days, model spans.

Same arguments, checks, messages and results as the DuckDB store's
(:mod:`pyflare.store._duckdb_costs`), in ClickHouse's words. Sums of Nullable
columns skip NULLs and are NULL when no row knows the value, as in DuckDB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyflare.errors import QueryError
from pyflare.store.base import COST_BREAKDOWNS, COST_DIMENSIONS, COST_PERIODS

__all__ = ["breakdown_query", "daily_query", "model_spans_query", "summary_query"]

_PERIODS = {
    "hour": "toDateTime64(toStartOfHour(c.timestamp), 9, 'UTC')",
    "day": "toDateTime64(toStartOfDay(c.timestamp), 9, 'UTC')",
}
_TOTALS = """
    toInt64(count()) AS requests,
    sum(c.input_tokens) AS input_tokens,
    sum(c.output_tokens) AS output_tokens,
    sum(c.total_tokens) AS total_tokens,
    sum(c.total_cost_micros) AS cost_micros,
    toInt64(count() - count(c.total_cost_micros)) AS unpriced_requests,
    toInt64(countIf(c.tokens_estimated)) AS estimated_token_requests
"""


def time_range(
    since_ns: int | None, until_ns: int | None, column: str, params: dict[str, Any]
) -> list[str]:
    """WHERE clauses keeping ``column`` in ``[since_ns, until_ns)``; fills ``params``."""
    where: list[str] = []
    for name, value, clause in (
        ("since_ns", since_ns, f"{column} >= fromUnixTimestamp64Nano({{since:Int64}})"),
        ("until_ns", until_ns, f"{column} < fromUnixTimestamp64Nano({{until:Int64}})"),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise QueryError(f"{name} must be integer nanoseconds or None, got {value!r}")
        where.append(clause)
        params[name.removesuffix("_ns")] = value
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise QueryError(f"until_ns ({until_ns}) is before since_ns ({since_ns})")
    return where


def summary_query(
    since_ns: int | None,
    until_ns: int | None,
    group_by: Sequence[str],
    filters: Mapping[str, str],
) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of :meth:`SpanStore.cost_summary`."""
    if isinstance(group_by, str):
        group_by = [group_by]
    allowed = (*COST_DIMENSIONS, *COST_PERIODS)
    for name in group_by:
        if name not in allowed:
            raise QueryError(f"cannot group costs by {name!r}; use any of {', '.join(allowed)}")
    if len(set(group_by)) != len(group_by):
        raise QueryError(f"group_by names a column twice: {list(group_by)}")
    params: dict[str, Any] = {}
    where = time_range(since_ns, until_ns, "c.timestamp", params)
    if not isinstance(filters, Mapping):
        raise QueryError(f"filters must be a mapping of column to value, got {filters!r}")
    for index, (name, value) in enumerate(filters.items()):
        if name not in COST_DIMENSIONS:
            raise QueryError(
                f"cannot filter costs on {name!r}; use any of {', '.join(COST_DIMENSIONS)}"
            )
        if not isinstance(value, str):
            raise QueryError(f"the filter on {name} must be a string, got {value!r}")
        where.append(f"c.{name} = {{f{index}:String}}")
        params[f"f{index}"] = value
    columns = [f"{_PERIODS[g]} AS `{g}`" if g in _PERIODS else f"c.{g} AS {g}" for g in group_by]
    quoted = [f"`{g}`" for g in group_by]
    periods = [f"`{g}`" for g in group_by if g in _PERIODS]
    others = [f"`{g}` NULLS LAST" for g in group_by if g not in _PERIODS]
    order = [*periods, "cost_micros DESC NULLS LAST", "requests DESC", *others]
    sql = (
        f"SELECT {', '.join([*columns, _TOTALS])} FROM costs AS c"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + (f" GROUP BY {', '.join(quoted)}" if group_by else "")
        + f" ORDER BY {', '.join(order)}"
    )
    return sql, params


def breakdown_query(
    dimension: str, since_ns: int | None, until_ns: int | None, limit: int
) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of :meth:`SpanStore.cost_breakdown`."""
    column = COST_BREAKDOWNS.get(dimension, dimension if dimension in COST_DIMENSIONS else None)
    if column is None:
        raise QueryError(
            f"cannot break costs down by {dimension!r}; use one of "
            f"{', '.join(COST_BREAKDOWNS)} (or a column: {', '.join(COST_DIMENSIONS)})"
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise QueryError(f"limit must be a positive integer, got {limit!r}")
    sql, params = summary_query(since_ns, until_ns, [column], {})
    return f"{sql} LIMIT {{limit:UInt64}}", {**params, "limit": limit}


def daily_query(
    since_ns: int | None, until_ns: int | None, model_id: str | None, team: str | None
) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of :meth:`SpanStore.daily_costs`."""
    filters = {k: v for k, v in (("model_id", model_id), ("team", team)) if v is not None}
    inner, params = summary_query(since_ns, until_ns, ["day"], filters)
    sql = (
        "SELECT toDate(`day`) AS `day`, ifNull(cost_micros, 0) AS cost_micros, requests "
        f"FROM ({inner}) ORDER BY `day`"
    )
    return sql, params


def model_spans_query(
    since_ns: int | None,
    until_ns: int | None,
    after: tuple[int, str, str] | None,
    limit: int,
) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of :meth:`SpanStore.model_spans`."""
    params: dict[str, Any] = {}
    where = time_range(since_ns, until_ns, "start_time", params)
    if after is not None:
        try:
            start, trace_id, span_id = after
        except (TypeError, ValueError):
            raise QueryError(
                f"after must be (start_ns, trace_id, span_id) of the last span read, got {after!r}"
            ) from None
        where.append(
            "(start_time, trace_id, span_id) > "
            "(fromUnixTimestamp64Nano({after_start:Int64}), {after_trace:String}, {after_span:String})"
        )
        params.update(after_start=int(start), after_trace=str(trace_id), after_span=str(span_id))
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise QueryError(f"limit must be a positive integer, got {limit!r}")
    sql = (
        f"SELECT * FROM traces WHERE {' AND '.join(['model_id IS NOT NULL', *where])} "
        "ORDER BY start_time, trace_id, span_id LIMIT {limit:UInt64}"
    )
    return sql, {**params, "limit": limit}
