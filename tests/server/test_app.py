"""create_app(): every route on one ASGI app, with a lifespan that starts and drains."""

from __future__ import annotations

from pathlib import Path

from _otlp import trace_request
from starlette.testclient import TestClient

from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.app import create_app
from pyflare_server.settings import ServerSettings


def test_one_app_receives_and_answers_queries(tmp_path: Path) -> None:
    store_path = tmp_path / "app.duckdb"
    settings = ServerSettings.load(
        env={"PYFLARE_COLLECTOR__OTLP__DECODE_WORKERS": "0"},
        # On loopback auth is off by default (tests/server/test_auth*.py cover it on).
        overrides={"store": f"duckdb:///{store_path}", "host": "127.0.0.1"},
    )
    request, [trace_id] = trace_request(traces=1, spans_per_trace=4, service="embedded")
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json()["ready"] is True
        response = client.post(
            "/v1/traces",
            content=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert response.status_code == 200
        listed = client.get("/api/v1/traces", params={"service": "embedded"}).json()
        assert [trace["trace_id"] for trace in listed["traces"]] == [trace_id]
        spans = client.get(f"/api/v1/traces/{trace_id}/spans").json()
        assert len(spans) == 4
        assert "pyflare_accepted_total" in client.get("/metrics").text
    # The lifespan closed the store it opened: another store can open the file now.
    reopened = DuckDBSpanStore(store_path, read_only=True)
    try:
        assert reopened.sql("SELECT count(*) AS n FROM traces").column("n")[0].as_py() == 4
    finally:
        reopened.close()


def test_a_store_passed_in_stays_open(tmp_path: Path) -> None:
    store = DuckDBSpanStore(tmp_path / "mine.duckdb")
    settings = ServerSettings.load(
        env={"PYFLARE_COLLECTOR__OTLP__DECODE_WORKERS": "0"}, overrides={"host": "127.0.0.1"}
    )
    try:
        with TestClient(create_app(settings, store=store)) as client:
            request, _ = trace_request(traces=2, spans_per_trace=2)
            response = client.post(
                "/v1/traces",
                content=request.SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            )
            assert response.status_code == 200
        assert store.sql("SELECT count(*) AS n FROM traces").column("n")[0].as_py() == 4
    finally:
        store.close()
