"""WebSocket /api/v1/ws: subscriptions, notifications, bad messages, slow clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from _auth import auth_app
from _stream_app import agent_trace, app_client, post_spans
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from pyflare.records import from_readable_spans
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.api import ws
from pyflare_server.auth.permissions import permission_of
from pyflare_server.pipeline.broadcast import MAX_CHANNELS, Hub
from pyflare_server.pipeline.memory import MemoryQueue


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with app_client(tmp_path) as (client, _):
        yield client


def hub_of(client: TestClient) -> Hub:
    hub: Hub = client.app.state.core.hub  # type: ignore[attr-defined]
    return hub


def receive(session: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(session.receive_text())
    assert set(message) == {"type", "payload", "timestamp"}
    return message


def subscribe(session: Any, *channels: str, action: str = "subscribe") -> list[str]:
    session.send_text(json.dumps({"action": action, "channels": list(channels)}))
    reply = receive(session)
    assert reply["type"] == f"{action}d", reply
    held: list[str] = reply["payload"]["channels"]
    return held


def test_the_route_needs_traces_read() -> None:
    [route] = ws.routes(Hub())
    assert route.path == "/api/v1/ws"
    assert permission_of(route.endpoint) == "traces:read"


def test_a_trace_notification_per_stored_root(client: TestClient) -> None:
    with client.websocket_connect("/api/v1/ws") as session:
        assert subscribe(session, "traces:*") == ["traces:*"]
        post_spans(client, agent_trace(7, failed=True))
        message = receive(session)
    assert message["type"] == "trace"
    assert message["timestamp"].endswith("Z")
    assert message["payload"] == {
        "trace_id": f"{7:032x}",
        # The root has no model: the trace's model is its child's.
        "model_id": "gpt-4o-mini",
        "status": "error",
        "duration_ms": 10.0,
        "timestamp": "2026-01-01T00:00:00.000000000Z",
        "service_name": "agent",
        "operation_name": "answer",
    }


def test_a_model_channel_hears_only_that_models_traces(client: TestClient) -> None:
    with client.websocket_connect("/api/v1/ws") as session:
        subscribe(session, "traces:gpt-4o")
        post_spans(client, agent_trace(1, model="gpt-4o-mini"))
        post_spans(client, agent_trace(2, model=None))
        post_spans(client, agent_trace(3, model="gpt-4o"))
        message = receive(session)
    # Notifications arrive in write order: the first this client hears of is trace 3.
    assert message["payload"]["trace_id"] == f"{3:032x}"
    assert message["payload"]["status"] == "ok"


def test_a_trace_is_sent_once_to_a_client_on_several_matching_channels(
    client: TestClient,
) -> None:
    with client.websocket_connect("/api/v1/ws") as session:
        subscribe(session, "traces:*", "traces:gpt-4o-mini", "traces:gpt-4o")
        post_spans(client, agent_trace(4, root_model="gpt-4o"))
        post_spans(client, agent_trace(5, model=None))
        first, second = receive(session), receive(session)
    assert first["payload"]["trace_id"] == f"{4:032x}"
    assert first["payload"]["model_id"] == "gpt-4o"  # the root's own model comes first
    assert second["payload"]["trace_id"] == f"{5:032x}"
    assert second["payload"]["model_id"] is None


def test_cost_notifications_per_priced_span(client: TestClient) -> None:
    with client.websocket_connect("/api/v1/ws") as session:
        subscribe(session, "costs:*")
        post_spans(client, agent_trace(8, model="gpt-4o-mini"))
        message = receive(session)
    assert message["type"] == "cost"
    payload = message["payload"]
    assert payload["trace_id"] == f"{8:032x}"
    assert payload["span_id"] == f"{2:016x}"
    assert payload["model_id"] == "gpt-4o-mini"
    assert (payload["input_tokens"], payload["output_tokens"]) == (1000, 500)
    assert payload["cost_micros"] > 0
    assert payload["cost_usd"] == payload["cost_micros"] / 1e6


def test_unsubscribe_stops_a_channel(client: TestClient) -> None:
    with client.websocket_connect("/api/v1/ws") as session:
        assert subscribe(session, "traces:*", "costs:gpt-4o-mini") == [
            "costs:gpt-4o-mini",
            "traces:*",
        ]
        assert subscribe(session, "traces:*", action="unsubscribe") == ["costs:gpt-4o-mini"]
        # Unsubscribing from a channel not held is no error.
        assert subscribe(session, "alerts:*", action="unsubscribe") == ["costs:gpt-4o-mini"]
        post_spans(client, agent_trace(9))
        assert receive(session)["type"] == "cost"


def test_channels_with_colons_in_the_key(client: TestClient) -> None:
    model = "ft:gpt-4o-mini:acme:support:abc123"
    with client.websocket_connect("/api/v1/ws") as session:
        subscribe(session, f"traces:{model}")
        post_spans(client, agent_trace(10, model=model))
        assert receive(session)["payload"]["model_id"] == model


TOO_MANY = [f"traces:model-{i}" for i in range(MAX_CHANNELS + 1)]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("not json", "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"subscribe"', "must be a JSON object"),
        ("{}", "action must be subscribe or unsubscribe, got None"),
        ('{"action": "publish", "channels": ["traces:*"]}', "got 'publish'"),
        ('{"action": 1, "channels": ["traces:*"]}', "got 1"),
        ('{"action": "subscribe"}', "channels must be a non-empty list"),
        ('{"action": "subscribe", "channels": "traces:*"}', "channels must be a non-empty list"),
        ('{"action": "subscribe", "channels": []}', "channels must be a non-empty list"),
        ('{"action": "subscribe", "channels": [42]}', "a channel is a string"),
        ('{"action": "subscribe", "channels": ["logs:*"]}', "unknown channel 'logs:*'"),
        ('{"action": "subscribe", "channels": ["traces"]}', "has no key: write traces:*"),
        ('{"action": "subscribe", "channels": ["traces:"]}', "has no key"),
        ('{"action": "subscribe", "channels": ["traces:a\\nb"]}', "must be printable"),
        ('{"action": "subscribe", "channels": ["traces:' + "m" * 300 + '"]}', "at most 256"),
        ('{"action": "subscribe", "channels": ["traces:*"], "x": 1}', "unknown field(s) 'x'"),
        (json.dumps({"action": "subscribe", "channels": TOO_MANY}), "at most 100 channels"),
        (json.dumps({"action": "subscribe", "channels": ["traces:" + "x" * 70_000]}), "limit"),
        ("{" * 100_000, "the limit is 65,536"),
    ],
)
def test_bad_messages_get_an_error_and_the_connection_stays(
    client: TestClient, message: str, expected: str
) -> None:
    with client.websocket_connect("/api/v1/ws") as session:
        session.send_text(message)
        reply = receive(session)
        assert reply["type"] == "error"
        assert reply["payload"]["code"] == "invalid_message"
        assert expected in reply["payload"]["message"]
        # Nothing was subscribed, and the connection still works.
        assert subscribe(session, "drift:*") == ["drift:*"]


def test_a_binary_frame_is_an_error_not_a_disconnect(client: TestClient) -> None:
    with client.websocket_connect("/api/v1/ws") as session:
        session.send_bytes(b'{"action": "subscribe", "channels": ["traces:*"]}')
        reply = receive(session)
        assert reply["type"] == "error"
        assert "text frames" in reply["payload"]["message"]
        assert subscribe(session, "traces:*") == ["traces:*"]


def test_a_bad_subscribe_changes_nothing(client: TestClient) -> None:
    with client.websocket_connect("/api/v1/ws") as session:
        session.send_text(json.dumps({"action": "subscribe", "channels": ["traces:*", "x:y"]}))
        assert receive(session)["type"] == "error"
        assert subscribe(session, "alerts:*") == ["alerts:*"]


def test_a_slow_client_is_closed_and_forgotten(tmp_path: Path) -> None:
    with app_client(tmp_path, {"PYFLARE_SERVER__API__WS_MAX_QUEUE": "3"}) as (client, store):
        hub = hub_of(client)
        with client.websocket_connect("/api/v1/ws") as session:
            subscribe(session, "traces:*")
            # Ten finished traces in one write: more than three wait at once.
            post_spans(client, [span for t in range(10) for span in agent_trace(100 + t)])
            with pytest.raises(WebSocketDisconnect) as closed:
                session.receive_text()
        assert closed.value.code == 1008
        assert "too slow" in closed.value.reason
        assert hub.subscriptions() == 0
        assert not hub.wants("traces")
        # The spans were stored all the same, and the stream serves new clients.
        assert store.sql("SELECT count(*) AS n FROM traces").column("n")[0].as_py() == 20
        with client.websocket_connect("/api/v1/ws") as session:
            assert subscribe(session, "traces:*") == ["traces:*"]
            post_spans(client, agent_trace(200))
            assert receive(session)["payload"]["trace_id"] == f"{200:032x}"


def test_shutdown_closes_clients_with_1001(client: TestClient) -> None:
    with client.websocket_connect("/api/v1/ws") as session:
        subscribe(session, "traces:*")
        hub_of(client).close()
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
    assert closed.value.code == 1001
    # A client connecting after that is told the same at once.
    with client.websocket_connect("/api/v1/ws") as session:
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
    assert closed.value.code == 1001


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        ("viewer", ["traces:*", "metrics:*", "drift:*"], ["costs:*", "alerts:*"]),
        ("operator", ["traces:x", "alerts:*", "drift:fraud-model"], ["costs:*"]),
        ("developer", ["traces:*", "costs:*", "alerts:*", "metrics:*"], []),
        ("admin", ["traces:*", "costs:*", "alerts:*", "drift:*", "metrics:*"], []),
    ],
)
def test_each_topic_needs_its_read_permission(
    tmp_path: Path, role: str, allowed: list[str], refused: list[str]
) -> None:
    with (
        auth_app(tmp_path) as app,
        app.client.websocket_connect(
            "/api/v1/ws", headers={"X-API-Key": app.keys[role]}
        ) as session,
    ):
        for channel in refused:
            session.send_text(json.dumps({"action": "subscribe", "channels": [channel]}))
            reply = receive(session)
            assert reply["type"] == "error"
            needed = ws.TOPIC_PERMISSIONS[channel.split(":")[0]]
            assert f"{channel!r} needs the {needed} permission" in reply["payload"]["message"]
        assert subscribe(session, *allowed) == sorted(allowed)


def test_the_handshake_needs_credentials_when_auth_is_on(tmp_path: Path) -> None:
    with auth_app(tmp_path) as app:
        with pytest.raises(WebSocketDisconnect) as closed:
            with app.client.websocket_connect("/api/v1/ws"):
                pass
        assert closed.value.code == 1008
        # The ingest role may write spans, not read them.
        with pytest.raises(WebSocketDisconnect) as closed:
            with app.client.websocket_connect(
                "/api/v1/ws", headers={"X-API-Key": app.keys["ingest"]}
            ):
                pass
        assert closed.value.code == 1008
        assert "traces:read" in closed.value.reason


# -- the hub on its own ----------------------------------------------------------


async def test_a_subscription_holds_at_most_max_queue_messages() -> None:
    hub = Hub(max_queue=2)
    subscription = hub.subscribe()
    hub.add_channels(subscription, ["traces:*"])
    assert subscription.offer("a") and subscription.offer("b")
    assert not subscription.offer("c")
    assert subscription.close_code == 1008
    assert subscription.waiting() == 0  # what waited is dropped, not kept
    assert await subscription.next() is None
    hub.unsubscribe(subscription)
    assert hub.subscriptions() == 0
    assert not hub.wants("traces")


def test_a_hub_needs_room_for_one_message() -> None:
    with pytest.raises(ValueError, match="max_queue must be at least 1"):
        Hub(max_queue=0)


async def test_the_hub_never_fails_a_write(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    hub.add_channels(hub.subscribe(), ["traces:*"])  # someone listens: the rows are read
    hub.stored("traces", pa.table({"unexpected": [1]}))
    assert "building live-stream notifications failed" in caplog.text


async def test_the_queue_stores_once_when_a_listener_fails(tmp_path: Path) -> None:
    def broken(signal: str, table: pa.Table) -> None:
        raise RuntimeError("listener bug")

    with DuckDBSpanStore(tmp_path / "q.duckdb") as store:
        queue = MemoryQueue(store, on_stored=broken)
        await queue.put("traces", from_readable_spans(agent_trace(1)))
        await queue.close()
        assert store.sql("SELECT count(*) AS n FROM traces").column("n")[0].as_py() == 2
