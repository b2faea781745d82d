"""LangChain runs as spans: real langchain-core runnables, fake chat models, a real retriever."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from opentelemetry import trace

import pyflare
from pyflare._runtime import reset_warnings
from pyflare.instrumentation.langchain import PyFlareCallbackHandler
from pyflare.testing import CapturedSpans, capture_spans


class FakeChat(GenericFakeChatModel):
    """GenericFakeChatModel with a model name, as a real provider integration reports it."""

    model: str = "gpt-4o-mini"


class UsageChat(BaseChatModel):
    """A chat model reporting usage the older way: in ``llm_output["token_usage"]``."""

    model: str = "gpt-4o"

    @property
    def _llm_type(self) -> str:
        return "usage-chat"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kwargs: Any) -> ChatResult:
        generation = ChatGeneration(
            message=AIMessage(content="ok"), generation_info={"finish_reason": "length"}
        )
        usage = {
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
        return ChatResult(
            generations=[generation], llm_output={"token_usage": usage, "model_name": "gpt-4o-2024"}
        )


class Shelf(BaseRetriever):
    """A real retriever over a fixed list of documents (word overlap)."""

    documents: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        words = set(query.lower().split())
        return [d for d in self.documents if words & set(d.page_content.lower().split())]


def reply(text: str, **usage: int) -> AIMessage:
    metadata = {"model_name": "gpt-4o-mini-2024-07-18", "finish_reason": "stop", "id": "resp-1"}
    return AIMessage(
        content=text,
        usage_metadata=usage or None,  # type: ignore[arg-type]
        response_metadata=metadata,
    )


def chat(*replies: AIMessage) -> FakeChat:
    return FakeChat(messages=iter(replies))


def handler() -> dict[str, Any]:
    return {"callbacks": [PyFlareCallbackHandler()]}


def rows_by_name(captured: CapturedSpans) -> dict[str, dict[str, Any]]:
    return {row["operation_name"]: row for row in captured.rows()}


def assert_context_clean() -> None:
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_chain_with_a_chat_model_nests_spans_with_genai_fields(
    pyflare_capture: CapturedSpans,
) -> None:
    usage = {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17}
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | chat(reply("Paris.", **usage))

    result = chain.invoke({"q": "Capital of France?"}, config=handler())

    assert result.content == "Paris."
    rows = rows_by_name(pyflare_capture)
    assert set(rows) == {"RunnableSequence", "ChatPromptTemplate", "chat gpt-4o-mini"}
    root, prompt, llm = (
        rows["RunnableSequence"],
        rows["ChatPromptTemplate"],
        rows["chat gpt-4o-mini"],
    )
    assert root["parent_span_id"] is None
    assert prompt["parent_span_id"] == root["span_id"] == llm["parent_span_id"]
    assert {r["trace_id"] for r in rows.values()} == {root["trace_id"]}
    assert llm["span_kind"] == "client"
    assert llm["model_id"] == "gpt-4o-mini-2024-07-18"  # the model that answered
    assert llm["inference_type"] == "llm"
    assert (llm["input_tokens"], llm["output_tokens"], llm["total_tokens"]) == (12, 5, 17)
    assert llm["input_preview"] == '[{"content":"Capital of France?","role":"user"}]'
    assert llm["output_preview"] == "Paris."
    attributes = llm["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.finish_reasons"] == '["stop"]'
    assert attributes["gen_ai.response.id"] == "resp-1"
    assert attributes["pyflare.span.kind"] == "llm"
    assert "pyflare.tokens.estimated" not in attributes
    assert root["input_preview"] == '{"q":"Capital of France?"}'
    assert root["output_preview"] == '{"content":"Paris.","role":"assistant"}'
    assert root["attributes"]["pyflare.span.kind"] == "chain"
    assert {r["status_code"] for r in rows.values()} == {"ok"}
    assert_context_clean()


def test_usage_from_llm_output_with_cached_and_reasoning_tokens(
    pyflare_capture: CapturedSpans,
) -> None:
    UsageChat().invoke("hi", config=handler())

    (row,) = pyflare_capture.rows()
    assert row["operation_name"] == "chat gpt-4o"
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (11, 7, 18)
    assert row["model_id"] == "gpt-4o-2024"
    assert row["attributes"]["pyflare.usage.cached_input_tokens"] == "4"
    assert row["attributes"]["pyflare.usage.reasoning_tokens"] == "2"
    assert row["attributes"]["gen_ai.response.finish_reasons"] == '["length"]'


def test_tokens_are_estimated_and_flagged_when_the_model_reports_none(
    pyflare_capture: CapturedSpans,
) -> None:
    chat(reply("a fairly short answer")).invoke("what is the answer?", config=handler())

    (row,) = pyflare_capture.rows()
    assert row["attributes"]["pyflare.tokens.estimated"] == "true"
    assert row["input_tokens"] is not None and row["input_tokens"] > 0
    assert row["output_tokens"] is not None and row["output_tokens"] > 0


def test_text_completion_model(pyflare_capture: CapturedSpans) -> None:
    FakeListLLM(responses=["forty-two"]).invoke("meaning of life?", config=handler())

    (row,) = pyflare_capture.rows()
    assert row["attributes"]["gen_ai.operation.name"] == "text_completion"
    assert row["inference_type"] == "llm"
    assert row["input_preview"] == "meaning of life?"
    assert row["output_preview"] == "forty-two"


def test_streaming_records_the_first_token_and_the_whole_output(
    pyflare_capture: CapturedSpans,
) -> None:
    model = chat(reply("one two three"))
    chunks = [c.content for c in model.stream("count", config=handler())]

    assert "".join(chunks) == "one two three"  # type: ignore[arg-type]
    (span,) = pyflare_capture.spans
    assert [e.name for e in span.events] == ["gen_ai.first_token"]
    assert pyflare_capture.rows()[0]["output_preview"] == "one two three"
    assert_context_clean()


def test_a_stream_abandoned_half_way_still_ends_its_span(pyflare_capture: CapturedSpans) -> None:
    callback = PyFlareCallbackHandler()
    chain = RunnableLambda(lambda x: x) | chat(reply("one two three four"))
    stream = chain.stream("count", config={"callbacks": [callback]})
    next(stream)
    stream.close()

    rows = rows_by_name(pyflare_capture)
    assert set(rows) == {"RunnableSequence", "RunnableLambda", "chat gpt-4o-mini"}
    llm = rows["chat gpt-4o-mini"]
    assert llm["attributes"]["pyflare.output.closed_early"] == "true"
    assert llm["status_code"] != "error"  # closing a stream early is not a failure
    assert callback._spans._runs == {}
    assert_context_clean()


def test_tools_record_name_arguments_and_result(pyflare_capture: CapturedSpans) -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    assert add.invoke({"a": 2, "b": 3}, config=handler()) == 5

    (row,) = pyflare_capture.rows()
    assert row["operation_name"] == "execute_tool add"
    attributes = row["attributes"]
    assert attributes["gen_ai.tool.name"] == "add"
    assert attributes["gen_ai.tool.description"] == "Add two numbers."
    assert attributes["pyflare.span.kind"] == "tool"
    assert row["inference_type"] is None  # a tool call is not a model call
    assert row["input_preview"] == '{"a":2,"b":3}'
    assert row["output_preview"] == "5"


def test_a_failing_tool_marks_its_span_and_the_error_propagates(
    pyflare_capture: CapturedSpans,
) -> None:
    @tool
    def explode(x: str) -> str:
        """Always fails."""
        raise KeyError(x)

    with pytest.raises(KeyError, match="boom"):
        explode.invoke({"x": "boom"}, config=handler())

    (row,) = pyflare_capture.rows()
    assert row["status_code"] == "error"
    assert row["attributes"]["error.type"] == "KeyError"
    assert "KeyError" in row["status_message"]


def test_retriever_documents_as_openinference_attributes(pyflare_capture: CapturedSpans) -> None:
    shelf = Shelf(
        documents=[
            Document(page_content="paris is in france", id="d1", metadata={"score": 0.9}),
            Document(page_content="berlin is in germany", id="d2", metadata={"source": "wiki"}),
            Document(page_content="rome is in italy", id="d3"),
        ]
    )

    found = shelf.invoke("paris or berlin", config=handler())

    assert [d.id for d in found] == ["d1", "d2"]
    (row,) = pyflare_capture.rows()
    attributes = row["attributes"]
    assert row["operation_name"] == "Shelf"
    assert attributes["pyflare.span.kind"] == "retriever"
    assert attributes["openinference.span.kind"] == "RETRIEVER"
    assert attributes["pyflare.retrieval.document_count"] == "2"
    assert attributes["retrieval.documents.0.document.id"] == "d1"
    assert attributes["retrieval.documents.0.document.content"] == "paris is in france"
    assert attributes["retrieval.documents.0.document.score"] == "0.9"
    assert attributes["retrieval.documents.1.document.metadata"] == '{"source":"wiki"}'
    assert "retrieval.documents.1.document.score" not in attributes
    assert "retrieval.documents.2.document.id" not in attributes
    assert row["input_preview"] == "paris or berlin"


def test_many_documents_are_counted_and_the_first_ones_recorded(
    pyflare_capture: CapturedSpans,
) -> None:
    shelf = Shelf(documents=[Document(page_content=f"doc {i}", id=f"d{i}") for i in range(50)])

    assert len(shelf.invoke("doc", config=handler())) == 50

    (row,) = pyflare_capture.rows()
    attributes = row["attributes"]
    assert attributes["pyflare.retrieval.document_count"] == "50"
    assert "retrieval.documents.19.document.content" in attributes
    assert "retrieval.documents.20.document.id" not in attributes
    assert attributes["pyflare.span.kind"] == "retriever"  # kept within the attribute limit


def test_retrieved_content_follows_output_capture_and_masking() -> None:
    shelf = Shelf(
        documents=[Document(page_content="mail alice@example.com about it", id="d1")],
    )
    with capture_spans() as masked:
        shelf.invoke("mail about it", config=handler())
    content = masked.rows()[0]["attributes"]["retrieval.documents.0.document.content"]
    assert "alice@example.com" not in content

    with capture_spans(capture="inputs") as inputs_only:
        shelf.invoke("mail about it", config=handler())
    attributes = inputs_only.rows()[0]["attributes"]
    assert attributes["retrieval.documents.0.document.id"] == "d1"
    assert "retrieval.documents.0.document.content" not in attributes


def test_content_capture_off_keeps_model_fields() -> None:
    with capture_spans(capture="off") as captured:
        chat(reply("secret answer", input_tokens=3, output_tokens=2, total_tokens=5)).invoke(
            "secret question", config=handler()
        )
    (row,) = captured.rows()
    assert row["input_preview"] is None and row["output_preview"] is None
    assert (row["model_id"], row["input_tokens"], row["output_tokens"]) == (
        "gpt-4o-mini-2024-07-18",
        3,
        2,
    )


def test_a_failing_step_marks_the_chain_and_the_exception_is_unchanged(
    pyflare_capture: CapturedSpans,
) -> None:
    error = ValueError("bad input")

    def fail(_: object) -> None:
        raise error

    chain = RunnableLambda(lambda x: x) | RunnableLambda(fail)
    with pytest.raises(ValueError, match="bad input") as raised:
        chain.invoke("x", config=handler())

    assert raised.value is error
    rows = rows_by_name(pyflare_capture)
    assert rows["fail"]["status_code"] == "error"
    assert rows["RunnableSequence"]["status_code"] == "error"
    assert rows["RunnableSequence"]["attributes"]["error.type"] == "ValueError"
    assert [e["name"] for e in rows["fail"]["events"]] == ["exception"]
    assert_context_clean()


def test_langchain_inside_a_traced_function_and_traced_code_inside_a_step(
    pyflare_capture: CapturedSpans,
) -> None:
    @pyflare.trace
    def lookup(x: str) -> str:
        return x.upper()

    @pyflare.trace
    def answer(question: str) -> str:
        chain = RunnableLambda(lookup, name="step")
        return chain.invoke(question, config=handler())  # type: ignore[no-any-return]

    assert answer("hi") == "HI"

    spans = {s.name: s for s in pyflare_capture.spans}
    outer = spans[next(n for n in spans if n.endswith("answer"))]
    inner = spans[next(n for n in spans if n.endswith("lookup"))]
    step = spans["step"]
    assert step.parent is not None and step.parent.span_id == outer.context.span_id
    assert inner.parent is not None and inner.parent.span_id == step.context.span_id
    assert_context_clean()


def test_batch_ends_every_span_and_hands_the_context_back(pyflare_capture: CapturedSpans) -> None:
    chain = RunnableLambda(lambda x: x * 2, name="double") | RunnableLambda(
        lambda x: x + 1, name="inc"
    )

    assert chain.batch([1, 2, 3], config=handler()) == [3, 5, 7]

    rows = pyflare_capture.rows()
    roots = [r for r in rows if r["operation_name"] == "RunnableSequence"]
    assert len(roots) == 3 and len(rows) == 9
    root_ids = {r["span_id"] for r in roots}
    assert {r["parent_span_id"] for r in rows if r not in roots} == root_ids
    assert_context_clean()


def test_llm_batch_of_prompts(pyflare_capture: CapturedSpans) -> None:
    model = chat(reply("a"), reply("b"))
    assert [m.content for m in model.batch(["x", "y"], config=handler())] == ["a", "b"]
    assert len(pyflare_capture.rows()) == 2
    assert_context_clean()


async def test_async_runs_nest_the_same_way(pyflare_capture: CapturedSpans) -> None:
    model = chat(reply("async!"), reply("async!"))
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | model

    results = await asyncio.gather(
        chain.ainvoke({"q": "one"}, config=handler()),
        chain.ainvoke({"q": "two"}, config=handler()),
    )

    assert [r.content for r in results] == ["async!", "async!"]
    rows = pyflare_capture.rows()
    roots = {r["span_id"]: r for r in rows if r["operation_name"] == "RunnableSequence"}
    assert len(roots) == 2
    assert all(r["parent_span_id"] in roots for r in rows if r["span_id"] not in roots)
    assert_context_clean()


def test_agent_actions_mark_the_run_as_an_agent(pyflare_capture: CapturedSpans) -> None:
    from uuid import uuid4

    from langchain_core.agents import AgentAction, AgentFinish

    callback = PyFlareCallbackHandler()
    run_id = uuid4()
    callback.on_chain_start({"name": "AgentExecutor"}, {"input": "2+2"}, run_id=run_id)
    callback.on_agent_action(AgentAction("calculator", {"expr": "2+2"}, "thinking"), run_id=run_id)
    callback.on_agent_finish(AgentFinish({"output": "4"}, "done"), run_id=run_id)
    callback.on_chain_end({"output": "4"}, run_id=run_id)

    (span,) = pyflare_capture.spans
    assert span.name == "AgentExecutor"
    assert span.attributes is not None
    assert span.attributes["pyflare.span.kind"] == "agent"
    assert [e.name for e in span.events] == ["agent.action", "agent.finish"]
    assert span.events[0].attributes == {
        "gen_ai.tool.name": "calculator",
        "gen_ai.tool.call.arguments": '{"expr":"2+2"}',
    }


def test_callbacks_for_unknown_runs_are_ignored(pyflare_capture: CapturedSpans) -> None:
    from uuid import uuid4

    callback = PyFlareCallbackHandler()
    callback.on_chain_end({}, run_id=uuid4())
    callback.on_llm_end(None, run_id=uuid4())
    callback.on_tool_error(RuntimeError("x"), run_id=uuid4())
    callback.on_llm_new_token("x", run_id=uuid4())
    assert pyflare_capture.spans == []


class _BrokenTracer(trace.NoOpTracer):
    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        raise RuntimeError("tracer is broken")


class _BrokenProvider(trace.NoOpTracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _BrokenTracer()


def test_a_broken_tracer_never_breaks_the_run(caplog: pytest.LogCaptureFixture) -> None:
    reset_warnings()
    callback = PyFlareCallbackHandler(tracer_provider=_BrokenProvider())
    chain = RunnableLambda(lambda x: f"{x}!") | chat(reply("fine"))

    assert chain.invoke(1, config={"callbacks": [callback]}).content == "fine"
    assert "PyFlare's LangChain handler failed" in caplog.text
    assert_context_clean()
