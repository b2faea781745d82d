"""One contender of bench/instrumentation.py, in its own process (one OTel provider each).

    python bench/_instr_openai.py CONTENDER MODE [BASE_URL]

CONTENDER: pyflare, openinference, openai-v2 or traceloop; MODE: mock (an in-process
httpx MockTransport: no network at all) or server (BASE_URL, a local HTTP server).
Prints one JSON line: per-call µs without and with the instrumentation (the best of
alternating rounds each), measured in the same process with the same client.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import httpx2
import openai
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

ROUNDS = 9
CALLS = 200
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France? Answer in one word."},
]
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_767_225_600,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 25, "completion_tokens": 2, "total_tokens": 27},
}
BODY = json.dumps(ANSWER).encode()


class Drop(SpanExporter):
    """Every contender exports to the same do-nothing exporter."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Any) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


def instrumentor(contender: str) -> Any:
    if contender == "pyflare":
        from pyflare.instrumentation.openai import OpenAIInstrumentor
    elif contender == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
    elif contender == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    elif contender == "traceloop":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    else:
        raise SystemExit(f"unknown contender {contender!r}")
    return OpenAIInstrumentor()


def round_us(client: openai.OpenAI) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    return (time.perf_counter() - start) / CALLS * 1e6


def main() -> None:
    contender, mode = sys.argv[1], sys.argv[2]
    if mode == "mock":
        transport = httpx2.MockTransport(
            lambda request: httpx2.Response(
                200, content=BODY, headers={"content-type": "application/json"}
            )
        )
        client = openai.OpenAI(
            api_key="k",
            base_url="http://llm.test/v1",
            http_client=httpx2.Client(transport=transport),
        )
    else:
        client = openai.OpenAI(api_key="k", base_url=sys.argv[3])
    exporter = Drop()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    from opentelemetry import trace

    trace.set_tracer_provider(provider)
    tool = instrumentor(contender)
    tool.instrument(tracer_provider=provider)
    for _ in range(50):  # warm up the client, connections and caches
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    tool.uninstrument()
    # Rounds alternate with and without, so load from elsewhere hits both alike.
    baseline = instrumented = float("inf")
    for _ in range(ROUNDS):
        baseline = min(baseline, round_us(client))
        tool.instrument(tracer_provider=provider)
        instrumented = min(instrumented, round_us(client))
        tool.uninstrument()
    assert exporter.count > 0, f"{contender} made no spans"
    print(json.dumps({"baseline_us": baseline, "instrumented_us": instrumented}))


if __name__ == "__main__":
    main()
