"""One OTLP request, two encodings: protobuf with opentelemetry-proto, OTLP/JSON by hand.

A request is described with plain Python (attribute values as Python values,
ids as bytes); :func:`protobuf` and :func:`otlp_json` encode the same
description, so a test can check that both decode to the same rows.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

T0 = 1_767_225_600_000_000_123
MS = 1_000_000
INGESTED_NS = 1_767_225_700_000_000_000

Attributes = Sequence[tuple[str, Any]] | Mapping[str, Any]


def _pairs(attributes: Attributes | None) -> list[tuple[str, Any]]:
    if attributes is None:
        return []
    return list(attributes.items()) if isinstance(attributes, Mapping) else list(attributes)


# -- AnyValue ------------------------------------------------------------------------


def any_pb(value: Any) -> AnyValue:
    """A Python value as an AnyValue: lists are arrays, dicts key-value lists, None empty."""
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list | tuple):
        result = AnyValue()
        result.array_value.values.extend(any_pb(item) for item in value)
        return result
    if isinstance(value, dict):
        result = AnyValue()
        result.kvlist_value.values.extend(kv_pb(value))
        return result
    return AnyValue(string_value=value)


def kv_pb(attributes: Attributes | None) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_pb(value)) for key, value in _pairs(attributes)]


def any_json(value: Any) -> dict[str, Any]:
    """A Python value as OTLP/JSON writes an AnyValue (int64 as a decimal string)."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if value != value:
            return {"doubleValue": "NaN"}
        if value in (float("inf"), float("-inf")):
            return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_json(item) for item in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": kv_json(value)}}
    return {"stringValue": value}


def kv_json(attributes: Attributes | None) -> list[dict[str, Any]]:
    return [{"key": key, "value": any_json(value)} for key, value in _pairs(attributes)]


# -- traces ----------------------------------------------------------------------------


@dataclass
class SpanSpec:
    trace_id: bytes = b"\x01" * 16
    span_id: bytes = b"\x02" * 8
    parent_span_id: bytes = b""
    name: str = "op"
    kind: int = 1
    start: int = T0
    end: int = T0 + MS
    attributes: Attributes = field(default_factory=dict)
    events: Sequence[tuple[int, str, Attributes]] = ()
    status_code: int = 0
    status_message: str = ""


@dataclass
class ScopeSpec:
    name: str = "test.instrumentation"
    spans: Sequence[SpanSpec] = ()


@dataclass
class ResourceSpec:
    attributes: Attributes = field(default_factory=lambda: {"service.name": "svc"})
    scopes: Sequence[ScopeSpec] = ()


def traces_pb(resources: Sequence[ResourceSpec]) -> bytes:
    request = ExportTraceServiceRequest()
    for resource in resources:
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(kv_pb(resource.attributes))
        for scope in resource.scopes:
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = scope.name
            for spec in scope.spans:
                span = scope_spans.spans.add()
                span.trace_id = spec.trace_id
                span.span_id = spec.span_id
                span.parent_span_id = spec.parent_span_id
                span.name = spec.name
                span.kind = spec.kind  # type: ignore[assignment]
                span.start_time_unix_nano = spec.start
                span.end_time_unix_nano = spec.end
                span.attributes.extend(kv_pb(spec.attributes))
                for time_ns, name, attributes in spec.events:
                    event = span.events.add()
                    event.time_unix_nano = time_ns
                    event.name = name
                    event.attributes.extend(kv_pb(attributes))
                span.status.code = spec.status_code  # type: ignore[assignment]
                span.status.message = spec.status_message
    return request.SerializeToString()


def traces_json(resources: Sequence[ResourceSpec]) -> bytes:
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": kv_json(resource.attributes)},
                "scopeSpans": [
                    {
                        "scope": {"name": scope.name, "version": "1.0"},
                        "spans": [_span_json(spec) for spec in scope.spans],
                    }
                    for scope in resource.scopes
                ],
            }
            for resource in resources
        ]
    }
    return orjson.dumps(body)


def _span_json(spec: SpanSpec) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": spec.trace_id.hex().upper(),  # hex digits in either case
        "spanId": spec.span_id.hex(),
        "name": spec.name,
        "kind": spec.kind,
        "startTimeUnixNano": str(spec.start),
        "endTimeUnixNano": spec.end,  # a JSON number is fine too
        "attributes": kv_json(spec.attributes),
        "droppedAttributesCount": 0,
        "status": {"code": spec.status_code, "message": spec.status_message},
    }
    if spec.parent_span_id:
        span["parentSpanId"] = spec.parent_span_id.hex()
    if spec.events:
        span["events"] = [
            {"timeUnixNano": str(time_ns), "name": name, "attributes": kv_json(attributes)}
            for time_ns, name, attributes in spec.events
        ]
    return span


def one_span(scope: str = "test.instrumentation", **fields: Any) -> list[ResourceSpec]:
    return [ResourceSpec(scopes=[ScopeSpec(name=scope, spans=[SpanSpec(**fields)])])]


# -- metrics and logs: built as protobuf messages, converted to OTLP/JSON by hand -----------


def metrics_json(request: ExportMetricsServiceRequest) -> bytes:
    """OTLP/JSON of a metrics request, written out field by field."""
    resources = []
    for resource_metrics in request.resource_metrics:
        scopes = []
        for scope_metrics in resource_metrics.scope_metrics:
            metrics = []
            for metric in scope_metrics.metrics:
                entry: dict[str, Any] = {"name": metric.name, "unit": metric.unit}
                kind = metric.WhichOneof("data")
                if kind is None:
                    metrics.append(entry)
                    continue
                data = getattr(metric, kind)
                points = [_point_json(kind, point) for point in data.data_points]
                out: dict[str, Any] = {"dataPoints": points}
                if kind in ("sum", "histogram", "exponential_histogram"):
                    out["aggregationTemporality"] = data.aggregation_temporality
                if kind == "sum":
                    out["isMonotonic"] = data.is_monotonic
                name = "exponentialHistogram" if kind == "exponential_histogram" else kind
                entry[name] = out
                metrics.append(entry)
            scopes.append({"scope": {"name": scope_metrics.scope.name}, "metrics": metrics})
        resources.append(
            {
                "resource": {"attributes": _attributes_json(resource_metrics.resource.attributes)},
                "scopeMetrics": scopes,
            }
        )
    return orjson.dumps({"resourceMetrics": resources})


def _attributes_json(attributes: Any) -> list[dict[str, Any]]:
    return [{"key": kv.key, "value": _any_from_pb(kv.value)} for kv in attributes]


def _any_from_pb(value: AnyValue) -> dict[str, Any]:
    which = value.WhichOneof("value")
    if which is None:
        return {}
    if which == "array_value":
        return {"arrayValue": {"values": [_any_from_pb(v) for v in value.array_value.values]}}
    if which == "kvlist_value":
        return {"kvlistValue": {"values": _attributes_json(value.kvlist_value.values)}}
    if which == "int_value":
        return {"intValue": str(value.int_value)}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(value.bytes_value).decode()}
    camel = {
        "string_value": "stringValue",
        "bool_value": "boolValue",
        "double_value": "doubleValue",
    }
    return {camel[which]: getattr(value, which)}


def _point_json(kind: str, point: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "attributes": _attributes_json(point.attributes),
        "timeUnixNano": str(point.time_unix_nano),
    }
    if point.start_time_unix_nano:
        out["startTimeUnixNano"] = str(point.start_time_unix_nano)
    if kind in ("gauge", "sum"):
        which = point.WhichOneof("value")
        if which == "as_int":
            out["asInt"] = str(point.as_int)
        elif which == "as_double":
            out["asDouble"] = point.as_double
        return out
    out["count"] = str(point.count)
    if kind == "summary" or point.HasField("sum"):
        out["sum"] = point.sum
    if kind == "histogram":
        out["bucketCounts"] = [str(count) for count in point.bucket_counts]
        out["explicitBounds"] = list(point.explicit_bounds)
    elif kind == "exponential_histogram":
        out["scale"] = point.scale
        out["zeroCount"] = str(point.zero_count)
        out["zeroThreshold"] = point.zero_threshold
        for side in ("positive", "negative"):
            buckets = getattr(point, side)
            out[side] = {
                "offset": buckets.offset,
                "bucketCounts": [str(count) for count in buckets.bucket_counts],
            }
    elif kind == "summary":
        out["quantileValues"] = [
            {"quantile": q.quantile, "value": q.value} for q in point.quantile_values
        ]
    return out


def logs_json(request: ExportLogsServiceRequest) -> bytes:
    """OTLP/JSON of a logs request, written out field by field."""
    resources = []
    for resource_logs in request.resource_logs:
        scopes = []
        for scope_logs in resource_logs.scope_logs:
            records = []
            for record in scope_logs.log_records:
                entry: dict[str, Any] = {
                    "timeUnixNano": str(record.time_unix_nano),
                    "observedTimeUnixNano": str(record.observed_time_unix_nano),
                    "severityNumber": record.severity_number,
                    "severityText": record.severity_text,
                    "attributes": _attributes_json(record.attributes),
                    "traceId": record.trace_id.hex(),
                    "spanId": record.span_id.hex(),
                    "eventName": record.event_name,
                }
                if record.HasField("body"):
                    entry["body"] = _any_from_pb(record.body)
                records.append(entry)
            scopes.append({"scope": {"name": scope_logs.scope.name}, "logRecords": records})
        resources.append(
            {
                "resource": {"attributes": _attributes_json(resource_logs.resource.attributes)},
                "scopeLogs": scopes,
            }
        )
    return orjson.dumps({"resourceLogs": resources})
