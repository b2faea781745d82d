"""Both OTLP receivers take an API key: HTTP headers and gRPC metadata."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from _live import LiveServer, live_server
from _otlp import logs_request, trace_request
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.auth.keys import create_key

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("receivers")
    with DuckDBSpanStore(directory / "server.duckdb") as store:
        made = {role: create_key(store, role).key for role in ("ingest", "admin", "viewer")}
    return directory, made


@pytest.fixture(scope="module")
def server(keys: tuple[Path, dict[str, str]]) -> Iterator[LiveServer]:
    directory, _ = keys
    # Loopback, with auth turned on explicitly.
    with live_server(directory, {"server": {"auth": {"enabled": True}}}) as live:
        yield live


def stored_spans(server: LiveServer) -> int:
    table = server.core.store.sql("SELECT count(*) AS n FROM traces")
    return int(table.column("n")[0].as_py())


def test_otlp_http_needs_a_key_with_write_permission(
    server: LiveServer, keys: tuple[Path, dict[str, str]]
) -> None:
    _, made = keys
    request, _ = trace_request(traces=1, spans_per_trace=2)
    body = request.SerializeToString()
    before = stored_spans(server)
    with httpx.Client(base_url=server.http, timeout=10) as client:
        missing = client.post("/v1/traces", content=body, headers=PROTOBUF)
        assert missing.status_code == 401
        assert "X-API-Key" in missing.json()["detail"]
        viewer = client.post(
            "/v1/traces", content=body, headers={**PROTOBUF, "X-API-Key": made["viewer"]}
        )
        assert viewer.status_code == 403
        assert "traces:write is needed" in viewer.json()["detail"]
        assert stored_spans(server) == before
        for role in ("ingest", "admin"):
            ok = client.post(
                "/v1/traces", content=body, headers={**PROTOBUF, "X-API-Key": made[role]}
            )
            assert ok.status_code == 200
        bearer = client.post(
            "/v1/traces",
            content=body,
            headers={**PROTOBUF, "Authorization": f"Bearer {made['ingest']}"},
        )
        assert bearer.status_code == 200
        assert client.get("/health").status_code == 200
    assert stored_spans(server) == before + 2  # the same spans, stored once


def test_otlp_grpc_needs_a_key_in_the_metadata(
    server: LiveServer, keys: tuple[Path, dict[str, str]]
) -> None:
    _, made = keys
    request, _ = trace_request(traces=1, spans_per_trace=3, service="grpc-auth")
    with grpc.insecure_channel(server.grpc) as channel:
        traces = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as missing:
            traces.Export(request, timeout=10)
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "needs credentials" in (missing.value.details() or "")
        with pytest.raises(grpc.RpcError) as bad:
            traces.Export(request, timeout=10, metadata=[("x-api-key", "pf_nope")])
        assert bad.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "malformed" in (bad.value.details() or "")
        with pytest.raises(grpc.RpcError) as denied:
            traces.Export(request, timeout=10, metadata=[("x-api-key", made["viewer"])])
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        traces.Export(request, timeout=10, metadata=[("x-api-key", made["ingest"])])
        traces.Export(request, timeout=10, metadata=[("authorization", f"Bearer {made['admin']}")])
        logs = logs_service_pb2_grpc.LogsServiceStub(channel)
        logs.Export(logs_request(), timeout=10, metadata=[("x-api-key", made["ingest"])])
    rows = server.core.store.sql(
        "SELECT count(*) AS n FROM traces WHERE service_name = 'grpc-auth'"
    )
    assert rows.column("n")[0].as_py() == 3
