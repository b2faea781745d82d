"""OpenAI calls become GenAI spans: the real client against a local server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import openai
import pytest
from _openai_server import OpenAIServer
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import pyflare
from pyflare import semconv as sc
from pyflare.cost.prices import PriceBook
from pyflare.errors import InvalidArgumentError
from pyflare.instrumentation import instrument, uninstrument
from pyflare.instrumentation._openai_request import provider_for
from pyflare.testing import CapturedSpans, capture_spans

pytestmark = pytest.mark.usefixtures("openai_instrumented")

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]
TOOLS = [
    {
        "type": "function",
        "function": {"name": "search", "parameters": {"type": "object", "properties": {}}},
    }
]


_open: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def client(server: OpenAIServer, **options: object) -> openai.OpenAI:
    made = openai.OpenAI(api_key="test-key", base_url=server.base_url, **options)  # type: ignore[arg-type]
    _open.append(made)
    return made


def expected_micros(model: str, usage: tuple[int, int, int, int]) -> int:
    cost = PriceBook.default().cost(
        model,
        provider="openai",
        input_tokens=usage[0],
        output_tokens=usage[1],
        cached_input_tokens=usage[2],
        reasoning_tokens=usage[3],
    )
    assert cost is not None
    return cost.total_micros


def test_a_chat_call_is_one_client_span_with_genai_fields(
    openai_server: OpenAIServer, pyflare_capture: CapturedSpans
) -> None:
    openai_server.cached = 4
    openai_server.reasoning = 1
    answer = client(openai_server).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, max_tokens=50, seed=7, stop="\n"
    )
    assert answer.choices[0].message.content == "Echo: hello there"
    span = pyflare_capture.span("chat gpt-4o-mini")
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
    assert attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["gen_ai.request.max_tokens"] == 50
    assert attributes["gen_ai.request.seed"] == 7
    assert attributes["gen_ai.request.stop_sequences"] == ("\n",)
    assert attributes["gen_ai.response.id"] == answer.id
    assert attributes[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes[sc.SERVER_ADDRESS] == "127.0.0.1"
    # 2 + 2 words, plus 3 per message; the reply is 3 words.
    assert attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 10
    assert attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 4
    assert attributes[sc.CACHED_INPUT_TOKENS] == 4
    assert attributes[sc.REASONING_TOKENS] == 1
    assert sc.TOKENS_ESTIMATED not in attributes
    assert attributes[sc.COST_MICROS] == expected_micros("gpt-4o-mini", (10, 3, 4, 1))
    assert attributes[sc.COST_SOURCE] == "genai-prices"
    (row,) = pyflare_capture.rows()
    assert row["model_id"] == "gpt-4o-mini"
    assert row["inference_type"] == "llm"
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (10, 3, 13)
    assert row["cost_micros"] == attributes[sc.COST_MICROS]
    assert row["input_preview"] == (
        '[{"role":"system","content":"Be brief."},{"role":"user","content":"hello there"}]'
    )
    assert row["output_preview"] == "Echo: hello there"
    assert row["input_hash"] is not None


@pytest.mark.parametrize(
    ("capture", "has_input", "has_output"),
    [("all", True, True), ("inputs", True, False), ("off", False, False)],
)
def test_content_follows_the_capture_setting(
    openai_server: OpenAIServer, capture: str, has_input: bool, has_output: bool
) -> None:
    with capture_spans(capture=capture) as captured:
        client(openai_server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (row,) = captured.rows()
    assert (row["input_preview"] is not None) is has_input
    assert (row["output_preview"] is not None) is has_output
    assert row["input_tokens"] == 10  # usage is recorded whatever the capture


def test_content_is_masked_and_cut_to_the_preview_length(openai_server: OpenAIServer) -> None:
    text = "mail me at jane.doe@example.com " + "x" * 3000
    with capture_spans(max_chars=200) as captured:
        client(openai_server).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        )
    (row,) = captured.rows()
    assert "jane.doe@example.com" not in row["input_preview"]
    assert "[EMAIL]" in row["input_preview"]
    assert "[EMAIL]" in row["output_preview"]
    assert len(row["input_preview"]) == 200
    assert len(row["output_preview"]) == 200


def test_tool_calls_are_recorded(
    openai_server: OpenAIServer, pyflare_capture: CapturedSpans
) -> None:
    answer = client(openai_server).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "call weather"}], tools=TOOLS
    )
    assert answer.choices[0].message.tool_calls is not None
    attributes = dict(pyflare_capture.span("chat gpt-4o-mini").attributes or {})
    assert attributes["pyflare.llm.tool_calls"] == ("search",)
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert attributes[sc.OUTPUT_PREVIEW] == (
        '[{"id":"call_1","name":"search","arguments":"{\\"q\\": \\"weather\\"}"}]'
    )


def test_a_failed_call_records_status_and_error_type(
    openai_server: OpenAIServer, pyflare_capture: CapturedSpans
) -> None:
    openai_server.fail_next = [500]
    with pytest.raises(openai.InternalServerError):
        client(openai_server, max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
    span = pyflare_capture.span("chat gpt-4o-mini")
    assert span.status.status_code is StatusCode.ERROR
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "InternalServerError"
    assert attributes["http.response.status_code"] == 500
    assert [event.name for event in span.events] == ["exception"]
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in attributes


def test_an_unreachable_server_is_an_error_span(pyflare_capture: CapturedSpans) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens
    unreachable = openai.OpenAI(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    _open.append(unreachable)
    with pytest.raises(openai.APIConnectionError):
        unreachable.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = pyflare_capture.span("chat gpt-4o-mini")
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "APIConnectionError"


def test_the_clients_own_retries_happen_inside_one_span(
    openai_server: OpenAIServer, pyflare_capture: CapturedSpans
) -> None:
    openai_server.fail_next = [429]
    client(openai_server, max_retries=2).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert len(openai_server.requests) == 2
    (span,) = pyflare_capture.spans
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {})[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 3


def test_the_responses_api(openai_server: OpenAIServer, pyflare_capture: CapturedSpans) -> None:
    openai_server.cached = 2
    response = client(openai_server).responses.create(
        model="gpt-4o", input="hello there", instructions="Be brief.", max_output_tokens=20
    )
    assert response.output_text == "Echo: hello there"
    attributes = dict(pyflare_capture.span("chat gpt-4o").attributes or {})
    assert attributes["gen_ai.response.id"] == response.id
    assert attributes["gen_ai.request.max_tokens"] == 20
    assert attributes["gen_ai.response.finish_reasons"] == ("completed",)
    assert attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 5
    assert attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert attributes[sc.COST_MICROS] == expected_micros("gpt-4o", (5, 3, 2, 0))
    assert attributes[sc.INPUT_PREVIEW] == '{"instructions":"Be brief.","input":"hello there"}'
    assert attributes[sc.OUTPUT_PREVIEW] == "Echo: hello there"


def test_a_responses_tool_call(openai_server: OpenAIServer, pyflare_capture: CapturedSpans) -> None:
    client(openai_server).responses.create(
        model="gpt-4o",
        input=[{"role": "user", "content": "call news"}],
        tools=[{"type": "function", "name": "lookup", "parameters": {}}],
    )
    attributes = dict(pyflare_capture.span("chat gpt-4o").attributes or {})
    assert attributes["pyflare.llm.tool_calls"] == ("lookup",)


def test_embeddings(openai_server: OpenAIServer, pyflare_capture: CapturedSpans) -> None:
    client(openai_server).embeddings.create(
        model="text-embedding-3-large", input=["one two", "three"], dimensions=6
    )
    span = pyflare_capture.span("embeddings text-embedding-3-large")
    attributes = dict(span.attributes or {})
    assert attributes[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attributes["gen_ai.embeddings.dimension.count"] == 6
    assert attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 3
    (row,) = pyflare_capture.rows()
    assert row["inference_type"] == "embedding"
    assert row["total_tokens"] == 3
    assert row["input_preview"] == '["one two","three"]'
    assert row["output_preview"] is None


def test_async_calls(openai_server: OpenAIServer, pyflare_capture: CapturedSpans) -> None:
    async def main() -> None:
        async with openai.AsyncOpenAI(api_key="k", base_url=openai_server.base_url) as aclient:
            await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            await aclient.embeddings.create(model="text-embedding-3-small", input="one")
            await aclient.responses.create(model="gpt-4o", input="hi")

    asyncio.run(main())
    names = sorted(span.name for span in pyflare_capture.spans)
    assert names == ["chat gpt-4o", "chat gpt-4o-mini", "embeddings text-embedding-3-small"]
    assert all(row["input_tokens"] for row in pyflare_capture.rows())


def test_an_unknown_model_has_no_cost(
    openai_server: OpenAIServer, pyflare_capture: CapturedSpans
) -> None:
    client(openai_server).chat.completions.create(model="my-own-llm", messages=MESSAGES)
    (row,) = pyflare_capture.rows()
    assert row["input_tokens"] == 10
    assert row["cost_micros"] is None  # never $0 for a model without a price


def test_an_azure_client(openai_server: OpenAIServer, pyflare_capture: CapturedSpans) -> None:
    azure = openai.AzureOpenAI(
        api_key="k", azure_endpoint=openai_server.root, api_version="2024-10-21"
    )
    _open.append(azure)
    azure.chat.completions.create(model="my-deployment", messages=MESSAGES)
    assert openai_server.requests[0]["path"].startswith("/openai/deployments/my-deployment/")
    attributes = dict(pyflare_capture.span("chat my-deployment").attributes or {})
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"


@pytest.mark.parametrize(
    ("host", "port", "provider"),
    [
        ("api.openai.com", 443, "openai"),
        ("myres.openai.azure.com", 443, "azure.ai.openai"),
        ("openrouter.ai", 443, "openrouter"),
        ("api.together.xyz", 443, "together_ai"),
        ("api.groq.com", 443, "groq"),
        ("API.DEEPSEEK.COM", 443, "deepseek"),
        ("localhost", 11434, "ollama"),
        ("ollama", 8080, "ollama"),
        ("vllm-server.internal", 8000, "vllm"),
        ("notopenrouter.ai", 443, "openai"),  # a suffix match is on a dot boundary
        ("10.0.0.7", 8000, "openai"),
    ],
)
def test_provider_detection_by_base_url(host: str, port: int, provider: str) -> None:
    assert provider_for(host, port, {}) == provider


def test_extra_hosts_name_their_provider(
    openai_server: OpenAIServer, pyflare_capture: CapturedSpans
) -> None:
    assert provider_for("gpu1.llm.internal", 80, {"llm.internal": "vllm"}) == "vllm"
    uninstrument("openai")
    instrument("openai", providers={"127.0.0.1": "vllm"})
    client(openai_server).chat.completions.create(model="llama-3", messages=MESSAGES)
    attributes = dict(pyflare_capture.span("chat llama-3").attributes or {})
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == "vllm"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"include_stream_usage": "yes"}, "include_stream_usage must be True or False"),
        ({"providers": {"host": 3}}, "providers must map host names"),
        ({"providers": "vllm"}, "providers must map host names"),
    ],
)
def test_bad_options_are_rejected_and_nothing_is_patched(
    options: dict[str, object], message: str
) -> None:
    uninstrument("openai")
    with pytest.raises(InvalidArgumentError, match=message):
        instrument("openai", **options)
    assert pyflare.instrumentation.instrumented() == []
    instrument("openai")  # the fixture's teardown uninstruments


def test_the_call_runs_inside_its_span_and_carries_the_context(
    openai_server: OpenAIServer, pyflare_capture: CapturedSpans
) -> None:
    seen: list[trace.Span] = []
    http_client = openai.DefaultHttpxClient(
        event_hooks={"request": [lambda request: seen.append(trace.get_current_span())]}
    )
    with pyflare.context(user_id="u-7", feature_id="search"):
        client(openai_server, http_client=http_client).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
    span = pyflare_capture.span("chat gpt-4o-mini")
    assert seen[0].get_span_context().span_id == span.context.span_id
    assert dict(span.attributes or {})[sc.USER_ID] == "u-7"
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_a_hard_budget_stops_the_call_before_it_is_sent(
    openai_server: OpenAIServer, pyflare_capture: CapturedSpans
) -> None:
    from pyflare.cost import budgets

    handle = budgets.budget(limit_micros=1, model="gpt-4o-mini", hard=True)
    try:
        # The first call spends past the limit; the next one to that model is refused.
        client(openai_server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(pyflare.BudgetExceeded):
            client(openai_server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client(openai_server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    finally:
        handle.remove()
    assert [r["body"]["model"] for r in openai_server.requests] == ["gpt-4o-mini", "gpt-4o"]
    assert [span.name for span in pyflare_capture.spans] == ["chat gpt-4o-mini", "chat gpt-4o"]
