"""OTLP/gRPC against a real server, through grpcio's client."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from _live import FlakyStore, LiveServer, live_server
from _otlp import logs_request, metrics_request, trace_request
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    config = {"collector": {"otlp": {"grpc": {"max_recv_msg_size_mib": 1}}}}
    with live_server(tmp_path_factory.mktemp("otlp-grpc"), config) as live:
        yield live


@pytest.fixture
def channel(server: LiveServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc) as chan:
        yield chan


def count(server: LiveServer, trace_ids: list[str]) -> int:
    table = server.core.store.sql(
        "SELECT count(*) AS n FROM traces WHERE list_contains(?, trace_id)", [trace_ids]
    )
    return int(table.column("n")[0].as_py())


def test_export_traces_is_stored_before_ok(server: LiveServer, channel: grpc.Channel) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    request, trace_ids = trace_request(traces=3, spans_per_trace=4)
    response = stub.Export(request, timeout=10)
    assert not response.HasField("partial_success")
    assert count(server, trace_ids) == 12


def test_gzip_compressed_calls(server: LiveServer, channel: grpc.Channel) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    request, trace_ids = trace_request(traces=2)
    stub.Export(request, timeout=10, compression=grpc.Compression.Gzip)
    assert count(server, trace_ids) == 6


def test_partial_success_over_grpc(server: LiveServer, channel: grpc.Channel) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    request, trace_ids = trace_request(traces=1, spans_per_trace=3)
    request.resource_spans[0].scope_spans[0].spans[2].span_id = b"\x01\x02"
    response = stub.Export(request, timeout=10)
    assert response.partial_success.rejected_spans == 1
    assert response.partial_success.error_message
    assert count(server, trace_ids) == 2


def test_garbage_is_invalid_argument(server: LiveServer, channel: grpc.Channel) -> None:
    call = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=None,
        response_deserializer=None,
    )
    with pytest.raises(grpc.RpcError) as caught:
        call(random.Random(7).randbytes(2048), timeout=10)  # fixed bytes: random ones can parse
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details()
    telemetry = server.core.telemetry
    assert (
        telemetry.value(
            "pyflare_requests_total", signal="traces", transport="grpc", outcome="INVALID_ARGUMENT"
        )
        >= 1
    )
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    request, trace_ids = trace_request()
    stub.Export(request, timeout=10)
    assert count(server, trace_ids) == 3


def test_messages_over_the_size_limit_are_refused(channel: grpc.Channel) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    request, _ = trace_request(traces=1, spans_per_trace=1, attributes={"big": "x" * 2_000_000})
    with pytest.raises(grpc.RpcError) as caught:
        stub.Export(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_metrics_and_logs_services(server: LiveServer, channel: grpc.Channel) -> None:
    metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(
        metrics_request("grpc-metrics"), timeout=10
    )
    logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs_request("grpc-logs"), timeout=10)
    metrics = server.core.store.sql(
        "SELECT count(*) AS n FROM metrics WHERE service_name = 'grpc-metrics'"
    )
    logs = server.core.store.sql("SELECT count(*) AS n FROM logs WHERE service_name = 'grpc-logs'")
    assert metrics.column("n")[0].as_py() == 3
    assert logs.column("n")[0].as_py() == 1


def test_a_full_queue_is_unavailable_with_retry_info(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "slow.duckdb")
    config = {"collector": {"batcher": {"max_queue_size": 10, "max_batch_size": 10}}}
    try:
        with (
            live_server(tmp_path, config, store=store) as server,
            grpc.insecure_channel(server.grpc) as channel,
        ):
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            store.gate.clear()
            first, first_ids = trace_request(traces=2, spans_per_trace=4)
            done: list[object] = []
            sender = threading.Thread(target=lambda: done.append(stub.Export(first, timeout=30)))
            sender.start()
            time.sleep(0.3)
            second, _ = trace_request(traces=1, spans_per_trace=4)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Export(second, timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            details = dict(caught.value.trailing_metadata() or ())["grpc-status-details-bin"]
            status = status_pb2.Status.FromString(details)
            retry = error_details_pb2.RetryInfo()
            assert status.details[0].Unpack(retry)
            assert retry.retry_delay.seconds >= 1
            store.gate.set()
            sender.join(30)
            assert len(done) == 1
            assert count(server, first_ids) == 8
    finally:
        store.gate.set()
        store.close()


def test_empty_request(channel: grpc.Channel) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    response = stub.Export(ExportTraceServiceRequest(), timeout=10)
    assert not response.HasField("partial_success")
