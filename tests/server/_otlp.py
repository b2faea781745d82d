"""OTLP requests built by hand for receiver tests (protobuf and OTLP/JSON)."""

from __future__ import annotations

import os
import time
from typing import Any

from _decode_requests import kv_pb as kv
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def trace_request(
    traces: int = 1,
    spans_per_trace: int = 3,
    *,
    service: str = "checkout",
    attributes: dict[str, Any] | None = None,
    scope: str = "test.instrumentation",
) -> tuple[ExportTraceServiceRequest, list[str]]:
    """A request with ``traces`` traces of a root and children; returns it and the trace ids."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(kv({"service.name": service}))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    now = time.time_ns()
    trace_ids = []
    for _ in range(traces):
        trace_id = os.urandom(16)
        trace_ids.append(trace_id.hex())
        root = os.urandom(8)
        for index in range(spans_per_trace):
            span = scope_spans.spans.add()
            span.trace_id = trace_id
            span.span_id = root if index == 0 else os.urandom(8)
            if index:
                span.parent_span_id = root
            span.name = "root" if index == 0 else f"child-{index}"
            span.kind = Span.SPAN_KIND_SERVER if index == 0 else Span.SPAN_KIND_CLIENT
            span.start_time_unix_nano = now - 5_000_000 + index
            span.end_time_unix_nano = now
            span.attributes.extend(kv(attributes or {}))
    return request, trace_ids


def json_trace_request(trace_id: str, span_ids: list[str], **attributes: Any) -> dict[str, Any]:
    """An OTLP/JSON request: hex ids, int64 as strings, enums as integers."""
    now = time.time_ns()
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "hand.written"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": f"op-{index}",
                                "kind": 3,
                                "startTimeUnixNano": str(now - 1_000_000),
                                "endTimeUnixNano": str(now),
                                "attributes": [
                                    {"key": key, "value": {"stringValue": str(value)}}
                                    if isinstance(value, str)
                                    else {"key": key, "value": {"intValue": str(value)}}
                                    for key, value in attributes.items()
                                ],
                                "status": {"code": 2 if index else 0, "message": ""},
                                "someFutureField": {"ignored": True},
                            }
                            for index, span_id in enumerate(span_ids)
                        ],
                    }
                ],
            }
        ]
    }


def metrics_request(service: str = "metrics-svc") -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(kv({"service.name": service}))
    scope = resource_metrics.scope_metrics.add()
    now = time.time_ns()
    gauge = scope.metrics.add()
    gauge.name = "gpu.utilization"
    point = gauge.gauge.data_points.add()
    point.time_unix_nano = now
    point.as_double = 0.75
    counter = scope.metrics.add()
    counter.name = "requests"
    counter.sum.is_monotonic = True
    counter.sum.aggregation_temporality = 2
    point = counter.sum.data_points.add()
    point.time_unix_nano = now
    point.as_int = 42
    histogram = scope.metrics.add()
    histogram.name = "latency"
    histogram.histogram.aggregation_temporality = 2
    point = histogram.histogram.data_points.add()
    point.time_unix_nano = now
    point.count = 6
    point.sum = 1.5
    point.explicit_bounds.extend([0.1, 0.5])
    point.bucket_counts.extend([2, 3, 1])
    return request


def logs_request(
    service: str = "logs-svc", trace_id: bytes | None = None
) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(kv({"service.name": service}))
    scope = resource_logs.scope_logs.add()
    record = scope.log_records.add()
    record.time_unix_nano = time.time_ns()
    record.severity_number = 17
    record.severity_text = "ERROR"
    record.body.string_value = "model timed out"
    if trace_id is not None:
        record.trace_id = trace_id
        record.span_id = os.urandom(8)
    return request
