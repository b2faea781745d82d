"""OTLP/HTTP trace load for ``bench/ingest.py``: OpenInference-style LLM traces, sent fast.

A request is 10 traces of 10 spans (a RAG chain: the root chain, a retriever, an
embedding, a tool call and six LLM calls) with ``openinference.span.kind``,
``llm.model_name``, ``llm.token_count.*``, ``input.value``/``output.value`` of a
few hundred characters and ~14 attributes a span on average, about 120 KB of
protobuf.

Encoding 100 spans with the protobuf runtime costs milliseconds, more than a
fast server spends storing them, and the client shares this machine's two cores
with the server. So a handful of *templates* are encoded once, with placeholder
trace ids, span ids and timestamps, and every request is a template copy with
those fixed-width fields overwritten in place: new ids unique to the request
index, times shifted by 1 ms per request. That costs ~0.1 ms a request. The
same works for OTLP/JSON, whose ids are fixed-width hex and whose times are
19-digit decimal strings.

Run as a process of its own, so the sender doesn't share a GIL with the bench's
monitor::

    python bench/_otlp_load.py --url http://127.0.0.1:4318/v1/traces --requests 200

It sends ``--requests`` requests over ``--clients`` keep-alive connections (one
thread each), honours 429/503 with Retry-After (capped at 1 s; 50 ms doubling
backoff without the header), and prints one JSON line of results.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import random
import struct
import sys
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

TRACES_PER_REQUEST = 10
SPANS_PER_TRACE = 10
SPANS_PER_REQUEST = TRACES_PER_REQUEST * SPANS_PER_TRACE
SHIFT_NS = 1_000_000  # each request's spans start 1 ms after the previous request's
CONTENT_TYPES = {"protobuf": "application/x-protobuf", "json": "application/json"}

# Span kinds and status codes as OTLP numbers them.
KIND_INTERNAL, KIND_CLIENT = 1, 3
STATUS_OK, STATUS_ERROR = 1, 2

_TRACE, _SPAN, _TIME = 0, 1, 2
_MASK63 = (1 << 63) - 1

WORDS = (
    *("the", "model", "retrieves", "relevant", "passages", "from", "the", "vector", "index"),
    *("and", "answers", "each", "question", "using", "only", "grounded", "context", "while"),
    *("citing", "section", "numbers", "such", "as", "4.2", "and", "17", "latency", "budget"),
    *("tokens", "prompt", "completion", "evaluation", "drift", "customer", "invoice", "refund"),
    *("policy", "shipping", "warranty", "account", "password", "reset", "subscription", "plan"),
)
MODELS = (
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("claude-3-5-sonnet-20241022", "anthropic"),
    ("llama-3.1-70b-versatile", "groq"),
)
SERVICES = ("support-bot", "docs-assistant", "sales-agent")


def _prose(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:chars].rstrip() + "."


@dataclass
class _Span:
    trace: int  # trace slot in the request
    span: int  # span slot in the request
    parent: int | None
    name: str
    kind: int
    start: int  # time slot
    end: int  # time slot
    status: tuple[int, str]
    attributes: list[tuple[str, Any]]
    events: list[tuple[str, int, list[tuple[str, Any]]]]  # (name, time slot, attributes)


class _Builder:
    """The neutral form of one request: spans referring to id and time *slots*."""

    def __init__(self, rng: random.Random, base_ns: int) -> None:
        self.rng = rng
        self.base_ns = base_ns
        self.times: list[int] = []
        self.spans: list[_Span] = []

    def time(self, ns: int) -> int:
        # A random sub-microsecond part keeps every template time distinct, so its bytes
        # are found exactly once in the encoded body.
        self.times.append(self.base_ns + ns + self.rng.randrange(1000))
        return len(self.times) - 1

    def add(
        self,
        trace: int,
        parent: int | None,
        name: str,
        kind: int,
        start_ns: int,
        duration_ns: int,
        attributes: list[tuple[str, Any]],
        error: str = "",
    ) -> int:
        slot = len(self.spans)
        end = self.time(start_ns + duration_ns)
        events = []
        if error:
            events.append(
                (
                    "exception",
                    self.time(start_ns + duration_ns - 1000),
                    [("exception.type", error.split(":")[0]), ("exception.message", error)],
                )
            )
        self.spans.append(
            _Span(
                trace=trace,
                span=slot,
                parent=parent,
                name=name,
                kind=kind,
                start=self.time(start_ns),
                end=end,
                status=(STATUS_ERROR, error) if error else (STATUS_OK, ""),
                attributes=attributes,
                events=events,
            )
        )
        return slot

    def trace(self, trace: int, start_ns: int) -> None:
        rng = self.rng
        question = _prose(rng, rng.randrange(120, 200))
        answer = _prose(rng, rng.randrange(250, 450))
        session, user = f"session-{rng.randrange(10_000):04d}", f"user-{rng.randrange(500):03d}"
        step = 80_000_000
        root = self.add(
            trace,
            None,
            "rag.query",
            KIND_INTERNAL,
            start_ns,
            12 * step,
            [
                ("openinference.span.kind", "CHAIN"),
                ("input.value", question),
                ("input.mime_type", "text/plain"),
                ("output.value", answer),
                ("output.mime_type", "text/plain"),
                ("session.id", session),
                ("user.id", user),
                ("metadata", f'{{"tenant": "t{rng.randrange(40)}", "feature": "chat"}}'),
                ("tag.tags", '["production", "rag"]'),
            ],
        )
        documents: list[tuple[str, Any]] = []
        for number in range(3):
            prefix = f"retrieval.documents.{number}.document."
            documents += [
                (prefix + "id", f"doc-{rng.randrange(100_000)}"),
                (prefix + "content", _prose(rng, 180)),
                (prefix + "score", round(rng.uniform(0.5, 0.99), 4)),
            ]
        retriever = self.add(
            trace,
            root,
            "retrieve",
            KIND_INTERNAL,
            start_ns + 1000,
            2 * step,
            [("openinference.span.kind", "RETRIEVER"), ("input.value", question), *documents],
        )
        prompt_tokens = rng.randrange(20, 60)
        self.add(
            trace,
            retriever,
            "embed",
            KIND_CLIENT,
            start_ns + 2000,
            step // 2,
            [
                ("openinference.span.kind", "EMBEDDING"),
                ("embedding.model_name", "text-embedding-3-small"),
                ("embedding.embeddings.0.embedding.text", question),
                ("llm.token_count.prompt", prompt_tokens),
                ("llm.token_count.total", prompt_tokens),
            ],
        )
        self.add(
            trace,
            root,
            "tool.lookup_order",
            KIND_INTERNAL,
            start_ns + 2 * step,
            step // 4,
            [
                ("openinference.span.kind", "TOOL"),
                ("tool.name", "lookup_order"),
                ("tool.description", "Look up an order by its number"),
                ("tool.parameters", '{"order_id": {"type": "string"}}'),
                ("input.value", f'{{"order_id": "A-{rng.randrange(10**6)}"}}'),
                ("output.value", '{"status": "shipped", "eta_days": 2}'),
            ],
        )
        system_prompt = _prose(rng, 140)
        for number in range(6):
            model, provider = rng.choice(MODELS)
            prompt_tokens = rng.randrange(300, 1600)
            completion_tokens = rng.randrange(20, 400)
            text = _prose(rng, rng.randrange(200, 400))
            error = ""
            if rng.random() < 0.03:
                error = "RateLimitError: Rate limit reached for requests per minute"
            self.add(
                trace,
                root,
                "ChatCompletion",
                KIND_CLIENT,
                start_ns + (3 + number) * step,
                int(step * rng.uniform(0.3, 0.95)),
                [
                    ("openinference.span.kind", "LLM"),
                    ("llm.model_name", model),
                    ("llm.provider", provider),
                    ("llm.system", provider),
                    ("llm.invocation_parameters", '{"temperature": 0.2, "max_tokens": 512}'),
                    ("llm.token_count.prompt", prompt_tokens),
                    ("llm.token_count.completion", 0 if error else completion_tokens),
                    ("llm.token_count.total", prompt_tokens + (0 if error else completion_tokens)),
                    ("input.value", system_prompt + " " + question),
                    ("input.mime_type", "text/plain"),
                    ("output.value", "" if error else text),
                    ("output.mime_type", "text/plain"),
                    ("llm.input_messages.0.message.role", "user"),
                    ("llm.input_messages.0.message.content", question),
                    ("llm.output_messages.0.message.role", "assistant"),
                    ("llm.output_messages.0.message.content", "" if error else text),
                    ("session.id", session),
                    ("user.id", user),
                ],
                error,
            )


@dataclass(frozen=True)
class Template:
    """One encoded request and where its ids and times sit in the bytes."""

    body: bytes
    encoding: str
    patches: tuple[tuple[int, int, int], ...]  # (offset, _TRACE/_SPAN/_TIME, slot)
    times: tuple[int, ...]  # each time slot's value in the template

    def render(self, index: int) -> bytes:
        """The request numbered ``index``: ids unique to it, times shifted by ``index`` ms."""
        out = bytearray(self.body)
        hexed = self.encoding == "json"
        shift = index * SHIFT_NS
        base = index << 8
        for offset, what, slot in self.patches:
            if what == _TIME:
                ns = self.times[slot] + shift
                value = str(ns).encode() if hexed else struct.pack("<Q", ns)
            else:
                raw = _span_id(base | slot) if what == _SPAN else _trace_id(base | slot)
                value = raw.hex().encode() if hexed else raw
            out[offset : offset + len(value)] = value  # fixed width: the body keeps its size
        return bytes(out)


def _span_id(number: int) -> bytes:
    # Odd multipliers are bijections mod 2**63: distinct numbers, distinct ids, never zero.
    return struct.pack(">Q", (1 << 63) | ((number * 0x9E3779B97F4A7C15) & _MASK63))


def _trace_id(number: int) -> bytes:
    high = ((number * 0xD6E8FEB86659FD93) & _MASK63) | (1 << 62)
    return struct.pack(">QQ", high, (number * 0x9E3779B97F4A7C15) % 2**64)


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


def _set_any_value(target: KeyValue, key: str, value: Any) -> None:
    target.key = key
    if isinstance(value, bool):
        target.value.bool_value = value
    elif isinstance(value, int):
        target.value.int_value = value
    elif isinstance(value, float):
        target.value.double_value = value
    else:
        target.value.string_value = value


def _encode(
    builder: _Builder,
    resource: list[tuple[str, Any]],
    encoding: str,
    trace_ids: list[bytes],
    span_ids: list[bytes],
) -> bytes:
    scope = ("openinference.instrumentation.openai", "0.1.30")
    if encoding == "json":
        spans = []
        for span in builder.spans:
            item: dict[str, Any] = {
                "traceId": trace_ids[span.trace].hex(),
                "spanId": span_ids[span.span].hex(),
                "name": span.name,
                "kind": span.kind,
                "startTimeUnixNano": str(builder.times[span.start]),
                "endTimeUnixNano": str(builder.times[span.end]),
                "attributes": [{"key": k, "value": _any_value(v)} for k, v in span.attributes],
                "status": {"code": span.status[0], "message": span.status[1]},
            }
            if span.parent is not None:
                item["parentSpanId"] = span_ids[span.parent].hex()
            if span.events:
                item["events"] = [
                    {
                        "name": name,
                        "timeUnixNano": str(builder.times[slot]),
                        "attributes": [{"key": k, "value": _any_value(v)} for k, v in attrs],
                    }
                    for name, slot, attrs in span.events
                ]
            spans.append(item)
        document = {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": k, "value": _any_value(v)} for k, v in resource]
                    },
                    "scopeSpans": [
                        {"scope": {"name": scope[0], "version": scope[1]}, "spans": spans}
                    ],
                }
            ]
        }
        return orjson.dumps(document)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in resource:
        _set_any_value(resource_spans.resource.attributes.add(), key, value)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = scope
    for span in builder.spans:
        message = scope_spans.spans.add()
        message.trace_id = trace_ids[span.trace]
        message.span_id = span_ids[span.span]
        if span.parent is not None:
            message.parent_span_id = span_ids[span.parent]
        message.name = span.name
        message.kind = span.kind  # type: ignore[assignment]
        message.start_time_unix_nano = builder.times[span.start]
        message.end_time_unix_nano = builder.times[span.end]
        for key, value in span.attributes:
            _set_any_value(message.attributes.add(), key, value)
        message.status.code = span.status[0]  # type: ignore[assignment]
        message.status.message = span.status[1]
        for name, slot, attrs in span.events:
            event = message.events.add()
            event.name = name
            event.time_unix_nano = builder.times[slot]
            for key, value in attrs:
                _set_any_value(event.attributes.add(), key, value)
    return request.SerializeToString()


def _find_all(body: bytes, needle: bytes) -> list[int]:
    found = []
    start = body.find(needle)
    while start >= 0:
        found.append(start)
        start = body.find(needle, start + 1)
    return found


def make_template(number: int, encoding: str, seed: int = 0, base_ns: int = 0) -> Template:
    """Template ``number`` (content drawn from ``seed`` and ``number``) in ``encoding``.

    Its traces start at ``base_ns`` (default: now, to the second) plus a few seconds.
    """
    if encoding not in CONTENT_TYPES:
        raise ValueError(f"encoding must be one of {sorted(CONTENT_TYPES)}, got {encoding!r}")
    rng = random.Random(f"{seed}-{number}")
    builder = _Builder(rng, base_ns or time.time_ns() // 10**9 * 10**9)
    for trace in range(TRACES_PER_REQUEST):
        builder.trace(trace, trace * 10_000_000)
    trace_ids = [rng.randbytes(16) for _ in range(TRACES_PER_REQUEST)]
    span_ids = [rng.randbytes(8) for _ in builder.spans]
    resource = [
        ("service.name", SERVICES[number % len(SERVICES)]),
        ("service.version", "1.4.2"),
        ("deployment.environment.name", "production"),
        ("telemetry.sdk.language", "python"),
        ("telemetry.sdk.name", "opentelemetry"),
        ("telemetry.sdk.version", "1.30.0"),
    ]
    body = _encode(builder, resource, encoding, trace_ids, span_ids)

    def needle(value: bytes) -> bytes:
        return value.hex().encode() if encoding == "json" else value

    expected: Counter[tuple[int, int]] = Counter()
    for span in builder.spans:
        expected[_TRACE, span.trace] += 1
        expected[_SPAN, span.span] += 1
        if span.parent is not None:
            expected[_SPAN, span.parent] += 1
    patches: list[tuple[int, int, int]] = []
    for (what, slot), count in sorted(expected.items()):
        value = trace_ids[slot] if what == _TRACE else span_ids[slot]
        offsets = _find_all(body, needle(value))
        if len(offsets) != count:
            raise RuntimeError(f"template {number}: id {value.hex()} found {len(offsets)}x")
        patches += [(offset, what, slot) for offset in offsets]
    for slot, ns in enumerate(builder.times):
        value = str(ns).encode() if encoding == "json" else struct.pack("<Q", ns)
        offsets = _find_all(body, value)
        if len(offsets) != 1 or (encoding == "json" and len(value) != 19):
            raise RuntimeError(f"template {number}: time {ns} found {len(offsets)}x")
        patches.append((offsets[0], _TIME, slot))
    return Template(body, encoding, tuple(sorted(patches)), tuple(builder.times))


def make_templates(count: int, encoding: str, seed: int = 0, base_ns: int = 0) -> list[Template]:
    base_ns = base_ns or time.time_ns() // 10**9 * 10**9
    return [make_template(number, encoding, seed, base_ns) for number in range(count)]


# -- the sender ------------------------------------------------------------------------------


def _rejected(body: bytes, encoding: str) -> int:
    """``partialSuccess.rejectedSpans`` of an OTLP export response (0 when absent)."""
    if not body:
        return 0
    if encoding == "json":
        document = orjson.loads(body)
        return int((document.get("partialSuccess") or {}).get("rejectedSpans") or 0)
    response = ExportTraceServiceResponse()
    response.ParseFromString(body)
    return int(response.partial_success.rejected_spans)


def send(
    url: str,
    encoding: str,
    requests: int,
    first_index: int,
    clients: int,
    templates: int = 16,
    seed: int = 0,
) -> dict[str, Any]:
    """Send ``requests`` requests numbered from ``first_index``; return what happened."""
    parsed = urllib.parse.urlsplit(url)
    host, port, path = parsed.hostname or "127.0.0.1", parsed.port or 80, parsed.path
    made = make_templates(templates, encoding, seed)
    headers = {"Content-Type": CONTENT_TYPES[encoding]}
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    totals: Counter[str] = Counter()
    errors: list[str] = []
    firsts: list[float] = []
    lasts: list[float] = []

    def worker() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=120)
        local_latencies: list[float] = []
        local_statuses: Counter[int] = Counter()
        local: Counter[str] = Counter()
        first = last = 0.0
        try:
            while (number := next(counter)) < requests and not errors:
                index = first_index + number
                body = made[index % len(made)].render(index)
                backoff = 0.05
                while True:
                    started = time.monotonic()
                    first = first or started
                    try:
                        connection.request("POST", path, body, headers)
                        response = connection.getresponse()
                        payload = response.read()
                    except (OSError, http.client.HTTPException) as exc:
                        connection.close()
                        local["connection_errors"] += 1
                        if local["connection_errors"] > 3:
                            with lock:
                                errors.append(f"{type(exc).__name__}: {exc}")
                            return
                        time.sleep(backoff)
                        continue
                    done = time.monotonic()
                    local_statuses[response.status] += 1
                    if response.status == 200:
                        local_latencies.append(done - started)
                        local["spans_ok"] += SPANS_PER_REQUEST
                        local["rejected_spans"] += _rejected(payload, encoding)
                        local["bytes"] += len(body)
                        last = done
                        break
                    if response.status in (429, 503):
                        local["retries"] += 1
                        retry_after = response.getheader("Retry-After")
                        delay = float(retry_after) if retry_after else backoff
                        time.sleep(min(delay, 1.0))
                        backoff = min(backoff * 2, 1.0)
                        continue
                    with lock:
                        errors.append(f"HTTP {response.status}: {payload[:300]!r}")
                    return
        finally:
            connection.close()
            with lock:
                latencies.extend(local_latencies)
                statuses.update(local_statuses)
                totals.update(local)
                if first:
                    firsts.append(first)
                if last:
                    lasts.append(last)

    cpu = time.process_time()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    return {
        "encoding": encoding,
        "requests": requests,
        "spans_sent": requests * SPANS_PER_REQUEST,
        "spans_ok": totals["spans_ok"],
        "rejected_spans": totals["rejected_spans"],
        "bytes": totals["bytes"],
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "retries": totals["retries"],
        "connection_errors": totals["connection_errors"],
        "errors": errors[:5],
        "first_send": min(firsts, default=0.0),
        "last_ok": max(lasts, default=0.0),
        "latency_s": {
            "p50": quantile(0.50),
            "p90": quantile(0.90),
            "p99": quantile(0.99),
            "max": latencies[-1] if latencies else 0.0,
        },
        "client_cpu_s": time.process_time() - cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="OTLP/HTTP traces URL")
    parser.add_argument("--encoding", choices=sorted(CONTENT_TYPES), default="protobuf")
    parser.add_argument("--requests", type=int, required=True, help="requests of 100 spans")
    parser.add_argument("--first-index", type=int, default=0, help="number of the first request")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument("--templates", type=int, default=16, help="distinct request contents")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = send(
        args.url,
        args.encoding,
        args.requests,
        args.first_index,
        args.clients,
        args.templates,
        args.seed,
    )
    print(json.dumps(result), flush=True)
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
