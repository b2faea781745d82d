"""The role by route matrix, costs:read:own, and WebSocket handshakes."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from _auth import AuthApp, auth_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from pyflare_server.auth.middleware import AuthMiddleware
from pyflare_server.auth.permissions import PUBLIC, ROLES, allows, permission_of, requires

CALLERS = ("admin", "developer", "viewer", "viewer-anonymous", "operator", "ingest")
NO_LIMIT = {"server": {"rate_limit": {"enabled": False}}}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthApp]:
    with auth_app(tmp_path_factory.mktemp("roles"), NO_LIMIT) as made:
        yield made


def expected(caller: str, needed: str) -> bool:
    """What the spec's roles say (costs:read:own needs a user id)."""
    role = caller.removesuffix("-anonymous")
    granted = ROLES[role]
    if needed == PUBLIC or allows(granted, needed.removesuffix(":own")):
        return True
    return allows(granted, needed.removesuffix(":own") + ":own") and caller == "viewer"


def http_routes(app: AuthApp) -> list[tuple[str, str, str]]:
    found = []
    for route in app.client.app.routes:  # type: ignore[attr-defined]
        if not isinstance(route, Route):
            continue
        permission = permission_of(route.endpoint)
        assert permission is not None, route.path
        method = sorted((route.methods or {"GET"}) - {"HEAD"})[0]
        path = re.sub(r"\{trace_id[^}]*\}", "0" * 32, route.path)
        path = re.sub(r"\{[^}]+\}", "m1", path)
        found.append((method, path, permission))
    return found


def test_the_role_route_matrix(app: AuthApp) -> None:
    routes = http_routes(app)
    assert len(routes) >= 10
    wrong = []
    for caller in CALLERS:
        headers = {"X-API-Key": app.keys[caller], "Content-Type": "application/json"}
        for method, path, needed in routes:
            response = app.client.request(method, path, headers=headers, content=b"{}")
            # The middleware's refusals (a resource may refuse more itself: the costs
            # resource refuses a viewer what it cannot narrow to the viewer's costs).
            refused = response.status_code == 403 and any(
                reason in response.json()["detail"] for reason in ("is needed", "no user id")
            )
            assert response.status_code != 401, (caller, path, response.text)
            if refused == expected(caller, needed):
                wrong.append((caller, method, path, needed, response.status_code))
    assert wrong == []


# -- costs:read:own: what the costs resource relies on -------------------------


@requires("costs:read")
async def owner(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "cost_owner": getattr(request.state, "cost_owner", None),
            "subject": request.state.principal.subject,
        }
    )


@requires("traces:read")
async def live(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"subject": websocket.state.principal.subject})
    await websocket.close()


def probe(app: AuthApp) -> TestClient:
    routes: list[BaseRoute] = [
        Route("/api/v1/costs-probe", owner),
        WebSocketRoute("/api/v1/ws-probe", live),
    ]
    made = Starlette(routes=routes)
    made.add_middleware(
        AuthMiddleware,
        routes=routes,
        guard=app.client.app.state.core.auth.guard,  # type: ignore[attr-defined]
    )
    return TestClient(made)


@pytest.mark.parametrize(
    ("caller", "status", "cost_owner"),
    [
        ("admin", 200, None),
        ("developer", 200, None),
        ("viewer", 200, "user-viewer"),
        ("viewer-anonymous", 403, None),
        ("operator", 403, None),
        ("ingest", 403, None),
    ],
)
def test_costs_read_own_sets_the_cost_owner(
    app: AuthApp, caller: str, status: int, cost_owner: str | None
) -> None:
    with probe(app) as client:
        response = client.get("/api/v1/costs-probe", headers={"X-API-Key": app.keys[caller]})
    assert response.status_code == status
    if status == 200:
        assert response.json()["cost_owner"] == cost_owner
    elif caller == "viewer-anonymous":
        assert "no user id" in response.json()["detail"]
    else:
        assert "costs:read is needed" in response.json()["detail"]


def test_a_viewer_sees_only_its_own_costs_through_the_real_route(app: AuthApp) -> None:
    # Whatever the costs resource answers, a viewer is let in (with its cost owner).
    window = {"start_time": "1h", "end_time": "0s"}
    response = app.get("/api/v1/costs", "viewer", params=window)
    assert response.status_code == 200, response.text
    refused = app.get("/api/v1/costs", "viewer-anonymous", params=window)
    assert refused.status_code == 403
    assert "no user id" in refused.json()["detail"]


def test_websocket_handshakes_are_checked(app: AuthApp) -> None:
    with probe(app) as client:
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/api/v1/ws-probe"),
        ):
            pass
        assert refused.value.code == 1008
        assert "credentials" in refused.value.reason
        with (
            pytest.raises(WebSocketDisconnect) as forbidden,
            client.websocket_connect("/api/v1/ws-probe", headers={"X-API-Key": app.keys["ingest"]}),
        ):
            pass
        assert forbidden.value.code == 1008
        assert "traces:read is needed" in forbidden.value.reason
        # Browsers cannot set headers on a WebSocket: the key may come in the query.
        key = app.keys["viewer"]
        with client.websocket_connect(f"/api/v1/ws-probe?api_key={key}") as ws:
            assert ws.receive_json()["subject"].startswith("key:")
        with client.websocket_connect(
            "/api/v1/ws-probe", headers={"Authorization": f"Bearer {key}"}
        ) as ws:
            assert ws.receive_json()["subject"].startswith("key:")
