"""OTLP/HTTP against a real server: formats, partial success and every kind of bad request."""

from __future__ import annotations

import gzip
import os
import random
import signal
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from _live import FlakyStore, LiveServer, live_server
from _otlp import json_trace_request, logs_request, metrics_request, trace_request
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # One decode worker process, as the server runs by default on a 2-core machine.
    config = {
        "collector": {
            "otlp": {"decode_workers": 1, "http": {"max_body_mib": 1, "read_timeout_s": 1.0}}
        }
    }
    with live_server(tmp_path_factory.mktemp("otlp-http"), config) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http, timeout=10) as http:
        yield http


def stored(server: LiveServer, trace_ids: list[str]) -> int:
    table = server.core.store.sql(
        "SELECT count(*) AS n FROM traces WHERE list_contains(?, trace_id)", [trace_ids]
    )
    return int(table.column("n")[0].as_py())


def test_protobuf_request_is_stored_before_the_answer(
    server: LiveServer, client: httpx.Client
) -> None:
    request, trace_ids = trace_request(traces=4, spans_per_trace=5)
    response = client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert not answer.HasField("partial_success")
    assert stored(server, trace_ids) == 20  # a 200 means stored: no waiting


def test_json_request_with_ids_as_hex_and_int64_as_strings(
    server: LiveServer, client: httpx.Client
) -> None:
    trace_id = os.urandom(16).hex()
    span_ids = [os.urandom(8).hex() for _ in range(3)]
    body = json_trace_request(trace_id, span_ids, **{"gen_ai.request.model": "gpt-4o"})
    response = client.post("/v1/traces", content=orjson.dumps(body), headers=JSON)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    rows = server.core.store.spans(trace_id).to_pylist()
    assert sorted(row["span_id"] for row in rows) == sorted(span_ids)
    assert {row["service_name"] for row in rows} == {"json-svc"}
    assert {row["model_id"] for row in rows} == {"gpt-4o"}
    assert sorted(row["status_code"] for row in rows) == ["error", "error", "unset"]
    assert {row["span_kind"] for row in rows} == {"client"}


def test_spans_with_bad_ids_are_rejected_one_by_one(
    server: LiveServer, client: httpx.Client
) -> None:
    trace_id = os.urandom(16).hex()
    body = json_trace_request(trace_id, [os.urandom(8).hex(), "not-hex!", "abcd"])
    response = client.post("/v1/traces", content=orjson.dumps(body), headers=JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "span" in partial["errorMessage"].lower()
    assert stored(server, [trace_id]) == 1

    wrong_type = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 7}]}]}]}
    response = client.post("/v1/traces", content=orjson.dumps(wrong_type), headers=JSON)
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"

    request, trace_ids = trace_request(traces=1, spans_per_trace=2)
    request.resource_spans[0].scope_spans[0].spans[1].trace_id = b"short"
    response = client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert response.status_code == 200
    assert answer.partial_success.rejected_spans == 1
    assert answer.partial_success.error_message
    assert stored(server, trace_ids) == 1


def test_an_empty_request_is_ok(client: httpx.Client) -> None:
    assert client.post("/v1/traces", content=b"", headers=PROTOBUF).status_code == 200
    empty = ExportTraceServiceRequest().SerializeToString()
    assert client.post("/v1/traces", content=empty, headers=PROTOBUF).status_code == 200
    response = client.post("/v1/traces", content=b"{}", headers=JSON)
    assert response.status_code == 200
    assert response.json() == {}


def test_gzip_and_deflate_bodies(server: LiveServer, client: httpx.Client) -> None:
    request, trace_ids = trace_request(traces=2)
    body = gzip.compress(request.SerializeToString())
    response = client.post(
        "/v1/traces", content=body, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 200
    request2, trace_ids2 = trace_request(traces=1)
    response = client.post(
        "/v1/traces",
        content=zlib.compress(request2.SerializeToString()),
        headers={**PROTOBUF, "Content-Encoding": "deflate"},
    )
    assert response.status_code == 200
    assert stored(server, trace_ids + trace_ids2) == 9


def status_of(response: httpx.Response) -> status_pb2.Status:
    if response.headers["content-type"] == "application/json":
        return status_pb2.Status(**response.json())
    return status_pb2.Status.FromString(response.content)


def test_a_gzip_bomb_is_cut_off_at_the_limit(server: LiveServer, client: httpx.Client) -> None:
    bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9)  # 200 MiB inflated
    assert len(bomb) < 300_000
    started = time.monotonic()
    response = client.post(
        "/v1/traces", content=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert "limit of 1048576 bytes" in status_of(response).message
    assert time.monotonic() - started < 5  # never inflated whole
    assert_still_serving(server, client)


def test_body_over_the_limit_is_413(server: LiveServer, client: httpx.Client) -> None:
    response = client.post("/v1/traces", content=b"\0" * (1024 * 1024 + 1), headers=PROTOBUF)
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("headers", "status", "needle"),
    [
        ({"Content-Type": "text/plain"}, 415, "unsupported content type 'text/plain'"),
        ({}, 415, "unsupported content type"),
        ({**PROTOBUF, "Content-Encoding": "br"}, 415, "unsupported Content-Encoding 'br'"),
        ({**PROTOBUF, "Content-Encoding": "gzip"}, 400, "not valid gzip"),
    ],
)
def test_wrong_content_type_or_encoding(
    client: httpx.Client, headers: dict[str, str], status: int, needle: str
) -> None:
    request, _ = trace_request()
    response = client.post("/v1/traces", content=request.SerializeToString(), headers=headers)
    assert response.status_code == status
    assert needle in status_of(response).message


def test_truncated_gzip_is_400(client: httpx.Client) -> None:
    request, _ = trace_request(traces=3)
    body = gzip.compress(request.SerializeToString())[:-20]
    response = client.post(
        "/v1/traces", content=body, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 400
    assert "truncated" in status_of(response).message


def test_other_methods_are_405(client: httpx.Client) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = client.request(method, "/v1/traces")
        assert response.status_code == 405
        assert "POST" in response.headers["allow"]


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (lambda: trace_request(traces=5)[0].SerializeToString()[:-7], PROTOBUF),
        (lambda: random.Random(7).randbytes(4096), PROTOBUF),  # fixed: random bytes can parse
        (lambda: b"{not json", JSON),
        (lambda: b'{"resourceSpans": "oops"}', JSON),
        (lambda: b'{"resourceSpans": [{"scopeSpans": "x"}]}', JSON),
        (lambda: b"[1, 2, 3]", JSON),
    ],
    ids=["truncated-protobuf", "random-bytes", "not-json", "wrong-shape", "wrong-type", "array"],
)
def test_undecodable_bodies_are_400_with_a_status_message(
    server: LiveServer, client: httpx.Client, body: Any, headers: dict[str, str]
) -> None:
    response = client.post("/v1/traces", content=body(), headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == headers["Content-Type"]
    status = status_of(response)
    assert status.code == 3  # INVALID_ARGUMENT
    assert len(status.message) > 10
    assert_still_serving(server, client)


def assert_still_serving(server: LiveServer, client: httpx.Client) -> None:
    request, trace_ids = trace_request(traces=1, spans_per_trace=2)
    response = client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200
    assert stored(server, trace_ids) == 2


def test_a_client_that_sends_its_body_slowly_gets_408(
    server: LiveServer, client: httpx.Client
) -> None:
    request, _ = trace_request(traces=2)
    body = request.SerializeToString()
    host, port = server.listeners.otlp_http.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        started = time.monotonic()
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert time.monotonic() - started < 5
    assert_still_serving(server, client)


def test_metrics_and_logs_are_stored(server: LiveServer, client: httpx.Client) -> None:
    trace_id = os.urandom(16)
    response = client.post(
        "/v1/metrics", content=metrics_request("m-svc").SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 200
    response = client.post(
        "/v1/logs",
        content=logs_request("l-svc", trace_id).SerializeToString(),
        headers=PROTOBUF,
    )
    assert response.status_code == 200
    metrics = server.core.store.sql(
        "SELECT metric_name, value_type FROM metrics WHERE service_name = 'm-svc' ORDER BY 1"
    ).to_pylist()
    assert metrics == [
        {"metric_name": "gpu.utilization", "value_type": "gauge"},
        {"metric_name": "latency", "value_type": "histogram"},
        {"metric_name": "requests", "value_type": "counter"},
    ]
    logs = server.core.store.sql(
        "SELECT body, severity_text, trace_id FROM logs WHERE service_name = 'l-svc'"
    ).to_pylist()
    assert logs == [
        {"body": "model timed out", "severity_text": "ERROR", "trace_id": trace_id.hex()}
    ]


def test_health_and_prometheus_metrics(server: LiveServer, client: httpx.Client) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["ready"] is True
    with httpx.Client(base_url=server.api) as api:
        assert api.get("/health").json()["status"] == "ok"
        text = api.get("/metrics").text
    assert "pyflare_received_total" in text
    assert "pyflare_queue_depth_rows" in text
    telemetry = server.core.telemetry
    assert (
        telemetry.value("pyflare_requests_total", signal="traces", transport="http", outcome="200")
        > 0
    )
    assert (
        telemetry.value("pyflare_requests_total", signal="traces", transport="http", outcome="400")
        > 0
    )
    assert telemetry.value("pyflare_accepted_total", signal="traces") > 0


def test_store_failure_is_503_and_later_requests_are_stored(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "flaky.duckdb")
    try:
        with (
            live_server(tmp_path, store=store) as server,
            httpx.Client(base_url=server.http) as client,
        ):
            store.fail = True
            request, _ = trace_request()
            response = client.post(
                "/v1/traces", content=request.SerializeToString(), headers=PROTOBUF
            )
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert "disk full" in status_of(response).message
            store.fail = False
            assert_still_serving(server, client)
    finally:
        store.close()


def test_a_full_queue_answers_429_with_retry_after(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "slow.duckdb")
    config = {"collector": {"batcher": {"max_queue_size": 10, "max_batch_size": 10}}}
    try:
        with (
            live_server(tmp_path, config, store=store) as server,
            httpx.Client(base_url=server.http, timeout=30) as client,
        ):
            store.gate.clear()  # the writer blocks: whatever is accepted stays queued
            first, first_ids = trace_request(traces=2, spans_per_trace=4)
            results: list[int] = []
            sender = threading.Thread(
                target=lambda: results.append(
                    client.post(
                        "/v1/traces", content=first.SerializeToString(), headers=PROTOBUF
                    ).status_code
                )
            )
            sender.start()
            time.sleep(0.3)
            second, _ = trace_request(traces=1, spans_per_trace=4)
            response = client.post(
                "/v1/traces", content=second.SerializeToString(), headers=PROTOBUF
            )
            assert response.status_code == 429
            assert int(response.headers["retry-after"]) >= 1
            store.gate.set()
            sender.join(30)
            assert results == [200]
            assert stored(server, first_ids) == 8
    finally:
        store.gate.set()
        store.close()


def test_a_decode_worker_that_dies_costs_one_503(tmp_path: Path) -> None:
    config = {"collector": {"otlp": {"decode_workers": 1}}}
    with live_server(tmp_path, config) as server, httpx.Client(base_url=server.http) as client:
        assert_still_serving(server, client)
        pool = server.core._pool
        assert pool is not None
        [pid] = list(pool._pool._processes)
        os.kill(pid, signal.SIGKILL)
        request, _ = trace_request()
        response = client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
        assert response.status_code == 503
        assert "decode worker" in status_of(response).message
        assert response.headers["retry-after"] == "1"
        assert_still_serving(server, client)  # a new worker took over


def test_browsers_get_cors_answers(client: httpx.Client) -> None:
    preflight = client.options(
        "/v1/traces",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", "http://localhost:5173")
    assert "POST" in preflight.headers["access-control-allow-methods"]
    request, _ = trace_request()
    response = client.post(
        "/v1/traces",
        content=request.SerializeToString(),
        headers={**PROTOBUF, "Origin": "http://localhost:5173"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "http://localhost:5173")
