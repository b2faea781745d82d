"""PyFlare's rows back into OTLP protobuf, one Kafka message per trace.

The scaled mode's topics carry what the OpenTelemetry Collector's Kafka
exporter writes with ``partition_traces_by_id``: each message value is an
``ExportTraceServiceRequest`` (``TracesData`` on the wire) holding the spans of
ONE trace, and its key is that trace id as 32 lowercase hex characters. So a
fleet of standard Collectors and PyFlare's receivers feed the same workers.
Metric points and log records go one message per resource (the Collector keys
those by a hash of the resource; PyFlare's keys are a hash too).

What the receiver decoded comes back out as the same rows when the worker
decodes these messages (a test checks the round trip): the content columns
(``input_preview``, ``output_preview``, ``input_hash``) become their
``pyflare.*`` attributes again, and attribute values, which the rows keep as
text, are sent as OTLP ints or doubles when the text is exactly how such a
number renders (``"42"``, ``"0.5"``), so token counts read the same; anything
else is a string. Span attributes are written by a small protobuf encoder with
the encoded key-value pairs cached (a model name or a span kind recurs); metric
and log messages, fewer and smaller, use the generated OTLP classes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from pyflare import semconv as sc

__all__ = ["Message", "encode_logs", "encode_metrics", "encode_spans", "typed_value"]

# (key, value) of one Kafka message.
Message = tuple[bytes, bytes]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FIXED64 = struct.Struct("<Q")
_DOUBLE = struct.Struct("<d")
_KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
_STATUS = {"unset": 0, "ok": 1, "error": 2}
# The columns that were attributes before the decoder promoted them.
_PROMOTED = (
    ("input_preview", sc.INPUT_PREVIEW),
    ("output_preview", sc.OUTPUT_PREVIEW),
    ("input_hash", sc.INPUT_HASH),
)
_MAX_CACHED = 65_536
_EVENTS_NS = pa.list_(
    pa.struct(
        [
            pa.field("time", pa.int64()),
            pa.field("name", pa.string()),
            pa.field("attributes", pa.map_(pa.string(), pa.string())),
        ]
    )
)


# -- the protobuf wire format -----------------------------------------------------------


def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _text_field(number: int, text: str) -> bytes:
    return _field(number, text.encode("utf-8", "surrogatepass"))


# -- attribute values -------------------------------------------------------------------


def typed_value(text: str) -> int | float | str:
    """The OTLP value a row's attribute text is sent as (see the module docstring)."""
    if not text or len(text) > 32:
        return text
    first = text[0]
    if first.isdigit() or (first == "-" and len(text) > 1):
        try:
            number = int(text)
        except ValueError:
            pass
        else:
            if str(number) == text and _INT64_MIN <= number <= _INT64_MAX:
                return number
            return text
        try:
            real = float(text)
        except ValueError:
            return text
        if repr(real) == text:
            return real
    return text


def _any_value(text: str) -> bytes:
    value = typed_value(text)
    if type(value) is int:
        return _varint(3 << 3) + _varint(value)
    if type(value) is float:
        return _varint(4 << 3 | 1) + _DOUBLE.pack(value)
    return _text_field(1, text)


_PAIRS: dict[tuple[str, str], bytes] = {}


def _pair(key: str, text: str) -> bytes:
    """An encoded ``KeyValue`` in its repeated field's framing (number 9, 3 or 1 decides)."""
    pair = (key, text)
    encoded = _PAIRS.get(pair)
    if encoded is None:
        encoded = _text_field(1, key) + _field(2, _any_value(text))
        if len(_PAIRS) >= _MAX_CACHED:
            _PAIRS.clear()  # bounds memory; pairs recur, so it refills with the common ones
        _PAIRS[pair] = encoded
    return encoded


def _attributes(number: int, pairs: Sequence[tuple[str, str]] | None) -> bytes:
    if not pairs:
        return b""
    return b"".join(_field(number, _pair(key, text)) for key, text in pairs)


# -- spans -----------------------------------------------------------------------------


def _span(row: dict[str, Any]) -> bytes:
    parts = [
        _field(1, bytes.fromhex(row["trace_id"])),
        _field(2, bytes.fromhex(row["span_id"])),
    ]
    parent = row["parent_span_id"]
    if parent:
        parts.append(_field(4, bytes.fromhex(parent)))
    parts.append(_text_field(5, row["operation_name"]))
    parts.append(_varint(6 << 3) + _varint(_KINDS.get(row["span_kind"], 1)))
    parts.append(_varint(7 << 3 | 1) + _FIXED64.pack(row["start_time"]))
    parts.append(_varint(8 << 3 | 1) + _FIXED64.pack(row["end_time"]))
    attributes = row["attributes"] or []
    promoted = [(key, row[column]) for column, key in _PROMOTED if row[column] is not None]
    parts.append(_attributes(9, [*attributes, *promoted] if promoted else attributes))
    for event in row["events"] or ():
        body = _varint(1 << 3 | 1) + _FIXED64.pack(event["time"])
        body += _text_field(2, event["name"]) + _attributes(3, event["attributes"])
        parts.append(_field(11, body))
    status = b""
    if row["status_message"]:
        status += _text_field(2, row["status_message"])
    code = _STATUS.get(row["status_code"], 0)
    if code:
        status += _varint(3 << 3) + _varint(code)
    if status:
        parts.append(_field(15, status))
    return b"".join(parts)


def _ns_columns(batch: pa.Table, names: Sequence[str]) -> pa.Table:
    """``batch`` with its timestamp columns as int64 nanoseconds (fast to_pylist)."""
    for name in names:
        index = batch.schema.get_field_index(name)
        column = batch.column(index)
        batch = batch.set_column(index, name, column.cast(pa.int64()))
    return batch


def encode_spans(batch: pa.Table, *, scope: str = "") -> list[Message]:
    """One message per trace id: (the id as hex, an ExportTraceServiceRequest)."""
    batch = _ns_columns(batch, ("start_time", "end_time"))
    index = batch.schema.get_field_index("events")
    batch = batch.set_column(index, "events", batch.column(index).cast(_EVENTS_NS))
    rows = batch.to_pylist()
    by_trace: dict[str, dict[tuple[tuple[str, str], ...], list[bytes]]] = {}
    resources: dict[tuple[tuple[str, str], ...], bytes] = {}
    for row in rows:
        resource = tuple(row["resource"] or ())
        if resource not in resources:
            resources[resource] = _field(1, _attributes(1, resource))
        trace = by_trace.setdefault(row["trace_id"], {})
        trace.setdefault(resource, []).append(_field(2, _span(row)))
    scope_part = _field(1, _text_field(1, scope)) if scope else b""
    messages: list[Message] = []
    for trace_id, by_resource in by_trace.items():
        body = b"".join(
            _field(1, resources[resource] + _field(2, scope_part + b"".join(spans)))
            for resource, spans in by_resource.items()
        )
        messages.append((trace_id.encode("ascii"), body))
    return messages


# -- metrics and logs ---------------------------------------------------------------------


def _resource_key(pairs: Sequence[tuple[str, str]]) -> bytes:
    """The message key of a resource's points or records: a hash of its entries."""
    digest = hashlib.blake2b(digest_size=16)
    for key, text in sorted(pairs):
        digest.update(key.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return digest.digest()


def _key_values(pairs: Sequence[tuple[str, str]] | None) -> list[KeyValue]:
    out = []
    for key, text in pairs or ():
        value = typed_value(text)
        if type(value) is int:
            out.append(KeyValue(key=key, value=AnyValue(int_value=value)))
        elif type(value) is float:
            out.append(KeyValue(key=key, value=AnyValue(double_value=value)))
        else:
            out.append(KeyValue(key=key, value=AnyValue(string_value=text)))
    return out


def _grouped(
    rows: list[dict[str, Any]],
) -> Iterator[tuple[tuple[tuple[str, str], ...], dict[str, list[dict[str, Any]]]]]:
    """Rows by resource, then by scope name."""
    groups: dict[tuple[tuple[str, str], ...], dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        resource = tuple(row["resource"] or ())
        groups.setdefault(resource, {}).setdefault(row["scope_name"] or "", []).append(row)
    yield from groups.items()


_TEMPORALITY = {"delta": 1, "cumulative": 2}


def _metric(row: dict[str, Any]) -> metrics_pb2.Metric:
    metric = metrics_pb2.Metric(name=row["metric_name"], unit=row["unit"] or "")
    attributes = _key_values(row["attributes"])
    start = row["start_time"] or 0
    time_ns = row["timestamp"]
    value_type = row["value_type"]
    temporality = _TEMPORALITY.get(row["temporality"] or "", 0)
    if value_type in ("gauge", "counter"):
        point = metrics_pb2.NumberDataPoint(
            attributes=attributes, start_time_unix_nano=start, time_unix_nano=time_ns
        )
        if row["value"] is not None:
            point.as_double = row["value"]
        if value_type == "counter" or row["temporality"] is not None:
            metric.sum.data_points.append(point)
            metric.sum.is_monotonic = value_type == "counter"
            metric.sum.aggregation_temporality = temporality  # type: ignore[assignment]
        else:
            metric.gauge.data_points.append(point)
    elif value_type == "summary":
        summary = metrics_pb2.SummaryDataPoint(
            attributes=attributes,
            start_time_unix_nano=start,
            time_unix_nano=time_ns,
            count=row["histogram_count"] or 0,
            sum=row["histogram_sum"] or 0.0,
        )
        for quantile in row["quantiles"] or ():
            summary.quantile_values.add(quantile=quantile["quantile"], value=quantile["value"])
        metric.summary.data_points.append(summary)
    else:
        buckets = row["histogram_buckets"] or []
        histogram = metrics_pb2.HistogramDataPoint(
            attributes=attributes,
            start_time_unix_nano=start,
            time_unix_nano=time_ns,
            count=row["histogram_count"] or 0,
            bucket_counts=[bucket["count"] for bucket in buckets],
            explicit_bounds=[bucket["upper_bound"] for bucket in buckets[:-1]],
        )
        if row["histogram_sum"] is not None:
            histogram.sum = row["histogram_sum"]
        metric.histogram.data_points.append(histogram)
        metric.histogram.aggregation_temporality = temporality  # type: ignore[assignment]
    return metric


def encode_metrics(batch: pa.Table) -> list[Message]:
    """One ExportMetricsServiceRequest per resource, keyed by a hash of the resource."""
    rows = _ns_columns(batch, ("timestamp", "start_time")).to_pylist()
    messages: list[Message] = []
    for resource, scopes in _grouped(rows):
        request = ExportMetricsServiceRequest()
        resource_metrics = request.resource_metrics.add()
        resource_metrics.resource.attributes.extend(_key_values(resource))
        for scope, scope_rows in scopes.items():
            scope_metrics = resource_metrics.scope_metrics.add()
            scope_metrics.scope.name = scope
            scope_metrics.metrics.extend(_metric(row) for row in scope_rows)
        messages.append((_resource_key(resource), request.SerializeToString()))
    return messages


def encode_logs(batch: pa.Table) -> list[Message]:
    """One ExportLogsServiceRequest per resource, keyed by a hash of the resource."""
    rows = _ns_columns(batch, ("timestamp", "observed_timestamp")).to_pylist()
    messages: list[Message] = []
    for resource, scopes in _grouped(rows):
        request = ExportLogsServiceRequest()
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.extend(_key_values(resource))
        for scope, scope_rows in scopes.items():
            scope_logs = resource_logs.scope_logs.add()
            scope_logs.scope.name = scope
            for row in scope_rows:
                record = scope_logs.log_records.add(
                    time_unix_nano=row["timestamp"],
                    observed_time_unix_nano=row["observed_timestamp"] or 0,
                    severity_number=row["severity_number"],
                    severity_text=row["severity_text"] or "",
                    event_name=row["event_name"] or "",
                    trace_id=bytes.fromhex(row["trace_id"]) if row["trace_id"] else b"",
                    span_id=bytes.fromhex(row["span_id"]) if row["span_id"] else b"",
                )
                if row["body"] is not None:
                    record.body.string_value = row["body"]
                record.attributes.extend(_key_values(row["attributes"]))
        messages.append((_resource_key(resource), request.SerializeToString()))
    return messages
