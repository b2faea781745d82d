"""Streamed OpenAI calls: the span ends when the stream does, however it ends."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import openai
import pytest
from _openai_server import OpenAIServer
from opentelemetry import trace

from pyflare import semconv as sc
from pyflare.instrumentation import instrument, uninstrument
from pyflare.testing import CapturedSpans

pytestmark = pytest.mark.usefixtures("openai_instrumented")

MESSAGES = [{"role": "user", "content": "hello there you"}]


@pytest.fixture
def oai(openai_server: OpenAIServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key="k", base_url=openai_server.base_url) as made:
        yield made


def attributes(captured: CapturedSpans) -> dict[str, object]:
    (span,) = captured.spans
    return dict(span.attributes or {})


def test_a_stream_without_usage_has_estimated_tokens(
    oai: openai.OpenAI, pyflare_capture: CapturedSpans
) -> None:
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)  # still the client's type
    assert pyflare_capture.spans == []  # open while the caller reads
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "Echo: hello there you"
    (span,) = pyflare_capture.spans
    found = dict(span.attributes or {})
    assert found[sc.OUTPUT_PREVIEW] == text
    assert found[sc.TOKENS_ESTIMATED] is True
    assert found[sc.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert found[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert found[sc.COST_MICROS] >= 0
    assert found["gen_ai.response.finish_reasons"] == ("stop",)
    assert found["pyflare.llm.time_to_first_token_ns"] > 0
    assert [event.name for event in span.events] == ["gen_ai.first_token"]
    assert "pyflare.output.closed_early" not in found


def test_a_stream_with_usage_has_exact_tokens(
    oai: openai.OpenAI, pyflare_capture: CapturedSpans
) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in stream:
        pass
    found = attributes(pyflare_capture)
    assert found[sc.GEN_AI_USAGE_INPUT_TOKENS] == 6
    assert found[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert sc.TOKENS_ESTIMATED not in found


def test_the_opt_in_asks_for_usage_unless_the_caller_chose(
    oai: openai.OpenAI, openai_server: OpenAIServer, pyflare_capture: CapturedSpans
) -> None:
    uninstrument("openai")
    instrument("openai", include_stream_usage=True)
    for _ in oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        pass
    for _ in oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": False},
    ):
        pass
    asked = [request["body"].get("stream_options") for request in openai_server.requests]
    assert asked == [{"include_usage": True}, {"include_usage": False}]
    first, second = (dict(span.attributes or {}) for span in pyflare_capture.spans)
    assert first[sc.GEN_AI_USAGE_INPUT_TOKENS] == 6
    assert sc.TOKENS_ESTIMATED not in first
    assert second[sc.TOKENS_ESTIMATED] is True


def test_an_abandoned_stream_still_ends_its_span(
    oai: openai.OpenAI, pyflare_capture: CapturedSpans
) -> None:
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(iter(stream))
    assert pyflare_capture.spans == []
    del stream
    gc.collect()
    found = attributes(pyflare_capture)
    assert found["pyflare.output.closed_early"] is True
    assert trace.get_current_span() is trace.INVALID_SPAN  # no context left attached


def test_a_stream_closed_early_by_its_with_block(
    oai: openai.OpenAI, pyflare_capture: CapturedSpans
) -> None:
    with oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
    found = attributes(pyflare_capture)
    assert found["pyflare.output.closed_early"] is True
    assert found[sc.OUTPUT_PREVIEW] == "Echo:"
    stream.close()  # closing again records nothing more
    assert len(pyflare_capture.spans) == 1


def test_streamed_tool_calls_are_assembled(
    oai: openai.OpenAI, pyflare_capture: CapturedSpans
) -> None:
    tools = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
    for _ in oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "call the weather"}],
        tools=tools,
        stream=True,
    ):
        pass
    found = attributes(pyflare_capture)
    assert found["pyflare.llm.tool_calls"] == ("search",)
    assert found[sc.OUTPUT_PREVIEW] == (
        '[{"id":"call_1","name":"search","arguments":"{\\"q\\": \\"the weather\\"}"}]'
    )
    assert found["gen_ai.response.finish_reasons"] == ("tool_calls",)


def test_a_responses_stream(oai: openai.OpenAI, pyflare_capture: CapturedSpans) -> None:
    events = [e.type for e in oai.responses.create(model="gpt-4o", input="hi you", stream=True)]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    found = attributes(pyflare_capture)
    assert found[sc.GEN_AI_USAGE_INPUT_TOKENS] == 5
    assert found[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert found[sc.OUTPUT_PREVIEW] == "Echo: hi you"
    assert found["pyflare.llm.time_to_first_token_ns"] > 0
    assert sc.TOKENS_ESTIMATED not in found


def test_async_streams(openai_server: OpenAIServer, pyflare_capture: CapturedSpans) -> None:
    async def main() -> str:
        async with openai.AsyncOpenAI(api_key="k", base_url=openai_server.base_url) as aclient:
            stream = await aclient.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            assert isinstance(stream, openai.AsyncStream)
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            early = await aclient.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True
            )
            async with early:
                await early.__anext__()
            return text

    assert asyncio.run(main()) == "Echo: hello there you"
    complete, early = (dict(span.attributes or {}) for span in pyflare_capture.spans)
    assert complete[sc.OUTPUT_PREVIEW] == "Echo: hello there you"
    assert "pyflare.output.closed_early" not in complete
    assert early["pyflare.output.closed_early"] is True
