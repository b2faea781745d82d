"""GET /api/v1/openapi.json: the document matches what the server does (schemathesis)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.testclient import TestClient
from test_api_metrics import POINTS, metric_table
from test_api_traces import SPANS

from pyflare.records import from_readable_spans
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server import api
from pyflare_server.api import costs
from pyflare_server.api._http import http_exception_handler
from pyflare_server.api.openapi import build_document, operation_of
from pyflare_server.app import create_app
from pyflare_server.auth.permissions import permission_of


def api_app(store: DuckDBSpanStore) -> Starlette:
    return Starlette(
        routes=[*api.routes(store), *costs.routes(store)],
        exception_handlers={HTTPException: http_exception_handler},
    )


def filled_store() -> DuckDBSpanStore:
    store = DuckDBSpanStore()
    store.write(from_readable_spans(SPANS))
    store.write_metrics(metric_table(POINTS))
    return store


# Loaded at collection, as schemathesis parametrizes from it; closed after the module.
STORE = filled_store()
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", api_app(STORE))


@pytest.fixture(scope="module", autouse=True)
def close_store() -> Iterator[None]:
    yield
    STORE.close()


@pytest.fixture
def store() -> DuckDBSpanStore:
    return STORE


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_server_does_what_its_openapi_document_says(case: Any) -> None:
    # Every check but positive_data_acceptance: a request the schema allows may still
    # be a 400 when its parameters disagree with each other (end_time before
    # start_time, an ambiguous trace id prefix), which a schema cannot say. The app
    # here has no auth middleware (the auth tests check 401/403 on every route), so
    # ignored_auth is left out too.
    case.call_and_validate(excluded_checks=[positive_data_acceptance, ignored_auth])


def test_the_document_is_openapi_3_1_with_every_api_route(store: DuckDBSpanStore) -> None:
    with TestClient(api_app(store)) as client:
        response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": "/api/v1"}]
    assert set(document["paths"]) == {
        "/traces",
        "/traces/{trace_id}",
        "/traces/{trace_id}/spans",
        "/metrics",
        "/metrics/timeseries",
        "/drift/{model_id}",
        "/drift/{model_id}/history",
        "/drift/{model_id}/reference",
        "/costs",
        "/costs/breakdown",
        "/costs/forecast",
        "/costs/budgets",
    }
    listing = document["paths"]["/traces"]["get"]
    assert listing["x-permission"] == "traces:read"
    assert {"400", "401", "403", "429", "503"} <= set(listing["responses"])
    problem = listing["responses"]["400"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    names = {p["name"] for p in listing["parameters"]}
    assert {"service", "model_id", "start_time", "end_time", "status", "attribute"} <= names
    assert {"text", "limit", "offset", "min_duration_ms"} <= names
    schemas = document["components"]["schemas"]
    assert {"TraceList", "TraceDetail", "Span", "MetricSeries", "DriftStatus"} <= set(schemas)
    assert document["paths"]["/drift/{model_id}/reference"]["post"]["x-permission"] == (
        "drift:configure"
    )


def test_every_api_route_of_the_server_is_documented_and_declares_a_permission() -> None:
    app = create_app(store=DuckDBSpanStore())
    api_routes = [r for r in app.routes if isinstance(r, Route) and r.path.startswith("/api/v1/")]
    assert len(api_routes) >= 13
    for route in api_routes:
        assert permission_of(route.endpoint) is not None, route.path
        if route.path != "/api/v1/openapi.json":
            assert operation_of(route.endpoint) is not None, route.path
    documented = build_document(app.routes)["paths"]
    assert set(documented) == {
        route.path.removeprefix("/api/v1")
        for route in api_routes
        if route.path != "/api/v1/openapi.json"
    }


def test_an_undocumented_route_is_left_out() -> None:
    async def plain(request: Any) -> Any:
        raise AssertionError("never called")

    assert build_document([Route("/api/v1/plain", plain)])["paths"] == {}
