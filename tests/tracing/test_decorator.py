"""@pyflare.trace on every kind of callable, with its failure paths."""

from __future__ import annotations

import asyncio
import inspect
import sys
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import pyflare
from pyflare import semconv as sc
from pyflare.testing import CapturedSpans, capture_spans


def _ids(captured: CapturedSpans) -> dict[str, Any]:
    return {s.name: s for s in captured.spans}


def test_bare_decorator_records_a_span_with_input_and_output(
    pyflare_capture: CapturedSpans,
) -> None:
    @pyflare.trace
    def answer(question: str, k: int = 3) -> str:
        return f"answer to {question}"

    assert answer("why?", k=5) == "answer to why?"
    span = pyflare_capture.span(
        "test_bare_decorator_records_a_span_with_input_and_output.<locals>.answer"
    )
    assert span.attributes is not None
    assert span.attributes[sc.INPUT_PREVIEW] == '{"question":"why?","k":5}'
    assert span.attributes[sc.OUTPUT_PREVIEW] == "answer to why?"
    assert len(str(span.attributes[sc.INPUT_HASH])) == 32
    assert span.attributes[sc.CODE_FUNCTION].endswith("answer")
    assert span.status.status_code is StatusCode.UNSET
    assert span.kind is SpanKind.INTERNAL


def test_options_set_kind_model_and_inference_type(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(
        name="classify",
        kind="llm",
        inference_type="classification",
        model_id="fraud-v3",
        model_version="2026-10",
        attributes={"team.owner": "risk", "tags": ["a", "b"]},
    )
    def classify(features: dict[str, float]) -> float:
        return 0.25

    classify({"amount": 12.5})
    span = pyflare_capture.span("classify")
    attrs = dict(span.attributes or {})
    assert attrs[sc.SPAN_KIND] == "llm"
    assert attrs[sc.OI_SPAN_KIND] == "LLM"
    assert attrs[sc.MODEL_ID] == "fraud-v3"
    assert attrs[sc.MODEL_VERSION] == "2026-10"
    assert attrs[sc.INFERENCE_TYPE] == "classification"
    assert attrs["team.owner"] == "risk"
    assert attrs["tags"] == ("a", "b")
    assert span.kind is SpanKind.CLIENT  # llm calls leave the process
    row = pyflare_capture.rows()[0]
    assert row["model_id"] == "fraud-v3"
    assert row["inference_type"] == "classification"
    assert row["output_preview"] == "0.25"


def test_span_name_as_positional_string(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace("rank-documents")
    def rank() -> None:
        return None

    rank()
    assert [s.name for s in pyflare_capture.spans] == ["rank-documents"]


async def test_async_function(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="fetch")
    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        with pyflare.span("inner"):
            pass
        return n * 2

    assert await fetch(4) == 8
    spans = _ids(pyflare_capture)
    assert spans["inner"].parent.span_id == spans["fetch"].context.span_id
    assert spans["fetch"].attributes[sc.OUTPUT_PREVIEW] == "8"


async def test_concurrent_async_calls_keep_their_own_parents(
    pyflare_capture: CapturedSpans,
) -> None:
    @pyflare.trace(name="child")
    async def child(i: int) -> int:
        await asyncio.sleep(0.001 * (3 - i))
        return i

    @pyflare.trace(name="parent")
    async def parent(i: int) -> int:
        return await child(i)

    await asyncio.gather(*(parent(i) for i in range(3)))
    parents = {s.context.span_id: s for s in pyflare_capture.spans if s.name == "parent"}
    children = [s for s in pyflare_capture.spans if s.name == "child"]
    assert len(children) == 3
    for c in children:
        owner = parents[c.parent.span_id]
        assert owner.attributes[sc.INPUT_PREVIEW] == c.attributes[sc.INPUT_PREVIEW]


def test_generator_span_covers_the_whole_iteration(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="stream")
    def stream(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            with pyflare.span(f"step-{i}"):
                pass
            yield f"tok{i} "
        return "done"

    out = list(stream(3))
    assert out == ["tok0 ", "tok1 ", "tok2 "]
    spans = _ids(pyflare_capture)
    root = spans["stream"]
    for i in range(3):
        assert spans[f"step-{i}"].parent.span_id == root.context.span_id
    assert root.end_time >= max(
        s.end_time for s in pyflare_capture.spans if s.name.startswith("step")
    )
    assert root.attributes["pyflare.output.items"] == 3
    assert root.attributes[sc.OUTPUT_PREVIEW] == "tok0 tok1 tok2 "


def test_generator_context_does_not_leak_to_the_consumer(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="gen")
    def gen():  # type: ignore[no-untyped-def]
        yield 1
        yield 2

    with pyflare.span("consumer"):
        for _ in gen():
            with pyflare.span("between"):
                pass
    spans = pyflare_capture.spans
    consumer = next(s for s in spans if s.name == "consumer")
    for between in (s for s in spans if s.name == "between"):
        assert between.parent.span_id == consumer.context.span_id


def test_generator_break_ends_the_span(pyflare_capture: CapturedSpans) -> None:
    closed = []

    @pyflare.trace(name="numbers")
    def numbers():  # type: ignore[no-untyped-def]
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)

    for value in numbers():
        if value == 2:
            break
    assert closed == [True]
    span = pyflare_capture.span("numbers")
    assert span.end_time is not None
    assert span.attributes["pyflare.output.closed_early"] is True
    assert span.attributes["pyflare.output.items"] == 3
    assert span.status.status_code is StatusCode.UNSET


def test_generator_send_throw_and_return_value(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="echo")
    def echo():  # type: ignore[no-untyped-def]
        received = yield "ready"
        while True:
            try:
                received = yield f"got {received}"
            except KeyError:
                received = "recovered"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("a") == "got a"
    assert gen.throw(KeyError("x")) == "got recovered"
    gen.close()

    @pyflare.trace(name="returns")
    def returns():  # type: ignore[no-untyped-def]
        yield 1
        return 42

    def outer():  # type: ignore[no-untyped-def]
        result = yield from returns()
        return result

    g = outer()
    next(g)
    with pytest.raises(StopIteration) as stop:
        next(g)
    assert stop.value.value == 42


def test_generator_error_marks_the_span(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="broken")
    def broken():  # type: ignore[no-untyped-def]
        yield 1
        raise RuntimeError("stream broke")

    with pytest.raises(RuntimeError, match="stream broke"):
        list(broken())
    span = pyflare_capture.span("broken")
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]


async def test_async_generator(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="astream")
    async def astream(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            await asyncio.sleep(0)
            with pyflare.span("chunk"):
                pass
            yield i

    assert [i async for i in astream(3)] == [0, 1, 2]
    spans = pyflare_capture.spans
    root = next(s for s in spans if s.name == "astream")
    assert all(s.parent.span_id == root.context.span_id for s in spans if s.name == "chunk")
    assert root.attributes["pyflare.output.items"] == 3

    agen = astream(10)
    assert await agen.__anext__() == 0
    await agen.aclose()
    closed = [s for s in pyflare_capture.spans if s.name == "astream"][-1]
    assert closed.attributes["pyflare.output.closed_early"] is True


async def test_async_generator_error(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="abroken")
    async def abroken():  # type: ignore[no-untyped-def]
        yield 1
        raise ValueError("bad chunk")

    with pytest.raises(ValueError, match="bad chunk"):
        async for _ in abroken():
            pass
    assert pyflare_capture.span("abroken").status.status_code is StatusCode.ERROR


class Model:
    """A model with every kind of method."""

    factor = 2

    @pyflare.trace
    def predict(self, x: int) -> int:
        """Predict things."""
        return x * self.factor

    @pyflare.trace
    @classmethod
    def load(cls, name: str) -> str:
        return f"{cls.__name__}:{name}"

    @classmethod
    @pyflare.trace
    def load_inner(cls, name: str) -> str:
        return name

    @pyflare.trace
    @staticmethod
    def normalise(x: float) -> float:
        return x / 10

    @pyflare.trace
    async def apredict(self, x: int) -> int:
        return x


async def test_methods_classmethods_staticmethods(pyflare_capture: CapturedSpans) -> None:
    model = Model()
    assert model.predict(3) == 6
    assert Model.load("v1") == "Model:v1"
    assert model.load("v2") == "Model:v2"
    assert Model.load_inner("x") == "x"
    assert Model.normalise(5.0) == 0.5
    assert model.normalise(5.0) == 0.5
    assert await model.apredict(1) == 1
    names = [s.name for s in pyflare_capture.spans]
    assert names == [
        "Model.predict",
        "Model.load",
        "Model.load",
        "Model.load_inner",
        "Model.normalise",
        "Model.normalise",
        "Model.apredict",
    ]
    # self and cls are not part of the captured input
    assert pyflare_capture.spans[0].attributes[sc.INPUT_PREVIEW] == '{"x":3}'
    assert pyflare_capture.spans[1].attributes[sc.INPUT_PREVIEW] == '{"name":"v1"}'


def test_metadata_and_signature_are_kept() -> None:
    assert Model.predict.__name__ == "predict"
    assert Model.predict.__doc__ == "Predict things."
    assert str(inspect.signature(Model.predict)) == "(self, x: 'int') -> 'int'"
    assert inspect.iscoroutinefunction(Model.apredict)
    assert isinstance(Model.__dict__["load"], classmethod)
    assert isinstance(Model.__dict__["normalise"], staticmethod)

    @pyflare.trace
    def gen():  # type: ignore[no-untyped-def]
        yield 1

    @pyflare.trace
    async def agen():  # type: ignore[no-untyped-def]
        yield 1

    assert inspect.isgeneratorfunction(gen)
    assert inspect.isasyncgenfunction(agen)


def test_exception_is_recorded_and_reraised_unchanged(pyflare_capture: CapturedSpans) -> None:
    error = ValueError("model exploded")

    @pyflare.trace(name="explode")
    def explode() -> None:
        raise error

    with pytest.raises(ValueError, match="model exploded") as caught:
        explode()
    assert caught.value is error
    # The traceback still points at the user's raise.
    assert caught.traceback[-1].name == "explode"
    span = pyflare_capture.span("explode")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: model exploded"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert "model exploded" in event.attributes["exception.message"]
    assert sc.OUTPUT_PREVIEW not in span.attributes
    row = pyflare_capture.rows()[0]
    assert row["status_code"] == "error"
    assert row["events"][0]["name"] == "exception"


def test_recursion_nests_and_recursion_error_propagates(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="fact", capture="off")
    def fact(n: int) -> int:
        return 1 if n <= 1 else n * fact(n - 1)

    assert fact(30) == 265252859812191058636308480000000
    spans = pyflare_capture.spans
    assert len(spans) == 30
    by_id = {s.context.span_id: s for s in spans}
    depth = 0
    node = spans[0]  # the innermost ends first
    while node.parent is not None and node.parent.span_id in by_id:
        node = by_id[node.parent.span_id]
        depth += 1
    assert depth == 29

    pyflare_capture.clear()

    @pyflare.trace(name="forever")
    def forever(n: int) -> int:
        return forever(n + 1)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        with pytest.raises(RecursionError):
            forever(0)
    finally:
        sys.setrecursionlimit(limit)
    assert pyflare_capture.spans, "spans of the failed recursion are still ended"
    assert all(s.end_time is not None for s in pyflare_capture.spans)

    # Tracing works normally afterwards.
    pyflare_capture.clear()
    assert fact(3) == 6
    assert len(pyflare_capture.spans) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "llmm"}, "unknown kind 'llmm'"),
        ({"kind": 3}, "unknown kind 3"),
        ({"inference_type": "clustering"}, "unknown inference_type 'clustering'"),
        ({"capture": "everything"}, "capture='everything'"),
        ({"model_id": ""}, "model_id must be a non-empty string"),
        ({"model_version": 2}, "model_version must be a non-empty string"),
        ({"attributes": {"x": object()}}, "attribute 'x' has a object value"),
        ({"attributes": {1: "x"}}, "attribute keys must be non-empty strings"),
        ({"attributes": ["x"]}, "attributes must be a mapping"),
        ({"name": ""}, "name=...) must be a non-empty string"),
    ],
)
def test_bad_decorator_arguments_fail_where_written(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(
        pyflare.InvalidArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):

        @pyflare.trace(**kwargs)
        def f() -> None:
            return None


@pytest.mark.parametrize("target", [42, 3.5, [1, 2], object()])
def test_decorating_a_non_callable(target: Any) -> None:
    with pytest.raises(pyflare.InvalidArgumentError, match="decorates functions and methods"):
        pyflare.trace(target)


def test_decorating_a_class_is_refused() -> None:
    with pytest.raises(pyflare.InvalidArgumentError, match="not classes"):

        @pyflare.trace
        class Thing:
            pass


def test_kind_is_case_insensitive_and_otel_kinds_accepted(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(kind="Retriever")
    def r() -> None:
        return None

    @pyflare.trace(kind="server")
    def s() -> None:
        return None

    r()
    s()
    first, second = pyflare_capture.spans
    assert first.attributes[sc.SPAN_KIND] == "retriever"
    assert second.kind is SpanKind.SERVER
    assert sc.SPAN_KIND not in second.attributes


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")

    def __str__(self) -> str:
        raise RuntimeError("str exploded")


def test_arguments_that_cannot_be_serialised(pyflare_capture: CapturedSpans) -> None:
    loop: list[Any] = []
    loop.append(loop)

    @pyflare.trace(name="weird")
    def weird(a: Any, b: Any, c: Any) -> Any:
        return Unprintable()

    result = weird(Unprintable(), loop, {1, 2})
    assert isinstance(result, Unprintable)
    span = pyflare_capture.span("weird")
    assert sc.INPUT_PREVIEW in span.attributes
    assert sc.OUTPUT_PREVIEW in span.attributes


def test_ten_megabyte_argument_is_bounded(pyflare_capture: CapturedSpans) -> None:
    big = "x" * (10 * 1024 * 1024 - 1) + "y"

    @pyflare.trace(name="big")
    def consume(text: str) -> int:
        return len(text)

    assert consume(big) == 10 * 1024 * 1024
    span = pyflare_capture.span("big")
    assert len(span.attributes[sc.INPUT_PREVIEW]) <= 1000
    first_hash = span.attributes[sc.INPUT_HASH]
    pyflare_capture.clear()
    consume(big[:-1] + "z")
    # The hash covers the whole input: a change in the last character shows.
    assert pyflare_capture.span("big").attributes[sc.INPUT_HASH] != first_hash


def test_capture_modes() -> None:
    @pyflare.trace(name="f")
    def f(x: str) -> str:
        return x.upper()

    @pyflare.trace(name="g", capture="off")
    def g(x: str) -> str:
        return x

    for mode, has_input, has_output in [
        ("all", True, True),
        ("inputs", True, False),
        ("off", False, False),
    ]:
        with capture_spans(capture=mode) as captured:
            f("hi")
            g("hi")
        span_f = captured.span("f")
        assert (sc.INPUT_PREVIEW in span_f.attributes) is has_input, mode
        assert (sc.OUTPUT_PREVIEW in span_f.attributes) is has_output, mode
        span_g = captured.span("g")
        assert sc.INPUT_PREVIEW not in span_g.attributes
        assert sc.OUTPUT_PREVIEW not in span_g.attributes


def test_capture_max_chars() -> None:
    @pyflare.trace(name="f")
    def f(x: str) -> str:
        return x

    with capture_spans(max_chars=10) as captured:
        f("abcdefghijklmnopqrstuvwxyz")
    span = captured.span("f")
    assert len(span.attributes[sc.OUTPUT_PREVIEW]) == 10


def test_pii_is_masked_before_it_is_recorded(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="support")
    def support(message: str) -> str:
        return "we will email jane.doe@example.com and call +1 415 555 0100"

    support("my card is 4111 1111 1111 1111 and my SSN 123-45-6789")
    span = pyflare_capture.span("support")
    preview_in = span.attributes[sc.INPUT_PREVIEW]
    preview_out = span.attributes[sc.OUTPUT_PREVIEW]
    assert "4111" not in preview_in and "123-45-6789" not in preview_in
    assert "[CREDIT_CARD]" in preview_in and "[SSN]" in preview_in
    assert "jane.doe@example.com" not in preview_out and "[EMAIL]" in preview_out
    assert "555 0100" not in preview_out


def test_masking_can_be_turned_off() -> None:
    @pyflare.trace(name="f")
    def f(x: str) -> str:
        return x

    with capture_spans(pii=False) as captured:
        f("jane.doe@example.com")
    assert "jane.doe@example.com" in captured.span("f").attributes[sc.OUTPUT_PREVIEW]


def test_without_init_tracing_is_a_cheap_no_op() -> None:
    # No provider: the decorated function still works and nothing is recorded.
    @pyflare.trace
    def f(x: int) -> int:
        return x + 1

    assert f(1) == 2


def test_user_exceptions_in_generators_thrown_by_consumer(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="g")
    def g():  # type: ignore[no-untyped-def]
        yield 1
        yield 2

    gen = g()
    next(gen)
    with pytest.raises(ZeroDivisionError):
        gen.throw(ZeroDivisionError())
    assert pyflare_capture.span("g").status.status_code is StatusCode.ERROR


def test_pii_cut_by_the_preview_end_is_still_masked() -> None:
    @pyflare.trace(name="f")
    def f(text: str) -> str:
        return text

    text = "x" * 20 + " jane.doe@example.com and more text after it"
    with capture_spans(max_chars=30) as captured:
        f(text)
    span = captured.span("f")
    output = span.attributes[sc.OUTPUT_PREVIEW]
    assert len(output) <= 30
    assert "jane" not in output
    assert output.startswith("x" * 20 + " [EMAIL]")
    assert "jane" not in span.attributes[sc.INPUT_PREVIEW]
    assert len(span.attributes[sc.INPUT_PREVIEW]) <= 30


def test_callable_objects_partials_and_bound_methods_get_readable_names(
    pyflare_capture: CapturedSpans,
) -> None:
    import functools

    def score(model: str, text: str) -> int:
        return len(text)

    class Scorer:
        def __call__(self, text: str) -> int:
            return len(text)

        def run(self, text: str) -> int:
            return len(text)

    assert pyflare.trace(Scorer())("abc") == 3
    assert pyflare.trace(functools.partial(score, "m1"))(text="abcd") == 4
    assert pyflare.trace(Scorer().run)("ab") == 2
    names = [s.name for s in pyflare_capture.spans]
    assert names == [
        f"{Scorer.__qualname__}",
        f"{score.__qualname__}",
        f"{Scorer.run.__qualname__}",
    ]
    functions = [s.attributes[sc.CODE_FUNCTION] for s in pyflare_capture.spans]
    assert functions == [f"{__name__}.{n}" for n in names]
    inputs = [s.attributes[sc.INPUT_PREVIEW] for s in pyflare_capture.spans]
    assert inputs == ['{"text":"abc"}', '{"text":"abcd"}', '{"text":"ab"}']
