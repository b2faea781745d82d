"""OTLP logs (protobuf and JSON) into log record rows (:data:`~pyflare.records.LOG_SCHEMA`).

``timestamp`` is the record's time, else its observed time, else the time it
was received. The body is rendered as attribute values are (maps and arrays as
JSON); ``event_name`` is the record's event name, else its ``event.name``
attribute. A record is rejected on its own when its trace id is neither empty
nor 16 bytes, or its span id neither empty nor 8 bytes.

The PII mask runs over every record's attributes and, separately, over
``{LOG_BODY: body}``: a masker decides by key what is content, so it should
count :data:`LOG_BODY` as content.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from pyflare.records import LOG_SCHEMA
from pyflare_server.receiver._decoding import DecodeLimits, ItemError, Rejections
from pyflare_server.receiver._jsonfields import (
    field,
    json_enum,
    json_id,
    json_list,
    json_object,
    json_text,
    json_time,
)
from pyflare_server.receiver._jsonvalues import (
    json_any,
    json_attributes,
)
from pyflare_server.receiver._pbvalues import (
    kv_cache,
    pb_any,
    pb_attributes,
)
from pyflare_server.receiver._values import (
    Attributes,
    attribute_map,
    render,
    resource_entry,
)

__all__ = ["LOG_BODY", "Logs", "json_logs", "pb_logs"]

#: The key a log record's body is masked under.
LOG_BODY = "log.body"

_INT64_MAX = 2**63 - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


class Logs:
    """Columns of log record rows, filled record by record and turned into one table."""

    def __init__(
        self,
        limits: DecodeLimits,
        mask: Callable[[dict[str, Any]], None] | None,
        ingested_at_ns: int | None,
    ) -> None:
        self.limits = limits
        self.mask = mask
        self.now_ns = ingested_at_ns if ingested_at_ns is not None else time.time_ns()
        self.rejections = Rejections()
        self.rows: list[dict[str, Any]] = []
        self.resource: tuple[list[tuple[str, str]], str] = ([], "")

    def set_resource(self, attributes: Attributes) -> None:
        keys, values, service = resource_entry(attributes, self.limits)
        self.resource = (list(zip(keys, values, strict=True)), service)

    def add(
        self,
        *,
        time_ns: int,
        observed_ns: int,
        trace_id: str | None,
        span_id: str | None,
        severity_number: int,
        severity_text: str,
        body: tuple[Any, str, bool],
        event_name: str,
        scope: str,
        attributes: Attributes,
    ) -> None:
        if time_ns > _INT64_MAX or observed_ns > _INT64_MAX:
            raise ItemError("a time is past the year 2262 (out of the int64 nanosecond range)")
        if not _INT32_MIN <= severity_number <= _INT32_MAX:
            raise ItemError(f"severityNumber {severity_number} is out of the int32 range")
        value, text, body_cut = body
        if self.mask is not None and value is not None:
            masked = {LOG_BODY: value}
            self.mask(masked)
            if masked[LOG_BODY] is not value:
                text, was_cut = render(masked[LOG_BODY], self.limits)
                body_cut = body_cut or was_cut
        if body_cut:
            attributes[3].append("[body]")
        values, pairs = attribute_map(attributes, self.limits, self.mask)
        if not event_name:
            declared = values.get("event.name")
            event_name = declared if type(declared) is str else ""
        resource, service = self.resource
        self.rows.append(
            {
                "timestamp": time_ns or observed_ns or self.now_ns,
                "observed_timestamp": observed_ns or None,
                "trace_id": trace_id,
                "span_id": span_id,
                "severity_number": severity_number,
                "severity_text": severity_text or None,
                "body": None if value is None else text,
                "event_name": event_name or None,
                "service_name": service,
                "scope_name": scope or None,
                "attributes": pairs,
                "resource": resource,
                "_ingested_at": self.now_ns // 1000,
            }
        )

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=LOG_SCHEMA)


def _pb_id(raw: bytes, size: int, what: str) -> str | None:
    if not raw or raw == b"\0" * size:
        return None
    if len(raw) != size:
        raise ItemError(f"{what} is {len(raw)} bytes, want {size} or none")
    return raw.hex()


def _text(raw: bytes, limits: DecodeLimits) -> str:
    return raw.decode("utf-8", "replace")[: limits.max_attribute_chars]


# -- protobuf ----------------------------------------------------------------------------


def pb_logs(request: Any, logs: Logs) -> None:
    """Add the records of a parsed ``LogsRequest`` view (see :mod:`._pbviews`)."""
    limits = logs.limits
    cache = kv_cache(limits)
    for r, resource_logs in enumerate(request.resource_logs):
        logs.set_resource(pb_attributes(resource_logs.resource.attributes, limits, cache))
        for s, scope_logs in enumerate(resource_logs.scope_logs):
            scope = _text(scope_logs.scope.name, limits)
            for i, record in enumerate(scope_logs.log_records):
                try:
                    logs.add(
                        time_ns=record.time_unix_nano,
                        observed_ns=record.observed_time_unix_nano,
                        trace_id=_pb_id(record.trace_id, 16, "traceId"),
                        span_id=_pb_id(record.span_id, 8, "spanId"),
                        severity_number=record.severity_number,
                        severity_text=_text(record.severity_text, limits),
                        body=pb_any(record.body, limits) if record.HasField("body") else _NO_BODY,
                        event_name=_text(record.event_name, limits),
                        scope=scope,
                        attributes=pb_attributes(record.attributes, limits, cache),
                    )
                except ItemError as exc:
                    logs.rejections.add(
                        f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]", str(exc)
                    )


_NO_BODY: tuple[Any, str, bool] = (None, "", False)


# -- JSON --------------------------------------------------------------------------------

_SEVERITY_WORDS = {
    "SEVERITY_NUMBER_UNSPECIFIED": 0,
    **{
        f"SEVERITY_NUMBER_{level}{'' if n == 1 else n}": base + n - 1
        for level, base in (
            ("TRACE", 1),
            ("DEBUG", 5),
            ("INFO", 9),
            ("WARN", 13),
            ("ERROR", 17),
            ("FATAL", 21),
        )
        for n in range(1, 5)
    },
}


def json_logs(request: Any, logs: Logs) -> None:
    """Add the records of a decoded OTLP/JSON ``ExportLogsServiceRequest``."""
    limits = logs.limits
    for r, resource_logs in enumerate(json_list(request, "resourceLogs", "resource_logs", "")):
        where = f"resourceLogs[{r}]"
        resource_logs = json_object(resource_logs, where)
        resource = json_object(resource_logs.get("resource") or {}, f"{where}.resource")
        try:
            logs.set_resource(json_attributes(resource.get("attributes"), limits))
        except ItemError as exc:
            raise ItemError(f"{where}.resource: {exc}") from None
        for s, scope_logs in enumerate(json_list(resource_logs, "scopeLogs", "scope_logs", where)):
            where_scope = f"{where}.scopeLogs[{s}]"
            scope_logs = json_object(scope_logs, where_scope)
            scope = json_object(scope_logs.get("scope") or {}, f"{where_scope}.scope")
            scope_name, _ = json_text(scope.get("name"), "scope.name", limits)
            records = json_list(scope_logs, "logRecords", "log_records", where_scope)
            for i, record in enumerate(records):
                try:
                    _json_record(record, scope_name, logs)
                except ItemError as exc:
                    logs.rejections.add(f"{where_scope}.logRecords[{i}]", str(exc))


def _json_record(record: Any, scope: str, logs: Logs) -> None:
    limits = logs.limits
    record = json_object(record, "a log record")
    body = record.get("body")
    logs.add(
        time_ns=json_time(field(record, "timeUnixNano", "time_unix_nano"), "timeUnixNano"),
        observed_ns=json_time(
            field(record, "observedTimeUnixNano", "observed_time_unix_nano"),
            "observedTimeUnixNano",
        ),
        trace_id=json_id(field(record, "traceId", "trace_id"), 16, "traceId", optional=True),
        span_id=json_id(field(record, "spanId", "span_id"), 8, "spanId", optional=True),
        severity_number=json_enum(
            field(record, "severityNumber", "severity_number"), _SEVERITY_WORDS, "severityNumber"
        ),
        severity_text=json_text(
            field(record, "severityText", "severity_text"), "severityText", limits
        )[0],
        body=_NO_BODY if body is None else json_any(body, limits),
        event_name=json_text(field(record, "eventName", "event_name"), "eventName", limits)[0],
        scope=scope,
        attributes=json_attributes(record.get("attributes"), limits),
    )
