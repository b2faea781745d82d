"""The ClickHouse SQL of the cost methods: summaries, breakdowns, days, model spans.

Same arguments, checks, messages and results as the DuckDB store's
(:mod:`pyflare.store._duckdb_costs`), in ClickHouse's words. Sums of Nullable
columns skip NULLs and are NULL when no row knows the value, as in DuckDB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyflare.store._cost_checks import (
    breakdown_column,
    checked_after,
    checked_filters,
    checked_group_by,
    checked_limit,
    checked_range,
)

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
    since, until = checked_range(since_ns, until_ns)
    where: list[str] = []
    if since is not None:
        where.append(f"{column} >= fromUnixTimestamp64Nano({{since:Int64}})")
        params["since"] = since
    if until is not None:
        where.append(f"{column} < fromUnixTimestamp64Nano({{until:Int64}})")
        params["until"] = until
    return where


def summary_query(
    since_ns: int | None,
    until_ns: int | None,
    group_by: Sequence[str],
    filters: Mapping[str, str],
) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of :meth:`SpanStore.cost_summary`."""
    group_by = checked_group_by(group_by)
    params: dict[str, Any] = {}
    where = time_range(since_ns, until_ns, "c.timestamp", params)
    for index, (name, value) in enumerate(checked_filters(filters)):
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
    column = breakdown_column(dimension)
    limit = checked_limit(limit)
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
    cursor = checked_after(after)
    if cursor is not None:
        where.append(
            "(start_time, trace_id, span_id) > "
            "(fromUnixTimestamp64Nano({after_start:Int64}), {after_trace:String}, {after_span:String})"
        )
        params.update(after_start=cursor[0], after_trace=cursor[1], after_span=cursor[2])
    limit = checked_limit(limit)
    sql = (
        f"SELECT * FROM traces WHERE {' AND '.join(['model_id IS NOT NULL', *where])} "
        "ORDER BY start_time, trace_id, span_id LIMIT {limit:UInt64}"
    )
    return sql, {**params, "limit": limit}
