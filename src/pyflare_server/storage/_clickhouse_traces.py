"""The ClickHouse SQL behind listing traces: summaries and the filters of a TraceQuery.

The same meaning as the DuckDB store's (:mod:`pyflare.store._trace_sql`), in
ClickHouse's words: ``argMinIf`` for DuckDB's ``arg_min(...) FILTER``, typed
``{name:Type}`` parameters. Aggregates skip NULL arguments in both engines,
so a root without a preview hands over to the earliest span that has one.
Queries run with ``final = 1``: redelivered spans not yet merged away count once.
"""

from __future__ import annotations

from typing import Any

from pyflare.errors import QueryError
from pyflare.store.base import TraceQuery

__all__ = ["count_sql", "summary_sql", "trace_filters"]


def _root_or_earliest(column: str) -> str:
    return (
        f"coalesce(argMinIfOrNull(t.{column}, t.start_time, t.parent_span_id IS NULL), "
        f"argMin(t.{column}, t.start_time))"
    )


_DURATION = "toUnixTimestamp64Nano(max(t.end_time)) - toUnixTimestamp64Nano(min(t.start_time))"
_STATUS = f"if(countIf(t.status_code = 'error') > 0, 'error', {_root_or_earliest('status_code')})"

_SUMMARY_COLUMNS = f"""
    t.trace_id AS trace_id,
    min(t.start_time) AS start_time,
    max(t.end_time) AS end_time,
    {_DURATION} AS duration_ns,
    {_root_or_earliest("service_name")} AS service_name,
    {_root_or_earliest("operation_name")} AS operation_name,
    {_STATUS} AS status_code,
    toInt64(count()) AS span_count,
    toInt64(countIf(t.status_code = 'error')) AS error_count,
    coalesce(argMinIfOrNull(t.model_id, t.start_time, ifNull(t.inference_type = 'llm', false)),
             argMin(t.model_id, t.start_time)) AS model_id,
    {_root_or_earliest("input_preview")} AS input_preview,
    {_root_or_earliest("output_preview")} AS output_preview,
    sum(t.input_tokens) AS input_tokens,
    sum(t.output_tokens) AS output_tokens,
    sum(t.total_tokens) AS total_tokens,
    sum(t.cost_micros) AS cost_micros
"""

SUMMARY_SQL = (
    "SELECT {columns} FROM traces AS t {where} GROUP BY t.trace_id {having} "
    "ORDER BY start_time DESC, trace_id LIMIT {{limit:UInt64}} OFFSET {{offset:UInt64}}"
)
COUNT_SQL = (
    "SELECT count() AS n FROM (SELECT t.trace_id FROM traces AS t {where} "
    "GROUP BY t.trace_id {having})"
)


def _ns(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise QueryError(f"{name} must be integer nanoseconds or None, got {value!r}")
    return value


def trace_filters(query: TraceQuery) -> tuple[str, str, dict[str, Any]]:
    """The span-level WHERE, the trace-level HAVING, and their parameters."""
    where: list[str] = []
    having: list[str] = []
    params: dict[str, Any] = {}
    bounds: list[str] = []
    if query.since_ns is not None:
        params["since"] = _ns("since_ns", query.since_ns)
        bounds.append("{column} >= fromUnixTimestamp64Nano({{since:Int64}})")
    if query.until_ns is not None:
        params["until"] = _ns("until_ns", query.until_ns)
        bounds.append("{column} < fromUnixTimestamp64Nano({{until:Int64}})")
    if bounds:
        # As in the DuckDB store: traces with a span in range, kept when their
        # earliest span is in range, with all their spans.
        in_range = " AND ".join(bounds)
        span_in_range = in_range.format(column="s.start_time")
        where.append(f"t.trace_id IN (SELECT s.trace_id FROM traces AS s WHERE {span_in_range})")
        having.append(in_range.format(column="min(t.start_time)"))
    if query.model_id is not None:
        having.append("countIf(t.model_id = {model:String}) > 0")
        params["model"] = str(query.model_id)
    for index, (key, value) in enumerate(query.attributes.items()):
        having.append(
            f"countIf(mapContains(t.attributes, {{ak{index}:String}}) "
            f"AND t.attributes[{{ak{index}:String}}] = {{av{index}:String}}) > 0"
        )
        params[f"ak{index}"] = str(key)
        params[f"av{index}"] = str(value)
    if query.text:
        having.append(
            "countIf(positionCaseInsensitiveUTF8(ifNull(t.input_preview, ''), {text:String}) > 0"
            " OR positionCaseInsensitiveUTF8(ifNull(t.output_preview, ''), {text:String}) > 0) > 0"
        )
        params["text"] = str(query.text)
    if query.service is not None:
        having.append(f"{_root_or_earliest('service_name')} = {{service:String}}")
        params["service"] = str(query.service)
    if query.status is not None:
        having.append(f"{_STATUS} = {{status:String}}")
        params["status"] = str(query.status)
    if query.min_duration_ns is not None:
        having.append(f"{_DURATION} >= {{min_duration:Int64}}")
        params["min_duration"] = _ns("min_duration_ns", query.min_duration_ns)
    where_sql = ("WHERE " + " AND ".join(where)) if where else ""
    having_sql = ("HAVING " + " AND ".join(having)) if having else ""
    return where_sql, having_sql, params


def summary_sql(query: TraceQuery) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of ``traces(query)``."""
    if query.limit < 0 or query.offset < 0:
        raise QueryError(
            f"limit and offset must not be negative, got {query.limit} and {query.offset}"
        )
    where, having, params = trace_filters(query)
    sql = SUMMARY_SQL.format(columns=_SUMMARY_COLUMNS, where=where, having=having)
    return sql, {**params, "limit": int(query.limit), "offset": int(query.offset)}


def count_sql(query: TraceQuery) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of ``count_traces(query)``."""
    where, having, params = trace_filters(query)
    return COUNT_SQL.format(where=where, having=having), params
