"""The SQL behind listing traces: a trace's summary columns and the filters of a TraceQuery.

Listing is two steps: pick the page's trace ids from ``trace_index`` (one row per
trace, kept up to date by every write), then summarise only those traces' spans.
"""

from __future__ import annotations

from typing import Any

from pyflare.store.base import TraceQuery

__all__ = ["INDEX_UPSERT", "SUMMARY_COLUMNS", "page_filters", "summaries_sql"]

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


# The batch's traces merged into trace_index (from the write's batch view ``b``).
# Every value is a min, max, or, or the root's/earliest span's, so writing a span
# again changes nothing.
INDEX_UPSERT = """
INSERT INTO trace_index
SELECT trace_id, min(start_time), max(end_time),
       min(start_time) FILTER (WHERE parent_span_id IS NULL),
       arg_min(service_name, start_time) FILTER (WHERE parent_span_id IS NULL),
       arg_min(status_code, start_time) FILTER (WHERE parent_span_id IS NULL),
       arg_min(service_name, start_time), arg_min(status_code, start_time),
       bool_or(status_code = 'error'),
       coalesce(list_distinct(list(model_id) FILTER (WHERE model_id IS NOT NULL)), [])
FROM {view} AS b GROUP BY trace_id
ON CONFLICT (trace_id) DO UPDATE SET
    root_service = CASE WHEN trace_index.root_start IS NULL
                          OR excluded.root_start < trace_index.root_start
                        THEN coalesce(excluded.root_service, trace_index.root_service)
                        ELSE trace_index.root_service END,
    root_status = CASE WHEN trace_index.root_start IS NULL
                         OR excluded.root_start < trace_index.root_start
                       THEN coalesce(excluded.root_status, trace_index.root_status)
                       ELSE trace_index.root_status END,
    root_start = least(trace_index.root_start, excluded.root_start),
    first_service = CASE WHEN excluded.start_time < trace_index.start_time
                         THEN excluded.first_service ELSE trace_index.first_service END,
    first_status = CASE WHEN excluded.start_time < trace_index.start_time
                        THEN excluded.first_status ELSE trace_index.first_status END,
    start_time = least(trace_index.start_time, excluded.start_time),
    end_time = greatest(trace_index.end_time, excluded.end_time),
    has_error = trace_index.has_error OR excluded.has_error,
    models = CASE WHEN len(excluded.models) = 0 THEN trace_index.models
                  ELSE list_distinct(list_concat(trace_index.models, excluded.models)) END
"""

_SERVICE = "coalesce(root_service, first_service)"
_STATUS = "CASE WHEN has_error THEN 'error' ELSE coalesce(root_status, first_status) END"


def page_filters(query: TraceQuery) -> tuple[str, list[Any]]:
    """The WHERE clause over trace_index selecting the traces ``query`` matches.

    Trace-level filters and the model (the index keeps every trace's models)
    read the index; each span-level one (attribute, text) keeps the traces with
    a span matching it. Every span of a trace starts
    at or after the trace's start, so those span scans are bounded below by
    ``since_ns`` and skip older row groups.
    """
    where: list[str] = []
    params: list[Any] = []
    if query.since_ns is not None:
        where.append("start_time >= make_timestamp_ns(?)")
        params.append(int(query.since_ns))
    if query.until_ns is not None:
        where.append("start_time < make_timestamp_ns(?)")
        params.append(int(query.until_ns))
    if query.service is not None:
        where.append(f"{_SERVICE} = ?")
        params.append(query.service)
    if query.status is not None:
        where.append(f"{_STATUS} = ?")
        params.append(query.status)
    if query.min_duration_ns is not None:
        where.append("epoch_ns(end_time) - epoch_ns(start_time) >= ?")
        params.append(int(query.min_duration_ns))
    if query.model_id is not None:
        where.append("list_contains(models, ?)")
        params.append(query.model_id)
    span_conditions: list[tuple[str, list[Any]]] = []
    for key, value in query.attributes.items():
        span_conditions.append(("attributes[?] = ?", [key, value]))
    if query.text:
        span_conditions.append(
            (
                "(contains(lower(coalesce(input_preview, '')), lower(?))"
                " OR contains(lower(coalesce(output_preview, '')), lower(?)))",
                [query.text, query.text],
            )
        )
    for condition, values in span_conditions:
        bounded = ""
        bound: list[Any] = []
        if query.since_ns is not None:
            bounded = " AND start_time >= make_timestamp_ns(?)"
            bound = [int(query.since_ns)]
        where.append(f"trace_id IN (SELECT trace_id FROM traces WHERE {condition}{bounded})")
        params += [*values, *bound]
    return ("WHERE " + " AND ".join(where)) if where else "", params


def summaries_sql(earliest_ns: int, latest_ns: int) -> str:
    """Summaries of the traces whose ids are bound as one list.

    Their spans all start in ``[earliest_ns, latest_ns]`` (the page's earliest
    trace start and latest trace end); the bounds go in as literals so DuckDB
    skips the row groups outside them by their min/max.
    """
    return (
        f"SELECT {SUMMARY_COLUMNS} FROM traces "
        f"WHERE start_time BETWEEN make_timestamp_ns({int(earliest_ns)}) "
        f"AND make_timestamp_ns({int(latest_ns)}) "
        "AND trace_id IN (SELECT unnest(?::VARCHAR[])) "
        "GROUP BY trace_id ORDER BY start_time DESC, trace_id"
    )
