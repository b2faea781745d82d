"""LangChain and OpenAI instrumented together: one model call is priced once.

A LangChain chat model that calls the real ``openai`` client makes two spans for
one call: LangChain's model run and, inside it, the OpenAI request. The OpenAI span
has the provider's exact usage, so it carries the tokens and the cost; LangChain's
span says so (``pyflare.usage.in_child``) and gets no cost row of its own.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from _openai_server import OpenAIServer
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from pyflare import semconv as sc
from pyflare.cost.processor import CostProcessor
from pyflare.instrumentation.langchain import PyFlareCallbackHandler
from pyflare.testing import CapturedSpans

pytestmark = pytest.mark.usefixtures("openai_instrumented")


class OpenAIChat(BaseChatModel):
    """A LangChain chat model over the real openai client (as langchain-openai's is)."""

    base_url: str
    model: str = "gpt-4o-mini"

    @property
    def _llm_type(self) -> str:
        return "openai-chat"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kwargs: Any) -> ChatResult:
        with openai.OpenAI(api_key="k", base_url=self.base_url) as client:
            answer = client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": str(m.content)} for m in messages],
            )
        usage = answer.usage
        assert usage is not None
        message = AIMessage(
            content=answer.choices[0].message.content or "",
            usage_metadata={
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


@pytest.fixture
def model(openai_server: OpenAIServer) -> OpenAIChat:
    return OpenAIChat(base_url=openai_server.base_url)


def test_the_provider_span_carries_the_tokens_and_the_cost(
    model: OpenAIChat, pyflare_capture: CapturedSpans
) -> None:
    model.invoke("hello there", config={"callbacks": [PyFlareCallbackHandler()]})

    spans = sorted(pyflare_capture.rows(), key=lambda row: row["start_time"])
    assert len(spans) == 2
    outer, inner = spans
    assert inner["parent_span_id"] == outer["span_id"]
    assert outer["attributes"]["pyflare.span.kind"] == "llm"
    assert outer["attributes"][sc.USAGE_IN_CHILD] == "true"
    assert outer["input_tokens"] is None and outer["output_tokens"] is None
    assert sc.TOKENS_ESTIMATED not in outer["attributes"]
    assert inner["input_tokens"] and inner["output_tokens"]
    assert inner["cost_micros"] and inner["cost_micros"] > 0

    priced = CostProcessor().apply(pyflare_capture.batch())
    costs = priced.costs.to_pylist()
    assert [row["span_id"] for row in costs] == [inner["span_id"]]
    assert costs[0]["total_cost_micros"] == inner["cost_micros"]
    by_span = {row["span_id"]: row for row in priced.spans.to_pylist()}
    assert by_span[outer["span_id"]]["cost_micros"] is None
    assert "pyflare.cost.unpriced" not in dict(by_span[outer["span_id"]]["attributes"])


def test_without_a_provider_span_langchain_keeps_the_usage(
    model: OpenAIChat, pyflare_capture: CapturedSpans
) -> None:
    from pyflare.instrumentation import uninstrument

    uninstrument("openai")
    model.invoke("hello there", config={"callbacks": [PyFlareCallbackHandler()]})

    [row] = pyflare_capture.rows()
    assert sc.USAGE_IN_CHILD not in row["attributes"]
    assert row["input_tokens"] and row["output_tokens"]
    [cost] = CostProcessor().apply(pyflare_capture.batch()).costs.to_pylist()
    assert cost["span_id"] == row["span_id"]
    assert cost["total_cost_micros"] and cost["total_cost_micros"] > 0
