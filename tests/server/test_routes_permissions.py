"""Every route of the server declares the permission it needs; none slips through."""

from __future__ import annotations

from pathlib import Path

import pytest
from _auth import auth_app, settings
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.testclient import TestClient

from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.app import ServerCore, create_app
from pyflare_server.auth.middleware import AuthMiddleware, Guard
from pyflare_server.auth.permissions import PUBLIC, permission_of
from pyflare_server.receiver.common import GRPC_SERVICES


def walk(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for route in routes:
        if isinstance(route, Mount):
            if route.routes:
                found.extend(walk(list(route.routes), prefix + route.path))
            else:
                found.append((prefix + route.path, route.app))
        else:
            found.append(
                (prefix + getattr(route, "path", repr(route)), getattr(route, "endpoint", route))
            )
    return found


def test_every_route_of_the_app_declares_a_permission(tmp_path: Path) -> None:
    store = DuckDBSpanStore(tmp_path / "s.duckdb")
    try:
        app = create_app(settings(), store=store)
        routes = walk(list(app.routes))
    finally:
        store.close()
    paths = {path for path, _ in routes}
    # The receivers, the service routes and the API are all there to be checked.
    assert {"/v1/traces", "/v1/metrics", "/v1/logs", "/health", "/metrics"} <= paths
    assert any(path.startswith("/api/v1/traces") for path in paths)
    assert any(path.startswith("/api/v1/costs") for path in paths)
    undeclared = sorted(path for path, endpoint in routes if permission_of(endpoint) is None)
    assert undeclared == [], f"routes without @requires(...): {undeclared}"
    declared = {path: permission_of(endpoint) for path, endpoint in routes}
    assert declared["/health"] == declared["/metrics"] == PUBLIC
    assert declared["/v1/traces"] == "traces:write"
    assert declared["/v1/metrics"] == "metrics:write"
    assert declared["/v1/logs"] == "logs:write"
    # Only what anyone may see: health, self-metrics and the API's description.
    public = {path for path, permission in declared.items() if permission == PUBLIC}
    assert public <= {"/health", "/metrics", "/api/v1/openapi.json"}


def test_each_listener_of_pyflare_server_is_guarded(tmp_path: Path) -> None:
    store = DuckDBSpanStore(tmp_path / "s.duckdb")
    try:
        core = ServerCore(settings(), store=store)
        for routes in (
            [*core.otlp_routes(), *core.service_routes()],
            [*core.api_routes(), *core.service_routes()],
        ):
            middleware = core.secured(routes)
            assert middleware[-1].cls is AuthMiddleware
            assert middleware[-1].kwargs["routes"] is routes
            assert all(permission_of(endpoint) for _, endpoint in walk(routes))
        # Auth is on (0.0.0.0): the gRPC server gets the interceptor.
        assert len(core.auth.grpc_interceptors()) == 1
    finally:
        store.close()


def test_every_grpc_service_needs_its_write_permission() -> None:
    from pyflare_server.auth.grpc_auth import GrpcAuthInterceptor

    needed = GrpcAuthInterceptor(authenticator=None)  # type: ignore[arg-type]
    assert sorted(needed._needed.values()) == ["logs:write", "metrics:write", "traces:write"]
    assert len(needed._needed) == len(GRPC_SERVICES)


async def _undeclared(request: object) -> PlainTextResponse:
    return PlainTextResponse("should never answer")


def test_a_route_without_a_permission_is_refused_while_auth_is_on(tmp_path: Path) -> None:
    with auth_app(tmp_path) as app:
        core = app.client.app.state.core  # type: ignore[attr-defined]
        routes: list[BaseRoute] = [
            Route("/api/v1/forgotten", _undeclared),
            WebSocketRoute("/api/v1/forgotten-ws", _undeclared),
        ]
        guard: Guard = core.auth.guard
        probe = Starlette(routes=routes)
        probe.add_middleware(AuthMiddleware, routes=routes, guard=guard)
        with TestClient(probe) as client:
            response = client.get("/api/v1/forgotten", headers={"X-API-Key": app.keys["admin"]})
        assert response.status_code == 403
        assert "declares no permission" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/nowhere", "/api/v1/nowhere"])
def test_unknown_paths_are_404_not_a_crash(tmp_path: Path, path: str) -> None:
    with auth_app(tmp_path) as app:
        assert app.get(path).status_code == 404
        assert app.get(path, "admin").status_code == 404
