"""The demo's traffic, received by a small OTLP/HTTP server that decodes the protobuf."""

from __future__ import annotations

import asyncio
import gzip
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from pyflare.errors import InvalidArgumentError
from pyflare_server.demo import TrafficStats, run_traffic, run_traffic_sync, traces_url

S = 1_000_000_000


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return None if kind is None else getattr(value, kind)


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True
    spans: list[dict[str, Any]]
    requests: int
    status: int


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        assert self.path == "/v1/traces"
        assert self.headers["Content-Type"] == "application/x-protobuf"
        request = ExportTraceServiceRequest.FromString(body)
        received = [
            {
                "service": {a.key: _value(a.value) for a in rs.resource.attributes}["service.name"],
                "resource": {a.key: _value(a.value) for a in rs.resource.attributes},
                "scope": ss.scope.name,
                "trace_id": span.trace_id.hex(),
                "span_id": span.span_id.hex(),
                "parent": span.parent_span_id.hex() or None,
                "name": span.name,
                "kind": span.kind,
                "start": span.start_time_unix_nano,
                "end": span.end_time_unix_nano,
                "error": span.status.code == 2,
                "message": span.status.message,
                "attributes": {a.key: _value(a.value) for a in span.attributes},
                "events": [e.name for e in span.events],
            }
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]
        self.server.requests += 1
        if self.server.status == 200:
            self.server.spans += received
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver(("127.0.0.1", 0), _Handler)
    server.spans, server.requests, server.status = [], 0, 200
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def url(server: _Receiver) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


def traces(spans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        grouped.setdefault(span["trace_id"], []).append(span)
    return grouped


def test_the_traffic_looks_like_an_ai_product(receiver: _Receiver) -> None:
    began = time.time_ns()
    stats = run_traffic_sync(
        url(receiver), duration_s=1.0, rate=100, seed=7, backfill_s=30, drift_after_s=15
    )
    spans = receiver.spans
    by_trace = traces(spans)
    assert stats == TrafficStats(
        traces=len(by_trace),
        spans=len(spans),
        error_traces=sum(any(s["error"] for s in t) for t in by_trace.values()),
        failed_spans=0,
    )
    assert 2500 < stats.traces < 3700  # 31 s at 100 a second
    assert {s["service"] for s in spans} == {"rag-api", "support-agent", "fraud-scoring"}
    assert {s["resource"]["deployment.environment.name"] for s in spans} == {"demo"}
    assert {s["scope"] for s in spans} == {"pyflare-demo"}
    # Every trace has one root and its children inside it, and ends in the timeline.
    for trace in by_trace.values():
        (root,) = [s for s in trace if s["parent"] is None]
        assert {s["parent"] for s in trace} - {None} <= {s["span_id"] for s in trace}
        assert all(root["start"] <= s["start"] <= s["end"] <= root["end"] for s in trace)
        assert began - 30 * S <= root["end"] <= time.time_ns()

    attributes = [s["attributes"] for s in spans]
    models = Counter(a.get("gen_ai.request.model") or a.get("llm.model_name") for a in attributes)
    assert {"gpt-4o-mini", "gpt-4o", "claude-3-5-haiku-20241022", "text-embedding-3-small"} <= set(
        models
    )
    assert "claude-3-5-sonnet-20241022" in models
    assert models["gpt-4o-mini"] > models["gpt-4o"] > models["claude-3-5-haiku-20241022"]
    chats = [a for a in attributes if a.get("gen_ai.operation.name") == "chat"]
    answered = [a for a in chats if "gen_ai.usage.output_tokens" in a]
    assert all(a["gen_ai.usage.input_tokens"] >= 300 for a in answered)
    assert all(a["pyflare.cost.micros"] >= 1 for a in answered)
    assert all("gen_ai.input.messages" in a for a in chats)
    assert any("jane.doe@example.com" in (a.get("pyflare.input.preview") or "") for a in attributes)
    agent_llm = [a for a in attributes if a.get("openinference.span.kind") == "LLM"]
    assert all(a["llm.token_count.total"] > a["llm.token_count.prompt"] for a in agent_llm)

    # Latency spreads: LLM calls take seconds, with a long tail; retrieval is quick.
    chat_ms = [
        (s["end"] - s["start"]) / 1e6
        for s in spans
        if s["attributes"].get("gen_ai.operation.name") == "chat" and not s["error"]
    ]
    assert 600 < statistics.median(chat_ms) < 4000
    assert max(chat_ms) > 3 * statistics.median(chat_ms)
    search_ms = [(s["end"] - s["start"]) / 1e6 for s in spans if s["name"] == "vector_search"]
    assert 10 < statistics.median(search_ms) < 100

    # A few percent of traces fail, each failure with its exception event.
    assert 0.01 < stats.error_traces / stats.traces < 0.08
    failed = [s for s in spans if s["error"]]
    assert all("exception" in s["events"] and s["message"] for s in failed)
    messages = " ".join(s["message"] for s in failed)
    assert "RateLimitError" in messages
    assert "APITimeoutError" in messages


def test_the_classifier_drifts_after_drift_after_s(receiver: _Receiver) -> None:
    began = time.time_ns()
    run_traffic_sync(
        url(receiver), duration_s=0.5, rate=150, seed=3, backfill_s=40, drift_after_s=20
    )
    drift_at = began - 20 * S
    scored = [
        s
        for s in receiver.spans
        if s["attributes"].get("pyflare.inference.type") == "classification"
    ]
    assert all(s["attributes"]["pyflare.model.id"] == "fraud-detector" for s in scored)
    # Spans are back-dated to end when sent; allow the milliseconds between.
    before = [s["attributes"] for s in scored if s["end"] < drift_at - S // 10]
    after = [s["attributes"] for s in scored if s["start"] > drift_at + S]
    assert len(before) > 300
    assert len(after) > 300

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[f"pyflare.feature.{key}"] for r in rows)

    def share(rows: list[dict[str, Any]], test: Any) -> float:
        return sum(map(test, rows)) / len(rows)

    assert median(after, "amount") > 2 * median(before, "amount")
    assert median(after, "account_age_days") < median(before, "account_age_days") / 3
    present = share(before, lambda r: r["pyflare.feature.card_present"])
    assert share(after, lambda r: r["pyflare.feature.card_present"]) < present - 0.2
    us_before = share(before, lambda r: r["pyflare.feature.country"] == "US")
    assert share(after, lambda r: r["pyflare.feature.country"] == "US") < us_before / 2
    fraud_before = share(before, lambda r: r["pyflare.prediction.label"] == "fraud")
    assert share(after, lambda r: r["pyflare.prediction.label"] == "fraud") > 2 * fraud_before
    assert all(0 <= r["pyflare.prediction.score"] <= 1 for r in before + after)
    assert all(r["pyflare.input.preview"].startswith('{"amount":') for r in before)


def test_live_traffic_is_paced(receiver: _Receiver) -> None:
    wall = time.monotonic()
    stats = run_traffic_sync(url(receiver), duration_s=2.0, rate=100, seed=11)
    wall = time.monotonic() - wall
    assert 150 < stats.traces < 250
    assert 1.9 < wall < 4.0
    # Sent while running (about once a second), not all at the end.
    assert receiver.requests >= 2
    assert len(receiver.spans) == stats.spans


def test_the_same_seed_sends_the_same_traffic_with_new_trace_ids(receiver: _Receiver) -> None:
    def content(spans: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (
                s["service"],
                s["name"],
                s["error"],
                s["end"] - s["start"],
                sorted(
                    (k, v)
                    for k, v in s["attributes"].items()
                    if k not in ("session.id", "gen_ai.response.id")
                ),
            )
            for s in spans
        ]

    run_traffic_sync(url(receiver), duration_s=0.3, rate=200, seed=5)
    first, receiver.spans = receiver.spans, []
    run_traffic_sync(url(receiver), duration_s=0.3, rate=200, seed=5)
    assert content(receiver.spans) == content(first)
    assert not {s["trace_id"] for s in first} & {s["trace_id"] for s in receiver.spans}
    receiver.spans = []
    run_traffic_sync(url(receiver), duration_s=0.3, rate=200, seed=6)
    assert content(receiver.spans) != content(first)


async def test_async_run_stops_when_told(receiver: _Receiver) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_traffic(url(receiver), rate=50, seed=1, stop=stop))
    await asyncio.sleep(0.6)
    stopped_at = time.monotonic()
    stop.set()
    stats = await asyncio.wait_for(task, timeout=5)
    assert time.monotonic() - stopped_at < 1.0
    assert stats.traces > 5
    assert len(traces(receiver.spans)) == stats.traces  # what was planned got sent


async def test_cancelling_the_async_run_stops_the_thread(receiver: _Receiver) -> None:
    task = asyncio.create_task(run_traffic(url(receiver), rate=50, duration_s=None))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)
    count = len(receiver.spans)
    await asyncio.sleep(0.5)
    assert len(receiver.spans) == count  # nothing sends any more


def test_a_rejecting_endpoint_counts_failed_spans(receiver: _Receiver) -> None:
    receiver.status = 400
    stats = run_traffic_sync(url(receiver), duration_s=0.3, rate=100, seed=2)
    assert stats.spans > 0
    assert stats.failed_spans == stats.spans
    assert receiver.requests >= 1


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("http://localhost:4318", "http://localhost:4318/v1/traces"),
        ("http://localhost:4318/", "http://localhost:4318/v1/traces"),
        ("https://otel.example.com/v1/traces", "https://otel.example.com/v1/traces"),
        ("http://h:1/prefix", "http://h:1/prefix/v1/traces"),
    ],
)
def test_traces_url(endpoint: str, expected: str) -> None:
    assert traces_url(endpoint) == expected


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"otlp_endpoint": "localhost:4318"}, "must be an http:// or https:// URL"),
        ({"rate": 0}, "rate must be a number ≥ 0.001, got 0"),
        ({"rate": float("nan")}, "rate"),
        ({"rate": float("inf")}, "finite"),
        ({"rate": "fast"}, "rate"),
        ({"duration_s": -1}, "duration_s"),
        ({"backfill_s": -5}, "backfill_s"),
        ({"backfill_s": float("inf")}, "finite"),
        ({"drift_after_s": -1}, "drift_after_s"),
        ({"duration_s": True}, "duration_s"),
    ],
)
def test_bad_arguments(arguments: dict[str, Any], message: str) -> None:
    arguments = {"otlp_endpoint": "http://127.0.0.1:9", "duration_s": 0.1, **arguments}
    with pytest.raises(InvalidArgumentError, match=message):
        run_traffic_sync(**arguments)
