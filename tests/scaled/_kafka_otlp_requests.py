"""OTLP requests for the scaled mode's tests, built with the generated OTLP classes."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

T0 = 1_700_000_000_000_000_000


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=kvs(value)))
    return AnyValue(string_value=str(value))


def kvs(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def traces(
    n_traces: int,
    spans_per_trace: int = 3,
    *,
    service: str = "checkout",
    attributes: dict[str, Any] | None = None,
    scope: str = "test.instrumentation",
    start: int = T0,
) -> tuple[ExportTraceServiceRequest, list[str]]:
    """A request of ``n_traces`` traces (a root and children); returns it and the trace ids."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(kvs({"service.name": service}))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    ids = []
    for t in range(n_traces):
        trace_id = os.urandom(16)
        ids.append(trace_id.hex())
        root = os.urandom(8)
        for index in range(spans_per_trace):
            span = scope_spans.spans.add()
            span.trace_id = trace_id
            span.span_id = root if index == 0 else os.urandom(8)
            if index:
                span.parent_span_id = root
            span.name = "root" if index == 0 else f"child-{index}"
            span.kind = 2 if index == 0 else 3  # type: ignore[assignment]
            span.start_time_unix_nano = start + t * 1_000_000 + index
            span.end_time_unix_nano = start + t * 1_000_000 + 5_000_000
            span.attributes.extend(kvs(attributes or {}))
    return request, ids


def rich_traces() -> ExportTraceServiceRequest:
    """Two resources, several scopes, every value type, events, statuses, a cut name."""
    request = ExportTraceServiceRequest()
    for r, service in enumerate(("rag-bot", "agent")):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(
            kvs({"service.name": service, "host.cores": 8, "deployment.environment.name": "prod"})
        )
        for s, scope_name in enumerate(("openinference.instrumentation", "opentelemetry.genai")):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = scope_name
            trace_id = bytes([r + 1, s + 1]) * 8
            for i in range(3):
                span = scope_spans.spans.add()
                span.trace_id = trace_id
                span.span_id = bytes([r + 1, s + 1, i + 1]) + b"\x07" * 5
                if i:
                    span.parent_span_id = bytes([r + 1, s + 1, 1]) + b"\x07" * 5
                span.name = "x" * 20 if i == 2 else f"op-{i}"
                span.kind = i  # type: ignore[assignment]
                span.start_time_unix_nano = T0 + i
                span.end_time_unix_nano = T0 + 1_000 + i
                span.attributes.extend(
                    kvs(
                        {
                            "gen_ai.request.model": "gpt-4o-mini",
                            "gen_ai.usage.input_tokens": 120,
                            "llm.token_count.completion": 7.0,
                            "openinference.span.kind": "LLM",
                            "temperature": 0.25,
                            "stream": False,
                            "zip": "02134",
                            "tags": ["a", 1, 2.5],
                            "payload": {"k": [1, {"deep": True}]},
                            "raw": b"\x00\xff",
                            "input.value": "q" * 1500,
                            "pyflare.input.hash": "abc",
                            "big": str(2**70),
                            "neg": -3,
                        }
                    )
                )
                event = span.events.add()
                event.time_unix_nano = T0 + 10
                event.name = "exception"
                event.attributes.extend(kvs({"exception.type": "ValueError", "n": 2}))
                span.status.code = i  # type: ignore[assignment]
                span.status.message = "boom" if i == 2 else ""
    return request


def metrics() -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(
        kvs({"service.name": "metrics-svc", "deployment.environment": "staging"})
    )
    scope = resource_metrics.scope_metrics.add()
    scope.scope.name = "meter"
    gauge = scope.metrics.add(name="gpu.utilization", unit="1")
    gauge.gauge.data_points.add(time_unix_nano=T0, as_double=0.75).attributes.extend(
        kvs({"gen_ai.request.model": "llama"})
    )
    gauge.gauge.data_points.add(time_unix_nano=T0 + 1)  # no value
    counter = scope.metrics.add(name="requests")
    counter.sum.is_monotonic = True
    counter.sum.aggregation_temporality = 2  # type: ignore[assignment]
    counter.sum.data_points.add(time_unix_nano=T0, start_time_unix_nano=T0 - 5, as_int=42)
    updown = scope.metrics.add(name="in_flight")
    updown.sum.aggregation_temporality = 1  # type: ignore[assignment]
    updown.sum.data_points.add(time_unix_nano=T0, as_int=-3)
    histogram = scope.metrics.add(name="latency", unit="s")
    histogram.histogram.aggregation_temporality = 1  # type: ignore[assignment]
    histogram.histogram.data_points.add(
        time_unix_nano=T0, count=6, sum=1.5, explicit_bounds=[0.1, 0.5], bucket_counts=[2, 3, 1]
    )
    histogram.histogram.data_points.add(time_unix_nano=T0 + 1, count=0)
    exponential = scope.metrics.add(name="tokens")
    exponential.exponential_histogram.aggregation_temporality = 2  # type: ignore[assignment]
    point = exponential.exponential_histogram.data_points.add(
        time_unix_nano=T0, count=5, sum=40.0, scale=1, zero_count=1
    )
    point.positive.offset = 2
    point.positive.bucket_counts.extend([1, 3])
    summary = scope.metrics.add(name="rt")
    summary_point = summary.summary.data_points.add(time_unix_nano=T0, count=4, sum=2.0)
    summary_point.quantile_values.add(quantile=0.5, value=0.4)
    summary_point.quantile_values.add(quantile=0.99, value=0.9)
    return request


def logs() -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(kvs({"service.name": "logs-svc"}))
    scope = resource_logs.scope_logs.add()
    scope.scope.name = "logger"
    record = scope.log_records.add(
        time_unix_nano=T0, severity_number=17, severity_text="ERROR", event_name="model.failed"
    )
    record.body.string_value = "model timed out"
    record.trace_id = b"\x05" * 16
    record.span_id = b"\x06" * 8
    record.attributes.extend(kvs({"attempt": 3, "fatal": True}))
    other = scope.log_records.add(observed_time_unix_nano=T0 + 5, severity_number=9)
    other.body.kvlist_value.values.extend(kvs({"msg": "hi", "n": 1}))
    return request
