"""pyflare.instrument("langchain"): global tracing, LangGraph, restoring exactly, budgets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar, TypedDict

import pytest
from langchain_core.callbacks.base import BaseCallbackManager
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph

from pyflare.errors import BudgetExceeded, InvalidArgumentError
from pyflare.instrumentation import instrument, instrumented, uninstrument
from pyflare.instrumentation.langchain import LangChainInstrumentor, PyFlareCallbackHandler
from pyflare.testing import CapturedSpans

ORIGINAL_INIT = BaseCallbackManager.__dict__["__init__"]


class FakeChat(GenericFakeChatModel):
    model: str = "gpt-4o-mini"


def reply(text: str) -> AIMessage:
    usage = {"input_tokens": 1000, "output_tokens": 1000, "total_tokens": 2000}
    return AIMessage(content=text, usage_metadata=usage)  # type: ignore[arg-type]


@pytest.fixture
def langchain_instrumented() -> Iterator[LangChainInstrumentor]:
    assert instrument("langchain") == ["langchain"]
    try:
        yield LangChainInstrumentor()
    finally:
        uninstrument("langchain")
    assert BaseCallbackManager.__dict__["__init__"] is ORIGINAL_INIT


def test_instrument_traces_runs_without_an_explicit_handler(
    langchain_instrumented: LangChainInstrumentor, pyflare_capture: CapturedSpans
) -> None:
    chain = RunnableLambda(lambda x: f"{x}?", name="ask") | FakeChat(messages=iter([reply("yes")]))

    assert chain.invoke("ready").content == "yes"

    names = sorted(s.name for s in pyflare_capture.spans)
    assert names == ["RunnableSequence", "ask", "chat gpt-4o-mini"]
    assert "langchain" in instrumented()


def test_instrument_twice_and_an_explicit_handler_give_one_span_per_run(
    langchain_instrumented: LangChainInstrumentor, pyflare_capture: CapturedSpans
) -> None:
    assert instrument("langchain") == ["langchain"]  # again: nothing more is patched
    step = RunnableLambda(lambda x: x, name="step")

    step.invoke(1)
    step.invoke(2, config={"callbacks": [PyFlareCallbackHandler()]})

    assert [s.name for s in pyflare_capture.spans] == ["step", "step"]


def test_uninstrument_restores_the_original_exactly(pyflare_capture: CapturedSpans) -> None:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument()
    assert BaseCallbackManager.__dict__["__init__"] is not ORIGINAL_INIT
    instrumentor.uninstrument()

    assert BaseCallbackManager.__dict__["__init__"] is ORIGINAL_INIT
    RunnableLambda(lambda x: x, name="quiet").invoke(1)
    assert pyflare_capture.spans == []


def test_uninstrument_without_instrument_changes_nothing() -> None:
    assert "langchain" not in instrumented()
    assert uninstrument("langchain") == []
    LangChainInstrumentor().uninstrument()
    assert BaseCallbackManager.__dict__["__init__"] is ORIGINAL_INIT


def test_an_unknown_option_is_named_and_nothing_is_patched() -> None:
    with pytest.raises(InvalidArgumentError, match="capture_everything"):
        LangChainInstrumentor().instrument(capture_everything=True)
    assert BaseCallbackManager.__dict__["__init__"] is ORIGINAL_INIT
    assert not LangChainInstrumentor().is_instrumented_by_opentelemetry


class FutureOnly(LangChainInstrumentor):
    """The same instrumentor, claiming a langchain-core range the installed one is outside."""

    _instance: ClassVar[Any] = None  # its own singleton, not LangChainInstrumentor's
    supported: ClassVar[str] = ">=99"


def test_a_version_outside_the_supported_range_patches_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        FutureOnly().instrument()

    assert BaseCallbackManager.__dict__["__init__"] is ORIGINAL_INIT
    assert not FutureOnly().is_instrumented_by_opentelemetry
    assert "langchain-core" in caplog.text and ">=99" in caplog.text


class State(TypedDict):
    question: str
    answer: str


def test_a_langgraph_state_graph_is_traced_through_the_same_callbacks(
    langchain_instrumented: LangChainInstrumentor, pyflare_capture: CapturedSpans
) -> None:
    model = FakeChat(messages=iter([reply("forty-two")]))

    def think(state: State) -> dict[str, Any]:
        return {"question": state["question"].strip()}

    def answer(state: State) -> dict[str, Any]:
        return {"answer": model.invoke(state["question"]).content}

    graph = StateGraph(State)
    graph.add_node("think", think)
    graph.add_node("answer", answer)
    graph.add_edge(START, "think")
    graph.add_edge("think", "answer")
    graph.add_edge("answer", END)
    app = graph.compile()

    result = app.invoke({"question": " meaning of life? ", "answer": ""})

    assert result["answer"] == "forty-two"
    spans = pyflare_capture.spans
    by_name = {s.name: s for s in spans}
    root = by_name["LangGraph"]
    assert root.parent is None
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    nodes = {s.name: s for s in spans if s.attributes and "langgraph.node" in s.attributes}
    assert {"think", "answer"} <= set(nodes)
    llm = by_name["chat gpt-4o-mini"]
    assert llm.parent is not None and llm.parent.span_id == nodes["answer"].context.span_id
    assert nodes["answer"].attributes is not None
    assert nodes["answer"].attributes["langgraph.node"] == "answer"
    rows = {r["operation_name"]: r for r in pyflare_capture.rows()}
    assert rows["chat gpt-4o-mini"]["input_tokens"] == 1000


def test_a_spent_hard_budget_stops_the_model_call(
    langchain_instrumented: LangChainInstrumentor, pyflare_capture: CapturedSpans
) -> None:
    from pyflare.cost.budgets import budget

    handle = budget(limit_micros=1, model="gpt-4o-mini", hard=True)
    try:
        model = FakeChat(messages=iter([reply("first"), reply("second")]))
        assert model.invoke("one").content == "first"  # this call crosses the limit
        assert handle.spent_micros > 1
        with pytest.raises(BudgetExceeded):
            model.invoke("two")
    finally:
        handle.remove()

    # The refused call made no model span: nothing was sent.
    assert [s.name for s in pyflare_capture.spans] == ["chat gpt-4o-mini"]
