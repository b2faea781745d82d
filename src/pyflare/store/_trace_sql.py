"""The SQL behind listing traces: a trace's summary columns and the filters of a TraceQuery.

Shared by the DuckDB store's ``traces()`` and ``count_traces()``.
"""

from __future__ import annotations

from typing import Any

from pyflare.store.base import TraceQuery

__all__ = ["SUMMARY_COLUMNS", "trace_filters"]

SUMMARY_COLUMNS = """
    trace_id,
    min(start_time) AS start_time,
    max(end_time) AS end_time,
    CAST(epoch_ns(max(end_time)) - epoch_ns(min(start_time)) AS BIGINT) AS duration_ns,
    coalesce(arg_min(service_name, start_time) FILTER (WHERE parent_span_id IS NULL),
             arg_min(service_name, start_time)) AS service_name,
    coalesce(arg_min(operation_name, start_time) FILTER (WHERE parent_span_id IS NULL),
             arg_min(operation_name, start_time)) AS operation_name,
    CASE WHEN bool_or(status_code = 'error') THEN 'error'
         ELSE coalesce(arg_min(status_code, start_time) FILTER (WHERE parent_span_id IS NULL),
                       arg_min(status_code, start_time)) END AS status_code,
    CAST(count(*) AS BIGINT) AS span_count,
    CAST(count(*) FILTER (WHERE status_code = 'error') AS BIGINT) AS error_count,
    coalesce(
        arg_min(model_id, start_time) FILTER (WHERE model_id IS NOT NULL AND inference_type = 'llm'),
        arg_min(model_id, start_time) FILTER (WHERE model_id IS NOT NULL)
    ) AS model_id,
    coalesce(arg_min(input_preview, start_time) FILTER (WHERE parent_span_id IS NULL),
             arg_min(input_preview, start_time)) AS input_preview,
    coalesce(arg_min(output_preview, start_time) FILTER (WHERE parent_span_id IS NULL),
             arg_min(output_preview, start_time)) AS output_preview,
    CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
    CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
    CAST(sum(total_tokens) AS BIGINT) AS total_tokens,
    CAST(sum(cost_micros) AS BIGINT) AS cost_micros
"""


def trace_filters(query: TraceQuery) -> tuple[str, str, list[Any]]:
    """Span-level WHERE and trace-level HAVING clauses for ``query``."""
    where: list[str] = []
    where_params: list[Any] = []
    having: list[str] = []
    having_params: list[Any] = []
    bounds: list[str] = []
    bound_params: list[Any] = []
    if query.since_ns is not None:
        bounds.append("start_time >= make_timestamp_ns(?)")
        bound_params.append(int(query.since_ns))
    if query.until_ns is not None:
        bounds.append("start_time < make_timestamp_ns(?)")
        bound_params.append(int(query.until_ns))
    if bounds:
        # The time range applies to the trace's start: take the traces with a span
        # in range, then keep those whose earliest span is in range, with all their
        # spans (a child may start after `until`, the root before `since`).
        in_range = " AND ".join(bounds)
        where.append(f"trace_id IN (SELECT trace_id FROM traces WHERE {in_range})")
        where_params += bound_params
        having.append(in_range.replace("start_time", "min(start_time)"))
        having_params += bound_params
    if query.model_id is not None:
        having.append("bool_or(model_id = ?)")
        having_params.append(query.model_id)
    for key, value in query.attributes.items():
        having.append("bool_or(attributes[?] = ?)")
        having_params += [key, value]
    if query.text:
        having.append(
            "bool_or(contains(lower(coalesce(input_preview, '')), lower(?))"
            " OR contains(lower(coalesce(output_preview, '')), lower(?)))"
        )
        having_params += [query.text, query.text]
    if query.service is not None:
        having.append(
            "coalesce(arg_min(service_name, start_time) FILTER (WHERE parent_span_id IS NULL),"
            " arg_min(service_name, start_time)) = ?"
        )
        having_params.append(query.service)
    if query.status is not None:
        having.append(
            "(CASE WHEN bool_or(status_code = 'error') THEN 'error' ELSE "
            "coalesce(arg_min(status_code, start_time) FILTER (WHERE parent_span_id IS NULL),"
            " arg_min(status_code, start_time)) END) = ?"
        )
        having_params.append(query.status)
    if query.min_duration_ns is not None:
        having.append("epoch_ns(max(end_time)) - epoch_ns(min(start_time)) >= ?")
        having_params.append(int(query.min_duration_ns))
    where_sql = ("WHERE " + " AND ".join(where)) if where else ""
    having_sql = ("HAVING " + " AND ".join(having)) if having else ""
    return where_sql, having_sql, where_params + having_params
