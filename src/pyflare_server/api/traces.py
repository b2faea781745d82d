"""The traces resource: GET /api/v1/traces, /api/v1/traces/{trace_id}, …/{trace_id}/spans.

Times go out twice, as ISO 8601 UTC strings with nanosecond digits
(``start_time``) and as integer nanoseconds since the epoch (``start_time_ns``).
A trace's ``status`` is ``error`` when any of its spans failed and ``ok``
otherwise, as the spec's enum has it; ``status_code`` keeps the OpenTelemetry
value (``ok``, ``error`` or ``unset``).
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from starlette.datastructures import QueryParams
from starlette.routing import Route

from pyflare._time import parse_duration_ns
from pyflare.errors import InvalidArgumentError
from pyflare.store.base import TraceQuery
from pyflare_server.api._http import ApiError, call_store, endpoint, iso_ns, json_response
from pyflare_server.api._models import TraceDetail, TraceList
from pyflare_server.api._params import (
    INT64_MAX,
    instant,
    integer,
    invalid,
    no_parameters,
    records,
    single,
)
from pyflare_server.api.openapi import Operation, Param, documented
from pyflare_server.auth.permissions import requires

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from pyflare.store.base import SpanStore

__all__ = ["MAX_LIMIT", "parse_trace_query", "routes"]

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MIN_PREFIX = 6
_TRACE_ID = re.compile(rf"[0-9a-fA-F]{{{MIN_PREFIX},32}}")
_STATUSES: dict[str, Literal["ok", "error"]] = {"ok": "ok", "error": "error"}
_LIST_PARAMETERS = (
    "service",
    "model_id",
    "start_time",
    "end_time",
    "status",
    "min_duration",
    "min_duration_ms",
    "attribute",
    "text",
    "limit",
    "offset",
)
MAX_ATTRIBUTES = 16
_MAX_MS = INT64_MAX // 1_000_000
_TIME_TEXT = (
    "ISO 8601 (Z or an offset; none means UTC), a duration back from now such as 15m, "
    "or nanoseconds since the epoch"
)
_TRACE_ID_PARAM = Param(
    "trace_id",
    {"type": "string", "pattern": f"^[0-9a-fA-F]{{{MIN_PREFIX},32}}$"},
    f"32 hex characters, or a unique prefix of at least {MIN_PREFIX}",
    location="path",
)
_LIST = Operation(
    "List traces",
    TraceList,
    (
        Param("service", {"type": "string", "minLength": 1}, "The root span's service"),
        Param("model_id", {"type": "string", "minLength": 1}, "A span of the trace used it"),
        Param(
            "start_time",
            {"type": "string", "minLength": 1},
            f"Trace starts at or after: {_TIME_TEXT}",
        ),
        Param("end_time", {"type": "string", "minLength": 1}, f"Trace starts before: {_TIME_TEXT}"),
        Param("status", {"type": "string", "enum": list(_STATUSES)}, "error: a span failed"),
        Param(
            "min_duration", {"type": "string", "minLength": 1}, "At least this long: 250ms, 2s, 1m"
        ),
        Param(
            "min_duration_ms",
            {"type": "number", "minimum": 0, "maximum": _MAX_MS},
            "At least this many milliseconds",
        ),
        Param(
            "attribute",
            {"type": "string", "pattern": "^[^=]+=.*$"},
            f"key=value a span's attribute has; repeat for several (at most {MAX_ATTRIBUTES})",
            repeated=True,
        ),
        Param("text", {"type": "string"}, "In a span's input or output preview, any case"),
        Param(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        ),
        Param("offset", {"type": "integer", "minimum": 0, "maximum": INT64_MAX, "default": 0}),
    ),
    description="Newest first; total counts every match.",
    tags=("traces",),
)
_DETAIL = Operation(
    "Get a trace: its summary and spans",
    TraceDetail,
    (_TRACE_ID_PARAM,),
    errors=(400, 404, 503),
    tags=("traces",),
)
_SPANS = Operation(
    "Get the spans of a trace in tree order",
    {"type": "array", "items": {"$ref": "#/components/schemas/Span"}},
    (_TRACE_ID_PARAM,),
    errors=(400, 404, 503),
    tags=("traces",),
)


def routes(store: SpanStore) -> list[Route]:
    """The traces resource's routes, reading from ``store``."""

    @requires("traces:read")
    @documented(_LIST)
    @endpoint
    async def list_traces(request: Request) -> Response:
        query = parse_trace_query(request.query_params)
        summaries, total = await call_store(_list, store, query)
        return json_response(
            {
                "traces": summaries,
                "total": total,
                "limit": query.limit,
                "offset": query.offset,
            }
        )

    @requires("traces:read")
    @documented(_DETAIL)
    @endpoint
    async def get_trace(request: Request) -> Response:
        no_parameters(request.query_params)
        trace_id = await call_store(_resolve, store, request.path_params["trace_id"])
        summary, spans = await call_store(_trace, store, trace_id)
        root = spans[0]
        return json_response(
            {
                **summary,
                "attributes": root["attributes"],
                "resource": root["resource"],
                "spans": spans,
            }
        )

    @requires("traces:read")
    @documented(_SPANS)
    @endpoint
    async def trace_spans(request: Request) -> Response:
        no_parameters(request.query_params)
        trace_id = await call_store(_resolve, store, request.path_params["trace_id"])
        spans = await call_store(_spans, store, trace_id)
        return json_response(spans)

    return [
        Route("/api/v1/traces", list_traces, methods=["GET"], name="list_traces"),
        Route("/api/v1/traces/{trace_id}", get_trace, methods=["GET"], name="get_trace"),
        Route("/api/v1/traces/{trace_id}/spans", trace_spans, methods=["GET"], name="trace_spans"),
    ]


# -- parameters ----------------------------------------------------------------


def parse_trace_query(params: QueryParams, *, now_ns: int | None = None) -> TraceQuery:
    """The :class:`TraceQuery` a GET /api/v1/traces query string asks for.

    Its ``status="ok"`` means no span failed (OpenTelemetry's ok or unset), which
    the listing reads as two store queries. Raises :class:`~pyflare_server.api._http.ApiError` (400) naming the bad parameter.
    """
    attributes = _attributes(params.getlist("attribute"))
    values = single(
        QueryParams([(k, v) for k, v in params.multi_items() if k != "attribute"]),
        _LIST_PARAMETERS,
    )
    for name in ("service", "model_id", "status", "start_time", "end_time", "min_duration"):
        if name in values and not values[name].strip():
            raise invalid(f"{name} must not be empty; leave it out to not filter on it")
    now = time.time_ns() if now_ns is None else now_ns
    status = values.get("status")
    if status is not None and status not in _STATUSES:
        raise invalid(f"status must be one of {', '.join(_STATUSES)}, got {status!r}")
    since = instant("start_time", values["start_time"], now) if "start_time" in values else None
    until = instant("end_time", values["end_time"], now) if "end_time" in values else None
    if since is not None and until is not None and until < since:
        raise invalid(
            f"end_time ({values['end_time']}) is before start_time ({values['start_time']})"
        )
    min_duration = None
    if "min_duration" in values and "min_duration_ms" in values:
        raise invalid("give min_duration or min_duration_ms, not both")
    if "min_duration" in values:
        try:
            min_duration = parse_duration_ns(values["min_duration"], name="min_duration")
        except InvalidArgumentError as exc:
            raise invalid(str(exc)) from None
    if "min_duration_ms" in values:
        min_duration = _milliseconds(values["min_duration_ms"])
    return TraceQuery(
        service=values.get("service"),
        model_id=values.get("model_id"),
        status=None if status is None else _STATUSES[status],
        since_ns=since,
        until_ns=until,
        min_duration_ns=min_duration,
        attributes=attributes,
        text=values.get("text") or None,
        limit=integer("limit", values.get("limit", str(DEFAULT_LIMIT)), 1, MAX_LIMIT),
        offset=integer("offset", values.get("offset", "0"), 0, INT64_MAX),
    )


def _attributes(given: list[str]) -> dict[str, str]:
    """``attribute=key=value`` parameters as a mapping; every pair must match."""
    if len(given) > MAX_ATTRIBUTES:
        raise invalid(f"attribute is given {len(given)} times; at most {MAX_ATTRIBUTES}")
    pairs: dict[str, str] = {}
    for item in given:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise invalid(f"attribute must be key=value (such as user.id=u-1), got {item!r}")
        if key in pairs and pairs[key] != value:
            raise invalid(f"attribute {key!r} is given two values; a span has one")
        pairs[key] = value
    return pairs


def _milliseconds(value: str) -> int:
    try:
        ms = float(value.strip())
    except ValueError:
        ms = -1.0
    if not 0 <= ms <= _MAX_MS:  # also NaN
        raise invalid(f"min_duration_ms must be a number of milliseconds from 0, got {value!r}")
    return round(ms * 1_000_000)


def _resolve(store: SpanStore, given: str) -> str:
    """The full trace id ``given`` names: itself, or the one trace it is a prefix of."""
    if _TRACE_ID.fullmatch(given) is None:
        raise invalid(
            f"trace_id must be 32 hex characters or a unique prefix of at least {MIN_PREFIX}, "
            f"got {given!r}"
        )
    trace_id = given.lower()
    if len(trace_id) == 32:
        return trace_id
    matches = (
        store.sql(
            "SELECT DISTINCT trace_id FROM traces WHERE trace_id LIKE ? ORDER BY 1 LIMIT 2",
            [trace_id + "%"],
        )
        .column(0)
        .to_pylist()
    )
    if not matches:
        raise ApiError(404, "not_found", f"no trace id starts with {given!r}")
    if len(matches) > 1:
        raise invalid(f"trace_id {given!r} is the start of more than one trace; give more of it")
    return str(matches[0])


# -- reading -------------------------------------------------------------------


def _list(store: SpanStore, query: TraceQuery) -> tuple[list[dict[str, Any]], int]:
    if query.status != "ok":
        return _summaries(store.traces(query)), store.count_traces(query)
    # No span failed: the root's status is ok or (mostly, with OTel) unset. The
    # store filters on one status, so take the first offset+limit of each and merge.
    window = dataclasses.replace(query, limit=query.offset + query.limit, offset=0)
    parts = [dataclasses.replace(window, status=s) for s in ("ok", "unset")]
    merged = pa.concat_tables([store.traces(part) for part in parts], promote_options="default")
    ordered = merged.sort_by([("start_time", "descending"), ("trace_id", "ascending")])
    page = ordered.slice(query.offset, query.limit)
    return _summaries(page), sum(store.count_traces(part) for part in parts)


def _trace(store: SpanStore, trace_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = store.spans(trace_id)
    if rows.num_rows == 0:
        raise _unknown(trace_id)
    start = int(pc.min(rows.column("start_time").cast(pa.int64())).as_py())
    # The store summarises a trace by the rules every listing uses; a trace starts
    # at its earliest span, so asking for the traces starting at that instant finds it.
    query = TraceQuery(since_ns=start, until_ns=start + 1, limit=MAX_LIMIT)
    while True:
        page = store.traces(query)
        if page.num_rows == 0:
            raise _unknown(trace_id)  # deleted between the two reads
        found = page.filter(pc.equal(page.column("trace_id"), trace_id))
        if found.num_rows:
            return _summaries(found)[0], _span_dicts(rows)
        query = dataclasses.replace(query, offset=query.offset + MAX_LIMIT)


def _spans(store: SpanStore, trace_id: str) -> list[dict[str, Any]]:
    rows = store.spans(trace_id)
    if rows.num_rows == 0:
        raise _unknown(trace_id)
    return _span_dicts(rows)


def _unknown(trace_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no trace with id {trace_id!r}")


# -- rendering -----------------------------------------------------------------


def _timed(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its times as ISO 8601 plus ``*_ns`` integers, and ``duration_ms``."""
    for name in ("start_time", "end_time"):
        record[f"{name}_ns"] = record[name]
        record[name] = iso_ns(record[name])
    record["duration_ms"] = record["duration_ns"] / 1_000_000
    micros = record.get("cost_micros")
    record["cost_usd"] = None if micros is None else micros / 1_000_000
    return record


def _summaries(table: pa.Table) -> list[dict[str, Any]]:
    summaries = [_timed(record) for record in records(table)]
    for summary in summaries:
        summary["status"] = "error" if summary["status_code"] == "error" else "ok"
    return summaries


def _span_dicts(table: pa.Table) -> list[dict[str, Any]]:
    spans = [_timed(record) for record in records(table.drop_columns(["_ingested_at"]))]
    for span in spans:
        span["events"] = [
            {
                "name": event["name"],
                "time": iso_ns(event["time"]),
                "time_ns": event["time"],
                "attributes": dict(event["attributes"] or ()),
            }
            for event in span["events"] or ()
        ]
    return spans
