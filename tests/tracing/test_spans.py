"""pyflare.span(), record_usage() and set_model()."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import pyflare
from pyflare import semconv as sc
from pyflare._runtime import reset_warnings
from pyflare.testing import CapturedSpans, TestClock, capture_spans


def test_span_block_yields_the_otel_span(pyflare_capture: CapturedSpans) -> None:
    with pyflare.span("retrieve", kind="retriever") as span:
        span.set_attribute("retrieval.top_k", 5)
        with pyflare.span("embed", kind="embedding", model_id="mini", inference_type="embedding"):
            pass
    retrieve = pyflare_capture.span("retrieve")
    embed = pyflare_capture.span("embed")
    assert retrieve.attributes["retrieval.top_k"] == 5
    assert retrieve.attributes[sc.SPAN_KIND] == "retriever"
    assert embed.parent.span_id == retrieve.context.span_id
    assert embed.kind is SpanKind.CLIENT
    row = next(r for r in pyflare_capture.rows() if r["operation_name"] == "embed")
    assert row["model_id"] == "mini"
    assert row["inference_type"] == "embedding"


def test_span_block_records_errors(pyflare_capture: CapturedSpans) -> None:
    with pytest.raises(KeyError):
        with pyflare.span("lookup"):
            raise KeyError("doc-7")
    span = pyflare_capture.span("lookup")
    assert span.status.status_code is StatusCode.ERROR
    assert span.events[0].attributes["exception.type"] == "KeyError"


def test_deterministic_clock() -> None:
    clock = TestClock(start_ns=1_000, step_ns=10)
    with capture_spans(clock=clock) as captured:
        with pyflare.span("a"):
            with pyflare.span("b"):
                pass
    a = captured.span("a")
    b = captured.span("b")
    assert (a.start_time, b.start_time, b.end_time, a.end_time) == (1_000, 1_010, 1_020, 1_030)
    assert captured.rows()[0]["duration_ns"] == 10
    assert [f"{s.context.trace_id:032x}" for s in captured.spans] == ["0" * 31 + "1"] * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("",), "needs a non-empty name"),
        ((None,), "needs a non-empty name"),
    ],
)
def test_bad_span_names(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(pyflare.InvalidArgumentError, match=message):
        with pyflare.span(*args):  # type: ignore[arg-type]
            pass


def test_bad_span_options() -> None:
    with pytest.raises(pyflare.InvalidArgumentError, match="unknown kind 'database'"):
        with pyflare.span("x", kind="database"):
            pass
    with pytest.raises(pyflare.InvalidArgumentError, match="unknown inference_type"):
        with pyflare.span("x", inference_type="vision"):
            pass


def test_record_usage(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="call_llm")
    def call_llm() -> str:
        pyflare.record_usage(
            input_tokens=120, output_tokens=30, model="gpt-4o-mini", provider="openai"
        )
        return "ok"

    call_llm()
    span = pyflare_capture.span("call_llm")
    assert span.attributes[sc.INPUT_TOKENS] == 120
    assert span.attributes[sc.OUTPUT_TOKENS] == 30
    assert span.attributes[sc.TOTAL_TOKENS] == 150
    assert span.attributes[sc.MODEL_ID] == "gpt-4o-mini"
    assert span.attributes[sc.PROVIDER] == "openai"
    row = pyflare_capture.rows()[0]
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (120, 30, 150)
    assert row["inference_type"] == "llm"
    assert row["cost_micros"] is None  # not priced here: never $0


def test_record_usage_keeps_an_explicit_inference_type(pyflare_capture: CapturedSpans) -> None:
    with pyflare.span("embed", inference_type="embedding"):
        pyflare.record_usage(input_tokens=8)
    row = pyflare_capture.rows()[0]
    assert row["inference_type"] == "embedding"
    assert row["total_tokens"] == 8
    assert row["output_tokens"] is None


def test_unknown_tokens_stay_null(pyflare_capture: CapturedSpans) -> None:
    with pyflare.span("llm", kind="llm"):
        pyflare.record_usage(output_tokens=5)
    row = pyflare_capture.rows()[0]
    assert row["input_tokens"] is None
    assert row["total_tokens"] is None
    assert row["output_tokens"] == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_tokens": -1}, "input_tokens=...) must be a non-negative integer"),
        ({"output_tokens": 1.5}, "output_tokens=...) must be a non-negative integer"),
        ({"total_tokens": "10"}, "total_tokens=...) must be a non-negative integer"),
        ({"input_tokens": True}, "input_tokens=...) must be a non-negative integer"),
        ({"model": ""}, "model=...) must be a non-empty string"),
        ({"provider": 3}, "provider=...) must be a non-empty string"),
    ],
)
def test_record_usage_bad_values(
    pyflare_capture: CapturedSpans, kwargs: dict[str, object], message: str
) -> None:
    with pyflare.span("s"):
        with pytest.raises(
            pyflare.InvalidArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")
        ):
            pyflare.record_usage(**kwargs)  # type: ignore[arg-type]
    assert sc.INPUT_TOKENS not in pyflare_capture.span("s").attributes


def test_record_usage_outside_a_span_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    reset_warnings()
    with caplog.at_level(logging.WARNING, logger="pyflare"):
        pyflare.record_usage(input_tokens=1)
        pyflare.record_usage(input_tokens=2)
    messages = [
        r.getMessage() for r in caplog.records if "outside a recording span" in r.getMessage()
    ]
    assert len(messages) == 1


def test_set_model(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(name="route")
    def route() -> None:
        pyflare.set_model("claude-haiku", model_version="2026-01", inference_type="llm")

    route()
    row = pyflare_capture.rows()[0]
    assert (row["model_id"], row["model_version"], row["inference_type"]) == (
        "claude-haiku",
        "2026-01",
        "llm",
    )
    with pytest.raises(pyflare.InvalidArgumentError, match="unknown inference_type"):
        pyflare.set_model("m", inference_type="chat")
