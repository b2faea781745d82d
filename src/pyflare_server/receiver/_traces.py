"""OTLP traces, protobuf and JSON, into span rows (see :mod:`._spans`).

A span is rejected on its own (OTLP partial success) when its trace id is not
16 bytes (32 hex digits) or is all zeros, its span id not 8 bytes (16 hex
digits) or all zeros, its parent span id neither empty nor 8 bytes, its start
time missing, its end before its start, or an attribute can't be read. An
OpenInference span whose OTLP kind is unspecified or internal takes the kind
PyFlare's SDK gives such a span (an LLM or embedding call is a client span).
"""

from __future__ import annotations

from typing import Any

from pyflare._runtime import INSTRUMENTATION_NAME
from pyflare_server.receiver._decoding import TRUNCATED, ItemError
from pyflare_server.receiver._jsonfields import (
    field,
    json_enum,
    json_id,
    json_list,
    json_object,
    json_text,
    json_time,
)
from pyflare_server.receiver._jsonvalues import json_attributes
from pyflare_server.receiver._pbvalues import kv_cache, pb_attributes
from pyflare_server.receiver._spans import STATUS_NAMES, Spans
from pyflare_server.receiver._values import Entry

__all__ = ["json_spans", "pb_spans"]

_INT64_MAX = 2**63 - 1
# The PyFlare SDK's scope: its spans arrive masked already.
_OWN_SCOPE = INSTRUMENTATION_NAME.encode()
_NO_TRACE = b"\0" * 16
_NO_SPAN = b"\0" * 8


def check_times(start: int, end: int) -> str:
    """Why a span's times are unusable, or "" when they are fine."""
    if start <= 0:
        return "startTimeUnixNano is missing"
    if start > _INT64_MAX or end > _INT64_MAX:
        return "a time is past the year 2262 (out of the int64 nanosecond range)"
    if end < start:
        return f"endTimeUnixNano {end} is before startTimeUnixNano {start}"
    return ""


def _flag_events(events: list[dict[str, Any]]) -> None:
    """Mark the last kept event: the span's events past ``max_events`` were dropped."""
    pairs = events[-1]["attributes"]
    for index, (key, value) in enumerate(pairs):
        if key == TRUNCATED:
            pairs[index] = (key, f"{value},[events]")
            return
    pairs.append((TRUNCATED, "[events]"))


# -- protobuf ----------------------------------------------------------------------------


def _pb_problem(trace_id: bytes, span_id: bytes, parent: bytes, start: int, end: int) -> str:
    if len(trace_id) != 16 or trace_id == _NO_TRACE:
        return f"traceId is {len(trace_id)} bytes, want 16 (and not all zeros)"
    if len(span_id) != 8 or span_id == _NO_SPAN:
        return f"spanId is {len(span_id)} bytes, want 8 (and not all zeros)"
    if parent and len(parent) != 8:
        return f"parentSpanId is {len(parent)} bytes, want 8 or none"
    return check_times(start, end)


def pb_spans(request: Any, spans: Spans) -> None:
    """Add the spans of a parsed ``TracesRequest`` view (see :mod:`._pbviews`)."""
    limits = spans.limits
    max_chars = limits.max_attribute_chars
    cache = kv_cache(limits)
    rows = spans.rows
    resource_rows = spans.resource_rows
    events_column = spans.events
    span_attributes = spans.attributes
    reject = spans.rejections.add
    no_events: list[dict[str, Any]] = []
    for r, resource_spans in enumerate(request.resource_spans):
        try:
            resource = pb_attributes(resource_spans.resource.attributes, limits, cache)
        except ItemError as exc:
            for s, scope_spans in enumerate(resource_spans.scope_spans):
                for i in range(len(scope_spans.spans)):
                    reject(f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]", f"resource: {exc}")
            continue
        position = spans.add_resource(resource)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            foreign = scope_spans.scope.name != _OWN_SCOPE
            for i, span in enumerate(scope_spans.spans):
                trace_id = span.trace_id
                span_id = span.span_id
                parent = span.parent_span_id
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                try:
                    if (
                        len(trace_id) != 16
                        or len(span_id) != 8
                        or (parent and len(parent) != 8)
                        or trace_id == _NO_TRACE
                        or span_id == _NO_SPAN
                        or not 0 < start <= end <= _INT64_MAX
                    ):
                        raise ItemError(_pb_problem(trace_id, span_id, parent, start, end))
                    attributes = pb_attributes(span.attributes, limits, cache)
                except ItemError as exc:
                    reject(f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]", str(exc))
                    continue
                name = span.name.decode("utf-8", "replace")
                if len(name) > max_chars:
                    name = name[:max_chars]
                    attributes[3].append("[name]")
                status = span.status
                code = status.code
                message: str | None = None
                if status.message:
                    message = status.message.decode("utf-8", "replace")
                    if len(message) > max_chars:
                        message = message[:max_chars]
                        attributes[3].append("[status_message]")
                ml = span_attributes(attributes, foreign, span.kind)
                events = span.events
                events_column.append(
                    _pb_events(events, spans, foreign, cache) if events else no_events
                )
                resource_rows.append(position)
                rows.append(
                    (
                        trace_id.hex(),
                        span_id.hex(),
                        parent.hex() if parent and parent != _NO_SPAN else None,
                        start,
                        end,
                        name,
                        STATUS_NAMES[code] if 0 <= code < 3 else "unset",
                        message,
                        *ml,
                    )
                )


def _pb_events(
    events: Any, spans: Spans, foreign: bool, cache: dict[bytes, Entry]
) -> list[dict[str, Any]]:
    limits = spans.limits
    out = []
    for event in events[: limits.max_events]:
        try:
            attributes = pb_attributes(event.attributes, limits, cache)
        except ItemError:
            attributes = ((), (), (), ["[attributes]"], 0)
        name = event.name.decode("utf-8", "replace")
        if len(name) > limits.max_attribute_chars:
            name = name[: limits.max_attribute_chars]
            attributes[3].append("[name]")
        time_ns = min(event.time_unix_nano, _INT64_MAX)
        out.append(spans.event(time_ns, name, attributes, foreign))
    if len(events) > limits.max_events:
        _flag_events(out)
    return out


# -- JSON --------------------------------------------------------------------------------

_KIND_WORDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_WORDS = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def json_spans(request: dict[str, Any], spans: Spans) -> None:
    """Add the spans of a decoded OTLP/JSON ``ExportTraceServiceRequest``.

    A request whose structure is wrong (a list where an object belongs…) raises
    ``ItemError``; a span that is wrong on its own is rejected.
    """
    limits = spans.limits
    for r, resource_spans in enumerate(json_list(request, "resourceSpans", "resource_spans", "")):
        where = f"resourceSpans[{r}]"
        resource_spans = json_object(resource_spans, where)
        resource = json_object(resource_spans.get("resource") or {}, f"{where}.resource")
        all_scopes = [
            (f"{where}.scopeSpans[{s}]", json_object(scope_spans, f"{where}.scopeSpans[{s}]"))
            for s, scope_spans in enumerate(
                json_list(resource_spans, "scopeSpans", "scope_spans", where)
            )
        ]
        try:
            position = spans.add_resource(json_attributes(resource.get("attributes"), limits))
        except ItemError as exc:
            for where_scope, scope_spans in all_scopes:
                for i, _ in enumerate(json_list(scope_spans, "spans", "spans", where_scope)):
                    spans.rejections.add(f"{where_scope}.spans[{i}]", f"resource: {exc}")
            continue
        for where_scope, scope_spans in all_scopes:
            scope = json_object(scope_spans.get("scope") or {}, f"{where_scope}.scope")
            foreign = scope.get("name") != INSTRUMENTATION_NAME
            for i, span in enumerate(json_list(scope_spans, "spans", "spans", where_scope)):
                try:
                    _json_span(span, spans, position, foreign)
                except ItemError as exc:
                    spans.rejections.add(f"{where_scope}.spans[{i}]", str(exc))


def _json_span(span: Any, spans: Spans, position: int, foreign: bool) -> None:
    limits = spans.limits
    if type(span) is not dict:
        raise ItemError(f"a span must be an object, got {type(span).__name__}")
    get = span.get
    # lowerCamelCase, else the proto field name (``or``: an empty value is no value here).
    # The common case (hex ids, decimal-string times, an int kind) is read inline; the
    # json_* readers check anything else and say what is wrong with it.
    trace_id: Any = get("traceId") or get("trace_id")
    span_id: Any = get("spanId") or get("span_id")
    parent: Any = get("parentSpanId") or get("parent_span_id")
    try:
        ids = bytes.fromhex(trace_id + span_id + (parent or ""))
    except (TypeError, ValueError):
        ids = b""
    if (
        len(ids) == (32 if parent else 24)
        and len(trace_id) == 32
        and len(span_id) == 16
        and ids[:16] != _NO_TRACE
        and ids[16:24] != _NO_SPAN
    ):
        hexed = ids.hex()
        trace_id, span_id = hexed[:32], hexed[32:48]
        parent = (hexed[48:] if ids[24:] != _NO_SPAN else None) if parent else None
    else:
        trace_id = json_id(trace_id, 16, "traceId")
        span_id = json_id(span_id, 8, "spanId")
        parent = json_id(parent, 8, "parentSpanId", optional=True)
    start = get("startTimeUnixNano") or get("start_time_unix_nano")
    end = get("endTimeUnixNano") or get("end_time_unix_nano")
    if type(start) is str and type(end) is str and (start + end).isdigit() and start.isascii():
        start, end = int(start), int(end)
    else:
        start = json_time(start, "startTimeUnixNano")
        end = json_time(end, "endTimeUnixNano")
    problem = check_times(start, end)
    if problem:
        raise ItemError(problem)
    kind = get("kind")
    if type(kind) is not int:
        kind = json_enum(kind, _KIND_WORDS, "kind")
    status = span.get("status")
    if status is None:
        code, message, message_cut = 0, "", False
    else:
        status = json_object(status, "status")
        code = json_enum(status.get("code"), _STATUS_WORDS, "status.code")
        message, message_cut = json_text(status.get("message"), "status.message", limits)
    name, name_cut = json_text(span.get("name"), "name", limits)
    attributes = json_attributes(span.get("attributes"), limits)
    if name_cut:
        attributes[3].append("[name]")
    if message_cut:
        attributes[3].append("[status_message]")
    events = span.get("events")
    event_rows: list[dict[str, Any]] = []
    if events:
        events = json_list(span, "events", "events", "span")
        event_rows = [_json_event(event, spans, foreign) for event in events[: limits.max_events]]
        if len(events) > limits.max_events:
            _flag_events(event_rows)
    ml = spans.attributes(attributes, foreign, kind)
    spans.events.append(event_rows)
    spans.resource_rows.append(position)
    spans.rows.append(
        (
            trace_id,
            span_id,
            parent,
            start,
            end,
            name,
            STATUS_NAMES[code] if 0 <= code < 3 else "unset",
            message or None,
            *ml,
        )
    )


def _json_event(event: Any, spans: Spans, foreign: bool) -> dict[str, Any]:
    limits = spans.limits
    event = json_object(event, "an event")
    time_ns = json_time(field(event, "timeUnixNano", "time_unix_nano"), "event timeUnixNano")
    name, name_cut = json_text(event.get("name"), "event name", limits)
    attributes = json_attributes(event.get("attributes"), limits)
    if name_cut:
        attributes[3].append("[name]")
    return spans.event(min(time_ns, _INT64_MAX), name, attributes, foreign)
