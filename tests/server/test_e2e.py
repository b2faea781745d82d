"""End to end: real SDKs and instrumentations → a real server → DuckDB."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from _live import LiveServer, live_server
from _otlp import json_trace_request
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("e2e")) as live:
        yield live


def rows(server: LiveServer, where: str, params: list[Any]) -> list[dict[str, Any]]:
    table = server.core.store.sql(f"SELECT * FROM traces WHERE {where} ORDER BY start_time", params)
    out = table.to_pylist()
    for row in out:
        row["attributes"] = dict(row["attributes"])
        row["resource"] = dict(row["resource"])
    return out


def test_pyflare_sdk_in_remote_mode(server: LiveServer, run_python: Any) -> None:
    code = f"""
        import json
        import pyflare

        pyflare.init(endpoint={server.http!r}, service_name="remote-app")

        @pyflare.trace(kind="llm", model_id="gpt-4o-mini")
        def ask(question):
            pyflare.record_usage(input_tokens=12, output_tokens=30)
            return "answer to " + question + " (mail me: jane@example.com)"

        @pyflare.trace
        def pipeline(question):
            return ask(question)

        with pyflare.context(user_id="u-42"):
            pipeline("what is drift?")
        pyflare.flush()
        print("RESULT", json.dumps(pyflare.stats()["exported"]))
    """
    result = run_python(code)
    assert run_python.result(result.stdout) == 2
    spans = rows(server, "service_name = ?", ["remote-app"])
    assert [row["operation_name"] for row in spans] == ["pipeline", "ask"]
    llm = spans[1]
    assert llm["model_id"] == "gpt-4o-mini"
    assert (llm["input_tokens"], llm["output_tokens"], llm["total_tokens"]) == (12, 30, 42)
    assert llm["inference_type"] == "llm"
    assert llm["parent_span_id"] == spans[0]["span_id"]
    assert "jane@example.com" not in (llm["output_preview"] or "")  # masked by the SDK
    assert llm["attributes"]["user.id"] == "u-42"


def test_plain_opentelemetry_sdk_with_the_standard_exporter(server: LiveServer) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "plain-otel"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.http + "/v1/traces"))
    )
    tracer = provider.get_tracer("some.library")
    with tracer.start_as_current_span("handle") as root:
        root.set_attribute("http.route", "/chat")
        with tracer.start_as_current_span("llm") as child:
            child.set_attribute("gen_ai.operation.name", "chat")
            child.set_attribute("gen_ai.request.model", "claude-x")
            child.set_attribute("gen_ai.response.model", "claude-x-2026")
            child.set_attribute("gen_ai.usage.input_tokens", 100)
            child.set_attribute("gen_ai.usage.output_tokens", 7)
            child.set_attribute(
                "gen_ai.input.messages", '[{"role":"user","content":"hi bob@corp.com"}]'
            )
            child.set_status(Status(StatusCode.ERROR, "rate limited"))
    provider.shutdown()
    spans = rows(server, "service_name = ?", ["plain-otel"])
    assert [row["operation_name"] for row in spans] == ["handle", "llm"]
    llm = spans[1]
    assert llm["model_id"] == "claude-x-2026"
    assert (llm["input_tokens"], llm["output_tokens"], llm["total_tokens"]) == (100, 7, 107)
    assert llm["inference_type"] == "llm"
    assert (llm["status_code"], llm["status_message"]) == ("error", "rate limited")
    # A foreign SDK's content is masked by the server, like the SDK masks its own.
    assert "bob@corp.com" not in llm["input_preview"]
    assert "bob@corp.com" not in llm["attributes"]["gen_ai.input.messages"]
    assert spans[0]["attributes"]["http.route"] == "/chat"


def test_hand_built_otlp_json(server: LiveServer) -> None:
    trace_id = os.urandom(16).hex()
    body = json_trace_request(
        trace_id,
        [os.urandom(8).hex()],
        **{
            "openinference.span.kind": "LLM",
            "llm.model_name": "mistral-small",
            "llm.token_count.prompt": 5,
            "llm.token_count.completion": 9,
            "input.value": "hello",
        },
    )
    response = httpx.post(
        server.http + "/v1/traces",
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    [span] = rows(server, "trace_id = ?", [trace_id])
    assert span["model_id"] == "mistral-small"
    assert (span["input_tokens"], span["output_tokens"], span["total_tokens"]) == (5, 9, 14)
    assert span["inference_type"] == "llm"
    assert span["input_preview"] == "hello"


INSTRUMENTED_APP = """
import sys
import openai
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

endpoint, base_url, flavour = sys.argv[1:4]
provider = TracerProvider(resource=Resource.create({"service.name": "openai-" + flavour}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces")))
if flavour == "openinference":
    from openinference.instrumentation.openai import OpenAIInstrumentor
else:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
OpenAIInstrumentor().instrument(tracer_provider=provider)
client = openai.OpenAI(base_url=base_url, api_key="test-key")
reply = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi"}]
)
print("REPLY", reply.choices[0].message.content)
provider.shutdown()
"""


@pytest.mark.parametrize("flavour", ["openinference", "otel-genai"])
def test_third_party_openai_instrumentation(
    server: LiveServer, fake_openai: str, tmp_path: Path, flavour: str
) -> None:
    script = tmp_path / "app.py"
    script.write_text(INSTRUMENTED_APP)
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PYFLARE_"))
    }
    env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
    result = subprocess.run(
        [sys.executable, str(script), server.http, fake_openai, flavour],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    spans = rows(server, "service_name = ?", [f"openai-{flavour}"])
    llm = [row for row in spans if row["model_id"]]
    assert llm, spans
    span = llm[0]
    assert span["model_id"].startswith("gpt-4o-mini")
    assert span["input_tokens"] and span["input_tokens"] > 0
    assert span["output_tokens"] and span["output_tokens"] > 0
    assert span["total_tokens"] == span["input_tokens"] + span["output_tokens"]
    assert span["inference_type"] == "llm"
    assert span["span_kind"] in ("client", "internal")
