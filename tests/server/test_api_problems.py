"""Errors are application/problem+json everywhere; costs:read:own callers see their own costs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient
from test_costs_api import HOUR, WINDOW, row, write

from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.api import costs, drift, metrics, traces
from pyflare_server.api._http import problem
from pyflare_server.app import create_app
from pyflare_server.auth.permissions import permission_of
from pyflare_server.settings import ServerSettings

PERMISSIONS = {
    "list_traces": "traces:read",
    "get_trace": "traces:read",
    "trace_spans": "traces:read",
    "list_metrics": "metrics:read",
    "metric_timeseries": "metrics:read",
    "drift_status": "drift:read",
    "drift_history": "drift:read",
    "drift_reference": "drift:configure",
    "costs": "costs:read",
    "costs_breakdown": "costs:read",
    "costs_forecast": "costs:read",
    "costs_budgets": "costs:read",
}


def test_every_read_route_declares_its_permission() -> None:
    store = DuckDBSpanStore()
    routes = [
        *traces.routes(store),
        *metrics.routes(store),
        *drift.routes(store),
        *costs.routes(store),
    ]
    assert {r.name: permission_of(r.endpoint) for r in routes} == PERMISSIONS
    store.close()


def test_the_problem_body() -> None:
    assert problem(429, "rate_limited", "slow down", instance="/api/v1/traces") == {
        "type": "urn:pyflare:problem:rate_limited",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "slow down",
        "instance": "/api/v1/traces",
        "code": "rate_limited",
    }
    assert problem(599, "odd", "x")["title"] == "Error"


def open_settings() -> ServerSettings:
    """The server's settings with auth off (the auth tests cover it)."""
    settings = ServerSettings.load()
    auth = settings.server.auth.model_copy(update={"enabled": False})
    server = settings.server.model_copy(update={"auth": auth})
    return settings.model_copy(update={"server": server})


@pytest.fixture
def app_client() -> Iterator[TestClient]:
    with (
        DuckDBSpanStore() as store,
        TestClient(create_app(open_settings(), store=store)) as client,
    ):
        yield client


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v1/traces/" + "a" * 32 + "/x"])
def test_an_unknown_path_is_a_404_problem(app_client: TestClient, path: str) -> None:
    response = app_client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["code"], body["instance"]) == ("not_found", path)
    assert "/api/v1/openapi.json" in body["detail"]


def test_a_wrong_method_is_a_405_problem_with_allow(app_client: TestClient) -> None:
    response = app_client.delete("/api/v1/traces")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert "GET" in response.headers["allow"]
    assert "DELETE is not allowed on /api/v1/traces" in response.json()["detail"]
    assert app_client.get("/api/v1/openapi.json").status_code == 200  # the app goes on


# -- costs:read:own --------------------------------------------------------------


class _Owner(BaseHTTPMiddleware):
    """What the auth middleware does for a caller with costs:read:own only."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        owner = request.headers.get("x-test-owner")
        if owner is not None:
            request.state.cost_owner = owner
        return await call_next(request)


@pytest.fixture
def costs_client() -> Iterator[TestClient]:
    with DuckDBSpanStore() as store:
        write(
            store,
            row(1, 0, 1_000, user_id="alice"),
            row(2, HOUR, 5_000, user_id="bob", model_id="claude-sonnet-4"),
            row(3, HOUR + 1, 7_000, user_id="bob"),
            row(4, 2 * HOUR, None, user_id="bob", model_id="new-model"),
        )
        app = Starlette(routes=costs.routes(store), middleware=[Middleware(_Owner)])
        with TestClient(app) as client:
            yield client


def get(client: TestClient, url: str, owner: str | None, **params: Any) -> Any:
    headers = {} if owner is None else {"x-test-owner": owner}
    return client.get(url, params={**WINDOW, **params}, headers=headers)


def test_an_owner_sees_only_their_own_summary(costs_client: TestClient) -> None:
    everyone = get(costs_client, "/api/v1/costs", None).json()
    assert (everyone["total_requests"], everyone["total_cost_micros"]) == (4, 13_000)
    bob = get(costs_client, "/api/v1/costs", "bob", group_by="user_id,model_id").json()
    assert (bob["total_requests"], bob["total_cost_micros"], bob["unpriced_requests"]) == (
        3,
        12_000,
        1,
    )
    assert {(g["user_id"], g["model_id"]) for g in bob["groups"]} == {
        ("bob", "gpt-4o"),
        ("bob", "claude-sonnet-4"),
        ("bob", "new-model"),
    }
    nobody = get(costs_client, "/api/v1/costs", "carol").json()
    assert (nobody["total_requests"], nobody["total_cost_micros"]) == (0, 0)


def test_an_owner_breakdown_lists_only_their_calls(costs_client: TestClient) -> None:
    by_user = get(costs_client, "/api/v1/costs/breakdown", "bob", dimension="user").json()
    assert [(i["value"], i["cost_micros"]) for i in by_user["items"]] == [("bob", 12_000)]
    by_model = get(
        costs_client, "/api/v1/costs/breakdown", "bob", dimension="model", limit=2
    ).json()
    assert [(i["value"], i["cost_micros"]) for i in by_model["items"]] == [
        ("gpt-4o", 7_000),
        ("claude-sonnet-4", 5_000),
    ]
    assert (by_model["total_cost_micros"], by_model["other"]["requests"]) == (12_000, 1)
    everyone = get(costs_client, "/api/v1/costs/breakdown", None, dimension="user").json()
    assert [i["value"] for i in everyone["items"]] == ["bob", "alice"]


@pytest.mark.parametrize("path", ["/api/v1/costs/forecast", "/api/v1/costs/budgets"])
def test_forecasts_and_budgets_are_403_for_an_owner(costs_client: TestClient, path: str) -> None:
    response = costs_client.get(path, headers={"x-test-owner": "bob"})
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "forbidden"
    assert "costs:read:own" in body["detail"]
    assert costs_client.get("/api/v1/costs/budgets").status_code == 200
