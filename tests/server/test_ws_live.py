"""The live stream on a real server: uvicorn, a real WebSocket client, OTLP over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from _live import LiveServer, live_server
from _stream_app import PROTOBUF, agent_trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

# A safety net so a broken server fails the test instead of hanging it; never asserted on.
WAIT_S = 30


def send_traces(server: LiveServer, *traces: int) -> None:
    spans = [span for trace in traces for span in agent_trace(trace)]
    body = encode_spans(spans).SerializeToString()
    response = httpx.post(f"{server.http}/v1/traces", content=body, headers=PROTOBUF)
    assert response.status_code == 200, response.text


def stream(server: LiveServer) -> ClientConnection:
    return connect(f"ws://{server.listeners.api}/api/v1/ws", open_timeout=WAIT_S)


def receive(client: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(client.recv(timeout=WAIT_S))
    return message


def subscribe(client: ClientConnection, *channels: str) -> None:
    client.send(json.dumps({"action": "subscribe", "channels": list(channels)}))
    assert receive(client)["type"] == "subscribed"


def test_a_client_hears_of_traces_received_over_otlp(tmp_path: Path) -> None:
    with live_server(tmp_path) as server, stream(server) as client:
        subscribe(client, "traces:gpt-4o-mini")
        client.send("not json")
        assert receive(client)["type"] == "error"
        send_traces(server, 41)
        message = receive(client)
        assert message["type"] == "trace"
        assert message["payload"]["trace_id"] == f"{41:032x}"
        assert message["payload"]["model_id"] == "gpt-4o-mini"


def test_a_client_that_falls_behind_is_closed_with_1008(tmp_path: Path) -> None:
    config = {"server": {"api": {"ws_max_queue": 2}}}
    with live_server(tmp_path, config) as server:
        with stream(server) as client:
            subscribe(client, "traces:*")
            send_traces(server, *range(1, 7))
            with pytest.raises(ConnectionClosed) as closed:
                receive(client)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        assert "too slow" in closed.value.rcvd.reason
        # The server goes on: the spans were stored, and new clients are served.
        with stream(server) as client:
            subscribe(client, "traces:*")
            send_traces(server, 50)
            assert receive(client)["payload"]["trace_id"] == f"{50:032x}"


def test_the_server_stops_with_clients_connected(tmp_path: Path) -> None:
    running = live_server(tmp_path)
    server = running.__enter__()
    stopped = False
    try:
        with stream(server) as client:
            subscribe(client, "traces:*")
            # Stopping drains and returns although a client is still connected.
            running.__exit__(None, None, None)
            stopped = True
            with pytest.raises(ConnectionClosed) as closed:
                receive(client)
    finally:
        if not stopped:
            running.__exit__(None, None, None)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code in (1001, 1012)
