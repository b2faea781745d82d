"""OTLP decoding of metrics and logs: every kind of point, log records, both encodings agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from _decode_requests import INGESTED_NS, MS, T0, any_json, any_pb, kv_pb, logs_json, metrics_json
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from pyflare.records import LOG_SCHEMA, METRIC_SCHEMA
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare.tracing.masking import PIIConfig, PIIMasker
from pyflare_server.receiver.decode import (
    TRUNCATED,
    Decoded,
    DecodeLimits,
    Encoding,
    Signal,
    decode,
)

PB, JSON = Encoding.PROTOBUF, Encoding.JSON


# -- metrics ------------------------------------------------------------------------------------


def _metrics_request() -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(
        kv_pb({"service.name": "llm-api", "deployment.environment": "staging"})
    )
    scope = resource_metrics.scope_metrics.add()
    scope.scope.name = "opentelemetry.instrumentation.openai_v2"

    gauge = scope.metrics.add(name="queue.depth", unit="{item}")
    point = gauge.gauge.data_points.add(time_unix_nano=T0, as_int=7)
    point.attributes.extend(kv_pb({"queue": "a"}))
    gauge.gauge.data_points.add(time_unix_nano=T0 + 1, as_double=2.5)

    counter = scope.metrics.add(name="gen_ai.client.token.usage", unit="{token}")
    counter.sum.is_monotonic = True
    counter.sum.aggregation_temporality = 2
    point = counter.sum.data_points.add(
        start_time_unix_nano=T0 - MS, time_unix_nano=T0, as_int=1234
    )
    point.attributes.extend(
        kv_pb(
            {
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.token.type": "input",
            }
        )
    )

    updown = scope.metrics.add(name="sessions.active")
    updown.sum.is_monotonic = False
    updown.sum.aggregation_temporality = 1
    updown.sum.data_points.add(time_unix_nano=T0, as_int=-3)

    histogram = scope.metrics.add(name="gen_ai.client.operation.duration", unit="s")
    histogram.histogram.aggregation_temporality = 1
    point = histogram.histogram.data_points.add(time_unix_nano=T0, count=6, sum=3.0)
    point.explicit_bounds.extend([0.1, 1.0])
    point.bucket_counts.extend([1, 3, 2])
    point.attributes.extend(kv_pb({"pyflare.model.id": "m1", "pyflare.model.version": "v2"}))
    histogram.histogram.data_points.add(time_unix_nano=T0, count=0)

    exponential = scope.metrics.add(name="latency.exp", unit="ms")
    exponential.exponential_histogram.aggregation_temporality = 2
    point = exponential.exponential_histogram.data_points.add(
        time_unix_nano=T0, count=7, sum=20.0, scale=1, zero_count=1, zero_threshold=0.5
    )
    point.positive.offset = 2
    point.positive.bucket_counts.extend([1, 2])
    point.negative.offset = 0
    point.negative.bucket_counts.extend([2, 1])

    summary = scope.metrics.add(name="rpc.duration", unit="ms")
    point = summary.summary.data_points.add(time_unix_nano=T0, count=4, sum=10.0)
    point.quantile_values.add(quantile=0.5, value=2.0)
    point.quantile_values.add(quantile=0.99, value=5.0)

    scope.metrics.add(name="no.data")
    return request


def decode_metrics(request: ExportMetricsServiceRequest) -> tuple[Decoded, list[dict[str, Any]]]:
    from_pb = decode(Signal.METRICS, request.SerializeToString(), PB, ingested_at_ns=INGESTED_NS)
    from_json = decode(Signal.METRICS, metrics_json(request), JSON, ingested_at_ns=INGESTED_NS)
    assert from_pb.batch.schema == METRIC_SCHEMA
    assert from_json.batch.equals(from_pb.batch), "JSON and protobuf rows differ"
    assert from_json.rejected == from_pb.rejected
    return from_pb, from_pb.batch.to_pylist()


def test_metric_points_become_rows() -> None:
    decoded, rows = decode_metrics(_metrics_request())
    assert (decoded.signal, decoded.rejected) == (Signal.METRICS, 0)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_name.setdefault(row["metric_name"], []).append(row)
        assert row["service_name"] == "llm-api"
        assert row["environment"] == "staging"
        assert row["scope_name"] == "opentelemetry.instrumentation.openai_v2"
        assert dict(row["resource"]) == {
            "service.name": "llm-api",
            "deployment.environment": "staging",
        }
    assert "no.data" not in by_name

    first, second = by_name["queue.depth"]
    assert (first["value_type"], first["value"], first["unit"]) == ("gauge", 7.0, "{item}")
    assert dict(first["attributes"]) == {"queue": "a"}
    assert (second["value"], second["temporality"], second["start_time"]) == (2.5, None, None)

    (tokens,) = by_name["gen_ai.client.token.usage"]
    assert (tokens["value_type"], tokens["temporality"], tokens["value"]) == (
        "counter",
        "cumulative",
        1234.0,
    )
    assert tokens["model_id"] == "gpt-4o-2024-08-06"
    assert pa.scalar(tokens["start_time"], pa.timestamp("ns")).value == T0 - MS
    assert pa.scalar(tokens["timestamp"], pa.timestamp("ns")).value == T0

    (sessions,) = by_name["sessions.active"]
    assert (sessions["value_type"], sessions["temporality"], sessions["value"]) == (
        "gauge",
        "delta",
        -3.0,
    )
    assert sessions["unit"] is None

    with_data, empty = by_name["gen_ai.client.operation.duration"]
    assert (with_data["value_type"], with_data["temporality"]) == ("histogram", "delta")
    assert (with_data["histogram_count"], with_data["histogram_sum"], with_data["value"]) == (
        6,
        3.0,
        0.5,
    )
    assert with_data["histogram_buckets"] == [
        {"upper_bound": 0.1, "count": 1},
        {"upper_bound": 1.0, "count": 3},
        {"upper_bound": float("inf"), "count": 2},
    ]
    assert (with_data["model_id"], with_data["model_version"]) == ("m1", "v2")
    assert (
        empty["histogram_count"],
        empty["histogram_sum"],
        empty["value"],
        empty["histogram_buckets"],
    ) == (0, None, None, [])

    (exponential,) = by_name["latency.exp"]
    root2 = 2**0.5
    bounds = [b["upper_bound"] for b in exponential["histogram_buckets"]]
    counts = [b["count"] for b in exponential["histogram_buckets"]]
    # negative: index 1 (-root2**2, -root2], index 0 (-root2, -1]; zero bucket; positive 2, 3
    assert bounds == pytest.approx([-root2, -1.0, 0.5, root2**3, root2**4, float("inf")])
    assert counts == [1, 2, 1, 1, 2, 0]
    assert sum(counts) == exponential["histogram_count"] == 7
    assert exponential["value"] == pytest.approx(20 / 7)

    (summary,) = by_name["rpc.duration"]
    assert (summary["value_type"], summary["value"], summary["histogram_count"]) == (
        "summary",
        2.5,
        4,
    )
    assert summary["quantiles"] == [
        {"quantile": 0.5, "value": 2.0},
        {"quantile": 0.99, "value": 5.0},
    ]


def test_bad_metric_points_are_rejected_one_by_one() -> None:
    request = _metrics_request()
    scope = request.resource_metrics[0].scope_metrics[0]
    histogram = scope.metrics.add(name="bad.buckets")
    point = histogram.histogram.data_points.add(time_unix_nano=T0, count=1)
    point.explicit_bounds.extend([1.0])
    point.bucket_counts.extend([1])
    scope.metrics.add(name="no.time").gauge.data_points.add(as_int=1)
    decoded, rows = decode_metrics(request)
    assert decoded.rejected == 2
    assert "1 bucket counts for 1 explicit bounds" in decoded.error_message
    assert "timeUnixNano is missing" in decoded.error_message
    assert len(rows) == 8


def test_metrics_go_into_the_store(tmp_path: Path) -> None:
    decoded, _ = decode_metrics(_metrics_request())
    with DuckDBSpanStore(tmp_path / "s.duckdb") as store:
        assert store.write_metrics(decoded.batch) == decoded.batch.num_rows == 8
        stored = store.sql("SELECT * FROM metrics ORDER BY metric_name, timestamp").cast(
            METRIC_SCHEMA
        )
    assert stored.sort_by(
        [("metric_name", "ascending"), ("timestamp", "ascending")]
    ).to_pylist() == (
        decoded.batch.sort_by(
            [("metric_name", "ascending"), ("timestamp", "ascending")]
        ).to_pylist()
    )


# -- logs ----------------------------------------------------------------------------------------


def _logs_request() -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(kv_pb({"service.name": "chat"}))
    scope = resource_logs.scope_logs.add()
    scope.scope.name = "app.logger"
    record = scope.log_records.add(
        time_unix_nano=T0,
        observed_time_unix_nano=T0 + 5,
        severity_number=17,
        severity_text="ERROR",
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
    )
    record.body.CopyFrom(any_pb("request failed for jane.doe@example.com"))
    record.attributes.extend(
        kv_pb({"exception.type": "ValueError", "gen_ai.prompt": "mail jane.doe@example.com"})
    )
    event = scope.log_records.add(observed_time_unix_nano=T0 + 9, event_name="gen_ai.choice")
    event.body.CopyFrom(any_pb({"index": 0, "message": {"content": "Paris"}}))
    named = scope.log_records.add(time_unix_nano=T0 + 1)
    named.attributes.extend(kv_pb({"event.name": "gen_ai.user.message"}))
    scope.log_records.add()  # no time at all: the time it was received
    return request


def decode_logs(
    request: ExportLogsServiceRequest, **options: Any
) -> tuple[Decoded, list[dict[str, Any]]]:
    options.setdefault("ingested_at_ns", INGESTED_NS)
    from_pb = decode(Signal.LOGS, request.SerializeToString(), PB, **options)
    from_json = decode(Signal.LOGS, logs_json(request), JSON, **options)
    assert from_pb.batch.schema == LOG_SCHEMA
    assert from_json.batch.equals(from_pb.batch), "JSON and protobuf rows differ"
    assert from_json.rejected == from_pb.rejected
    return from_pb, from_pb.batch.to_pylist()


def test_log_records_become_rows() -> None:
    decoded, (error, choice, named, bare) = decode_logs(_logs_request())
    assert (decoded.signal, decoded.rejected) == (Signal.LOGS, 0)
    assert pa.scalar(error["timestamp"], pa.timestamp("ns")).value == T0
    assert pa.scalar(error["observed_timestamp"], pa.timestamp("ns")).value == T0 + 5
    assert (error["trace_id"], error["span_id"]) == ("01" * 16, "02" * 8)
    assert (error["severity_number"], error["severity_text"]) == (17, "ERROR")
    assert error["body"] == "request failed for jane.doe@example.com"
    assert (error["service_name"], error["scope_name"], error["event_name"]) == (
        "chat",
        "app.logger",
        None,
    )
    assert dict(error["attributes"])["exception.type"] == "ValueError"
    assert pa.scalar(choice["timestamp"], pa.timestamp("ns")).value == T0 + 9  # the observed time
    assert choice["body"] == '{"index":0,"message":{"content":"Paris"}}'
    assert (choice["event_name"], choice["trace_id"], choice["severity_number"]) == (
        "gen_ai.choice",
        None,
        0,
    )
    assert named["event_name"] == "gen_ai.user.message"
    assert pa.scalar(bare["timestamp"], pa.timestamp("ns")).value == INGESTED_NS
    assert (bare["body"], bare["observed_timestamp"]) == (None, None)


def test_log_bodies_and_attributes_are_masked() -> None:
    def mask(values: dict[str, Any]) -> None:
        masker = PIIMasker(PIIConfig())
        for key, value in values.items():
            if key in ("log.body", "gen_ai.prompt") and isinstance(value, str):
                values[key] = masker.mask(value)

    _, (error, *_) = decode_logs(_logs_request(), mask_attributes=mask)
    assert error["body"] == "request failed for [EMAIL]"
    assert dict(error["attributes"])["gen_ai.prompt"] == "mail [EMAIL]"


def test_bad_log_records_are_rejected_one_by_one() -> None:
    request = _logs_request()
    scope = request.resource_logs[0].scope_logs[0]
    scope.log_records.add(time_unix_nano=T0, trace_id=b"\x01" * 5)
    scope.log_records.add(time_unix_nano=T0, span_id=b"\x01" * 9)
    decoded, rows = decode_logs(request)
    assert (decoded.rejected, len(rows)) == (2, 4)
    assert "traceId" in decoded.error_message and "spanId" in decoded.error_message


def test_a_long_log_body_is_cut_and_flagged(tmp_path: Path) -> None:
    request = _logs_request()
    request.resource_logs[0].scope_logs[0].log_records[0].body.string_value = "b" * 50
    _, (error, *_) = decode_logs(request, limits=DecodeLimits(max_attribute_chars=20))
    assert error["body"] == "b" * 20
    assert dict(error["attributes"])[TRUNCATED] == "gen_ai.prompt,[body]"
    decoded, _ = decode_logs(request)
    with DuckDBSpanStore(tmp_path / "s.duckdb") as store:
        assert store.write_logs(decoded.batch) == 4


def test_json_log_fields_in_every_spelling() -> None:
    body = {
        "resource_logs": [
            {
                "scope_logs": [
                    {
                        "log_records": [
                            {
                                "time_unix_nano": T0,
                                "severity_number": "SEVERITY_NUMBER_WARN2",
                                "body": any_json(["a", 1]),
                                "trace_id": "",
                                "unknown": [1, 2],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    decoded = decode(Signal.LOGS, orjson.dumps(body), JSON)
    assert decoded.rejected == 0, decoded.error_message
    (row,) = decoded.batch.to_pylist()
    assert (row["severity_number"], row["body"], row["trace_id"]) == (14, '["a",1]', None)


@pytest.mark.parametrize(
    ("point", "reason"),
    [
        ({"timeUnixNano": "x", "asInt": "1"}, "timeUnixNano must be an unsigned integer"),
        ({"timeUnixNano": "5", "asInt": "1.5"}, "asInt must be an integer"),
        ({"timeUnixNano": "5", "asDouble": "high"}, "asDouble must be a number"),
        ({"timeUnixNano": "5", "attributes": 7}, "attributes must be a list"),
        (["not", "a", "point"], "a data point must be an object"),
    ],
)
def test_json_metric_points_with_wrong_fields_are_rejected(point: Any, reason: str) -> None:
    good = {"timeUnixNano": "5", "asInt": "1"}
    body = {
        "resourceMetrics": [
            {"scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": [good, point]}}]}]}
        ]
    }
    decoded = decode(Signal.METRICS, orjson.dumps(body), JSON)
    assert (decoded.batch.num_rows, decoded.rejected) == (1, 1)
    assert reason in decoded.error_message
    assert (
        "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[1]" in decoded.error_message
    )
