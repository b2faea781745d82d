"""PyFlare's rows into Kafka messages and back: the Collector's format, and a lossless round trip."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from _kafka_otlp_requests import logs, metrics, rich_traces, traces
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from pyflare_server.pipeline._kafka_otlp import (
    encode_logs,
    encode_metrics,
    encode_spans,
    typed_value,
)
from pyflare_server.receiver.decode import DecodeLimits, Encoding, Signal, decode

ENCODERS = {Signal.TRACES: encode_spans, Signal.METRICS: encode_metrics, Signal.LOGS: encode_logs}
# The worker decodes PyFlare's own messages with room for the promoted attributes.
WORKER_LIMITS = DecodeLimits(max_attributes=DecodeLimits().max_attributes + 8)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=repr)


def round_trip(signal: Signal, body: bytes, limits: DecodeLimits | None = None) -> None:
    first = decode(
        signal, body, Encoding.PROTOBUF, ingested_at_ns=1, limits=limits or DecodeLimits()
    )
    assert first.batch.num_rows and not first.rejected
    messages = ENCODERS[signal](first.batch)
    again = pa.concat_tables(
        decode(signal, value, Encoding.PROTOBUF, ingested_at_ns=1, limits=WORKER_LIMITS).batch
        for _, value in messages
    )
    assert _rows(again) == _rows(first.batch)


def test_spans_come_back_as_the_receiver_decoded_them() -> None:
    round_trip(Signal.TRACES, rich_traces().SerializeToString())


def test_spans_cut_at_the_decode_limits_come_back_the_same() -> None:
    limits = DecodeLimits(max_attribute_chars=10, max_attributes=5, max_events=1)
    request = rich_traces()
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.events.add(time_unix_nano=span.start_time_unix_nano, name="second")
    round_trip(Signal.TRACES, request.SerializeToString(), limits)


def test_metric_points_of_every_kind_come_back() -> None:
    round_trip(Signal.METRICS, metrics().SerializeToString())


def test_log_records_come_back() -> None:
    round_trip(Signal.LOGS, logs().SerializeToString())


def test_one_message_per_trace_keyed_by_its_hex_id_as_the_collector_does() -> None:
    request, ids = traces(4, 3)
    batch = decode(Signal.TRACES, request.SerializeToString(), Encoding.PROTOBUF).batch
    messages = encode_spans(batch)
    assert sorted(key for key, _ in messages) == sorted(i.encode() for i in ids)
    for key, value in messages:
        # The Collector writes TracesData (ptrace.ProtoMarshaler): the same bytes as the request.
        data = TracesData.FromString(value)
        assert ExportTraceServiceRequest.FromString(value).resource_spans == data.resource_spans
        spans = [s for rs in data.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert len(spans) == 3
        assert {s.trace_id.hex() for s in spans} == {key.decode()}
        assert data.resource_spans[0].resource.attributes[0].value.string_value == "checkout"


def test_metrics_and_logs_are_keyed_by_their_resource() -> None:
    other = metrics()
    other.resource_metrics[0].resource.attributes[0].value.string_value = "other-svc"
    for signal, requests in ((Signal.METRICS, (metrics(), other)), (Signal.LOGS, (logs(), logs()))):
        both = pa.concat_tables(
            decode(signal, request.SerializeToString(), Encoding.PROTOBUF).batch
            for request in requests
        )
        keys = [key for key, _ in ENCODERS[signal](both)]
        assert all(len(key) == 16 for key in keys)
        assert len(keys) == len({key for key in keys}) == (2 if signal is Signal.METRICS else 1)


def test_empty_batches_make_no_messages() -> None:
    from pyflare.records import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA

    assert encode_spans(SPAN_SCHEMA.empty_table()) == []
    assert encode_metrics(METRIC_SCHEMA.empty_table()) == []
    assert encode_logs(LOG_SCHEMA.empty_table()) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-3", -3),
        ("0.5", 0.5),
        ("1e-05", 1e-05),
        ("inf", "inf"),
        ("02134", "02134"),
        ("1_000", "1_000"),
        (" 7", " 7"),
        ("7.50", "7.50"),
        ("-", "-"),
        ("", ""),
        (str(2**70), str(2**70)),
        ("true", "true"),
        ("gpt-4o", "gpt-4o"),
    ],
)
def test_attribute_text_is_sent_as_a_number_only_when_it_renders_back_the_same(
    text: str, value: object
) -> None:
    assert typed_value(text) == value
    assert type(typed_value(text)) is type(value)
