"""The canonical span row: ML fields from three vocabularies, and span conversion."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

import pyflare
from pyflare import semconv as sc
from pyflare.records import (
    PREVIEW_CHARS,
    SPAN_SCHEMA,
    concat,
    empty_batch,
    from_readable_spans,
    ml_fields,
    stringify,
    to_pylist,
)
from pyflare.testing import CapturedSpans

T0 = 1_767_225_600_000_000_001
ML_COLUMNS = (
    "model_id",
    "model_version",
    "inference_type",
    "input_preview",
    "output_preview",
    "input_hash",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_micros",
)


def make_span(
    attributes: Mapping[str, Any] | None = None,
    *,
    trace: int = 1,
    span: int = 2,
    parent: int | None = None,
    start: int | None = T0,
    end: int | None = T0 + 1_000,
    name: str = "op",
    kind: SpanKind = SpanKind.INTERNAL,
    status: Status | None = None,
    events: Sequence[Event] = (),
    resource: Resource | None = None,
    bounded: bool = True,
) -> ReadableSpan:
    """A finished span as the SDK hands it to exporters (BoundedAttributes inside)."""
    attrs: Any = dict(attributes or {})
    if bounded:
        attrs = BoundedAttributes(128, attrs, immutable=True)
    return ReadableSpan(
        name=name,
        context=SpanContext(trace, span, is_remote=False),
        parent=None if parent is None else SpanContext(trace, parent, is_remote=False),
        resource=resource if resource is not None else Resource({"service.name": "svc"}),
        attributes=attrs,
        events=list(events),
        kind=kind,
        status=status or Status(StatusCode.UNSET),
        start_time=start,
        end_time=end,
    )


def row(attributes: Mapping[str, Any] | None = None, **span: Any) -> dict[str, Any]:
    (only,) = to_pylist(from_readable_spans([make_span(attributes, **span)]))
    return only


# -- ml_fields: precedence ---------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "model"),
    [
        pytest.param(
            {
                sc.MODEL_ID: "pyflare-model",
                sc.GEN_AI_RESPONSE_MODEL: "response",
                sc.GEN_AI_REQUEST_MODEL: "request",
                sc.OI_MODEL_NAME: "oi",
                sc.EMBEDDING_MODEL_NAME: "embedding",
            },
            "pyflare-model",
            id="pyflare first",
        ),
        pytest.param(
            {sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06"},
            "gpt-4o-2024-08-06",
            id="response model over request model",
        ),
        pytest.param(
            {sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.OI_MODEL_NAME: "oi"},
            "gpt-4o",
            id="genai over openinference",
        ),
        pytest.param({sc.OI_MODEL_NAME: "claude-3"}, "claude-3", id="openinference"),
        pytest.param(
            {sc.EMBEDDING_MODEL_NAME: "text-embedding-3-small"},
            "text-embedding-3-small",
            id="openinference embedding model",
        ),
        pytest.param(
            {sc.MODEL_ID: "", sc.GEN_AI_REQUEST_MODEL: "gpt-4o"},
            "gpt-4o",
            id="an empty value falls through",
        ),
        pytest.param({sc.MODEL_ID: 7}, "7", id="non-string stringified"),
        pytest.param({"model": "not a known key"}, None, id="absent"),
    ],
)
def test_model_id(attributes: dict[str, Any], model: str | None) -> None:
    assert ml_fields(attributes)["model_id"] == model
    assert row(attributes)["model_id"] == model


@pytest.mark.parametrize(
    ("attributes", "tokens"),
    [
        pytest.param(
            {
                sc.INPUT_TOKENS: 1,
                sc.OUTPUT_TOKENS: 2,
                sc.GEN_AI_USAGE_INPUT_TOKENS: 10,
                sc.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
                sc.OI_TOKEN_PROMPT: 100,
                sc.OI_TOKEN_COMPLETION: 200,
            },
            (1, 2, 3),
            id="pyflare first",
        ),
        pytest.param(
            {
                sc.GEN_AI_USAGE_INPUT_TOKENS: 10,
                sc.GEN_AI_USAGE_PROMPT_TOKENS: 11,
                sc.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
                sc.GEN_AI_USAGE_COMPLETION_TOKENS: 21,
                sc.OI_TOKEN_PROMPT: 100,
            },
            (10, 20, 30),
            id="genai current over deprecated",
        ),
        pytest.param(
            {sc.GEN_AI_USAGE_PROMPT_TOKENS: 11, sc.GEN_AI_USAGE_COMPLETION_TOKENS: 21},
            (11, 21, 32),
            id="genai deprecated names",
        ),
        pytest.param(
            {sc.OI_TOKEN_PROMPT: 5, sc.OI_TOKEN_COMPLETION: 6, sc.OI_TOKEN_TOTAL: 12},
            (5, 6, 12),
            id="openinference with its own total",
        ),
        pytest.param(
            {sc.INPUT_TOKENS: 5, sc.OUTPUT_TOKENS: 6, sc.TOTAL_TOKENS: 99},
            (5, 6, 99),
            id="a recorded total wins over the sum",
        ),
        pytest.param({sc.INPUT_TOKENS: 5}, (5, None, None), id="llm input only: total unknown"),
        pytest.param({sc.OUTPUT_TOKENS: 5}, (None, 5, None), id="output only"),
        pytest.param({}, (None, None, None), id="unknown stays NULL, never 0"),
        pytest.param({sc.INPUT_TOKENS: 0, sc.OUTPUT_TOKENS: 0}, (0, 0, 0), id="zero is zero"),
    ],
)
def test_tokens(attributes: dict[str, Any], tokens: tuple[int | None, ...]) -> None:
    fields = ml_fields(attributes)
    assert (fields["input_tokens"], fields["output_tokens"], fields["total_tokens"]) == tokens
    stored = row(attributes)
    assert (stored["input_tokens"], stored["output_tokens"], stored["total_tokens"]) == tokens


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, 42),
        (0, 0),
        (3.0, 3),
        ("42", 42),  # some instrumentations record numbers as strings
        ("forty", None),
        ("", None),
        ("4.5", None),
        (-5, None),
        ("-5", None),
        (3.5, None),
        (math.nan, None),
        (math.inf, None),
        (True, None),
        (False, None),
        (2**63, None),  # beyond the int64 column
        (2**63 - 1, 2**63 - 1),
        ((1, 2), None),
    ],
)
def test_unusable_token_counts_are_null(value: Any, expected: int | None) -> None:
    attributes = {sc.GEN_AI_USAGE_INPUT_TOKENS: value, sc.COST_MICROS: value}
    assert ml_fields(attributes)["input_tokens"] == expected
    assert ml_fields(attributes)["cost_micros"] == expected
    stored = row(attributes)
    assert (stored["input_tokens"], stored["cost_micros"]) == (expected, expected)


def test_a_total_that_would_overflow_is_null() -> None:
    big = 2**62
    assert ml_fields({sc.INPUT_TOKENS: big, sc.OUTPUT_TOKENS: big})["total_tokens"] is None


@pytest.mark.parametrize(
    ("attributes", "inference_type", "total"),
    [
        ({sc.INFERENCE_TYPE: "classification"}, "classification", None),
        ({sc.INFERENCE_TYPE: "custom", sc.GEN_AI_OPERATION_NAME: "chat"}, "custom", None),
        ({sc.GEN_AI_OPERATION_NAME: "chat"}, "llm", None),
        ({sc.GEN_AI_OPERATION_NAME: "text_completion"}, "llm", None),
        ({sc.GEN_AI_OPERATION_NAME: "embeddings", sc.GEN_AI_USAGE_INPUT_TOKENS: 8}, "embedding", 8),
        ({sc.GEN_AI_OPERATION_NAME: "execute_tool"}, None, None),
        ({sc.GEN_AI_OPERATION_NAME: "execute_tool", sc.OI_SPAN_KIND: "LLM"}, "llm", None),
        ({sc.GEN_AI_OPERATION_NAME: "chat", sc.OI_SPAN_KIND: "EMBEDDING"}, "llm", None),
        ({sc.OI_SPAN_KIND: "LLM"}, "llm", None),
        ({sc.OI_SPAN_KIND: "llm"}, "llm", None),
        ({sc.OI_SPAN_KIND: "EMBEDDING", sc.OI_TOKEN_PROMPT: 12}, "embedding", 12),
        ({sc.OI_SPAN_KIND: "CHAIN"}, None, None),
        ({sc.OI_SPAN_KIND: "SOMETHING_NEW"}, None, None),
        ({sc.INFERENCE_TYPE: "", sc.OI_SPAN_KIND: "LLM"}, "llm", None),
        ({sc.INFERENCE_TYPE: "embedding", sc.INPUT_TOKENS: 3}, "embedding", 3),
    ],
)
def test_inference_type_and_embedding_totals(
    attributes: dict[str, Any], inference_type: str | None, total: int | None
) -> None:
    fields = ml_fields(attributes)
    assert (fields["inference_type"], fields["total_tokens"]) == (inference_type, total)
    stored = row(attributes)
    assert (stored["inference_type"], stored["total_tokens"]) == (inference_type, total)


@pytest.mark.parametrize(
    ("attributes", "previews"),
    [
        (
            {
                sc.INPUT_PREVIEW: "pyflare in",
                sc.GEN_AI_INPUT_MESSAGES: "genai in",
                sc.OI_INPUT_VALUE: "oi in",
                sc.OUTPUT_PREVIEW: "pyflare out",
                sc.GEN_AI_OUTPUT_MESSAGES: "genai out",
                sc.OI_OUTPUT_VALUE: "oi out",
            },
            ("pyflare in", "pyflare out"),
        ),
        (
            {sc.GEN_AI_INPUT_MESSAGES: "genai in", sc.OI_OUTPUT_VALUE: "oi out"},
            ("genai in", "oi out"),
        ),
        ({sc.OI_INPUT_VALUE: "x" * 5000}, ("x" * PREVIEW_CHARS, None)),
        ({sc.GEN_AI_INPUT_MESSAGES: ("a", "b")}, ('["a","b"]', None)),
        ({sc.INPUT_PREVIEW: "", sc.OI_INPUT_VALUE: "oi in"}, ("oi in", None)),
    ],
)
def test_previews(attributes: dict[str, Any], previews: tuple[str | None, str | None]) -> None:
    fields = ml_fields(attributes)
    assert (fields["input_preview"], fields["output_preview"]) == previews
    stored = row(attributes)
    assert (stored["input_preview"], stored["output_preview"]) == previews


# -- spans from other instrumentations ---------------------------------------------------


def test_a_span_from_the_genai_instrumentation() -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 52,
        "gen_ai.usage.output_tokens": 9,
        "gen_ai.input.messages": '[{"role":"user","content":"hi"}]',
        "server.address": "api.openai.com",
    }
    stored = row(attributes, kind=SpanKind.CLIENT, name="chat gpt-4o")
    assert stored["model_id"] == "gpt-4o-2024-08-06"
    assert stored["inference_type"] == "llm"
    assert (stored["input_tokens"], stored["output_tokens"], stored["total_tokens"]) == (52, 9, 61)
    assert stored["input_preview"] == '[{"role":"user","content":"hi"}]'
    assert (stored["model_version"], stored["input_hash"], stored["cost_micros"]) == (
        None,
        None,
        None,
    )
    assert stored["span_kind"] == "client"
    # Only PyFlare's own content attributes are promoted; other vocabularies stay as sent.
    assert stored["attributes"] == {key: stringify(value) for key, value in attributes.items()}


def test_a_span_from_an_openinference_instrumentation() -> None:
    attributes = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "claude-3-5-sonnet",
        "llm.provider": "anthropic",
        "llm.token_count.prompt": 30,
        "llm.token_count.completion": 12,
        "llm.token_count.total": 42,
        "input.value": "Summarise this",
        "output.value": "Summary.",
    }
    stored = row(attributes)
    assert stored["model_id"] == "claude-3-5-sonnet"
    assert stored["inference_type"] == "llm"
    assert (stored["input_tokens"], stored["output_tokens"], stored["total_tokens"]) == (
        30,
        12,
        42,
    )
    assert (stored["input_preview"], stored["output_preview"]) == ("Summarise this", "Summary.")
    assert stored["attributes"]["llm.token_count.total"] == "42"


def test_a_span_with_no_ml_attributes() -> None:
    stored = row({"http.method": "GET", "http.status_code": 200})
    assert all(stored[column] is None for column in ML_COLUMNS)
    assert stored["attributes"] == {"http.method": "GET", "http.status_code": "200"}


# -- attribute values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (-7, "-7"),
        (0.5, "0.5"),
        (1e20, "1e+20"),
        (("a", "b"), '["a","b"]'),
        ((1, 2), "[1,2]"),
        ((True, False), "[true,false]"),
        ((1.5,), "[1.5]"),
        ((), "[]"),
        (b"\x00\xff", "00ff"),
        ({"nested": {"k": 1}}, '{"nested":{"k":1}}'),
        ("é 🔥", "é 🔥"),
    ],
)
def test_attribute_values_are_stringified(value: Any, text: str) -> None:
    assert stringify(value) == text
    assert row({"k": value})["attributes"] == {"k": text}


def test_attributes_set_to_none_are_left_out() -> None:
    stored = row({"a": "1", "b": None, sc.MODEL_ID: None, sc.OI_MODEL_NAME: "oi"})
    assert stored["attributes"] == {"a": "1", sc.OI_MODEL_NAME: "oi"}
    assert stored["model_id"] == "oi"


def test_plain_dict_attributes_work_too() -> None:
    stored = row({sc.MODEL_ID: "m", "x": 1}, bounded=False)
    assert (stored["model_id"], stored["attributes"]) == ("m", {sc.MODEL_ID: "m", "x": "1"})


def test_previews_and_hash_become_columns_not_map_entries() -> None:
    attributes = {
        sc.INPUT_PREVIEW: "question",
        sc.OUTPUT_PREVIEW: "answer",
        sc.INPUT_HASH: "abc123",
        "pyflare.custom.flag": True,
        sc.MODEL_ID: "gpt-4o",
        sc.INPUT_TOKENS: 3,
        "user.id": "alice",
    }
    stored = row(attributes)
    assert (stored["input_preview"], stored["output_preview"], stored["input_hash"]) == (
        "question",
        "answer",
        "abc123",
    )
    assert stored["attributes"] == {
        "pyflare.custom.flag": "true",
        sc.MODEL_ID: "gpt-4o",
        sc.INPUT_TOKENS: "3",
        "user.id": "alice",
    }


def test_the_decorator_s_previews_are_promoted(pyflare_capture: CapturedSpans) -> None:
    @pyflare.trace(kind="llm", model_id="gpt-4o")
    def answer(question: str) -> str:
        return "Paris"

    answer("capital of France?")
    (stored,) = pyflare_capture.rows()
    assert stored["model_id"] == "gpt-4o"
    assert stored["inference_type"] == "llm"
    assert stored["input_preview"] is not None and "capital of France?" in stored["input_preview"]
    assert stored["output_preview"] == "Paris"
    assert stored["input_hash"]
    for key in (sc.INPUT_PREVIEW, sc.OUTPUT_PREVIEW, sc.INPUT_HASH):
        assert key not in stored["attributes"]
    assert stored["attributes"][sc.MODEL_ID] == "gpt-4o"


def test_invalid_unicode_is_replaced_rather_than_failing_the_batch() -> None:
    stored = row({"bad": "a\ud800b", sc.OI_INPUT_VALUE: "x\udfffy"}, name="op\ud800")
    assert stored["attributes"]["bad"] == "a?b"
    assert stored["input_preview"] == "x?y"
    assert stored["operation_name"] == "op?"


# -- the rest of the row ----------------------------------------------------------------


def test_ids_times_kind_and_status() -> None:
    stored = row(
        trace=0xABC,
        span=0xDEF,
        parent=0x1,
        start=T0,
        end=T0 + 12_345,
        kind=SpanKind.PRODUCER,
        status=Status(StatusCode.ERROR, "it broke"),
    )
    assert stored["trace_id"] == "00000000000000000000000000000abc"
    assert stored["span_id"] == "0000000000000def"
    assert stored["parent_span_id"] == "0000000000000001"
    assert stored["duration_ns"] == 12_345
    assert (stored["span_kind"], stored["status_code"]) == ("producer", "error")
    assert stored["status_message"] == "it broke"
    table = from_readable_spans([make_span(start=T0, end=T0 + 5)])
    assert table.column("start_time").cast(pa.int64()).to_pylist() == [T0]
    assert table.column("end_time").cast(pa.int64()).to_pylist() == [T0 + 5]


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (SpanKind.INTERNAL, "internal"),
        (SpanKind.SERVER, "server"),
        (SpanKind.CLIENT, "client"),
        (SpanKind.PRODUCER, "producer"),
        (SpanKind.CONSUMER, "consumer"),
    ],
)
def test_span_kinds(kind: SpanKind, name: str) -> None:
    assert row(kind=kind)["span_kind"] == name


@pytest.mark.parametrize(
    ("status", "name"),
    [(StatusCode.UNSET, "unset"), (StatusCode.OK, "ok"), (StatusCode.ERROR, "error")],
)
def test_statuses(status: StatusCode, name: str) -> None:
    stored = row(status=Status(status))
    assert (stored["status_code"], stored["status_message"]) == (name, None)


def test_a_root_has_no_parent_and_an_invalid_parent_counts_as_none() -> None:
    assert row(parent=None)["parent_span_id"] is None
    assert row(parent=0)["parent_span_id"] is None


def test_invalid_ids_are_kept_as_sent_rather_than_dropping_the_batch() -> None:
    zero = row(trace=0, span=0)
    assert (zero["trace_id"], zero["span_id"]) == ("0" * 32, "0" * 16)
    table = from_readable_spans([make_span(span=2**64 + 1), make_span(span=3)])
    assert table.column("span_id").to_pylist() == [f"{2**64 + 1:016x}", f"{3:016x}"]


@pytest.mark.parametrize(
    ("start", "end", "duration"),
    [(T0, None, 0), (T0, T0 - 10, 0), (None, None, 0), (T0, T0, 0)],
)
def test_missing_or_backwards_end_times(start: int | None, end: int | None, duration: int) -> None:
    assert row(start=start, end=end)["duration_ns"] == duration


def test_events_keep_their_times_and_attributes() -> None:
    events = [
        Event("exception", {"exception.type": "ValueError", "n": 3, "gone": None}, T0 + 7),
        Event("empty", None, T0 + 9),
    ]
    table = from_readable_spans([make_span(events=events)])
    (stored,) = to_pylist(table)
    assert [(e["name"], e["attributes"]) for e in stored["events"]] == [
        ("exception", {"exception.type": "ValueError", "n": "3"}),
        ("empty", {}),
    ]
    times = table.column("events").combine_chunks().flatten().field("time")
    assert times.cast(pa.int64()).to_pylist() == [T0 + 7, T0 + 9]


def test_resources_per_span() -> None:
    api = Resource({"service.name": "api", "host.name": "h1", "pid": 42})
    worker = Resource({"service.name": "worker"})
    nameless = Resource({"host.name": "h2"})
    spans = [
        make_span(resource=api, span=1),
        make_span(resource=worker, span=2),
        make_span(resource=api, span=3),
        make_span(resource=nameless, span=4),
    ]
    rows = to_pylist(from_readable_spans(spans))
    assert [r["service_name"] for r in rows] == ["api", "worker", "api", "unknown_service"]
    assert rows[0]["resource"] == {"service.name": "api", "host.name": "h1", "pid": "42"}
    assert rows[2]["resource"] == rows[0]["resource"]
    assert rows[1]["resource"] == {"service.name": "worker"}


def test_a_span_without_context_is_skipped() -> None:
    span = make_span()
    no_context = ReadableSpan(name="broken", context=None)
    assert from_readable_spans([no_context, span]).num_rows == 1


def test_ingested_at() -> None:
    table = from_readable_spans([make_span()], ingested_at_ns=T0 + 999_999)
    assert table.column("_ingested_at").cast(pa.int64()).to_pylist() == [(T0 + 999_999) // 1000]


def test_mask_attributes_changes_the_copy_before_anything_is_read() -> None:
    def mask(attributes: dict[str, Any]) -> None:
        if sc.OI_INPUT_VALUE in attributes:
            attributes[sc.OI_INPUT_VALUE] = "[masked]"

    span = make_span({sc.OI_INPUT_VALUE: "my email is a@b.c"})
    (row,) = to_pylist(from_readable_spans([span], mask_attributes=mask))
    assert row["input_preview"] == "[masked]"  # the ML column reads the masked value
    assert row["attributes"][sc.OI_INPUT_VALUE] == "[masked]"
    assert span.attributes[sc.OI_INPUT_VALUE] == "my email is a@b.c"  # span untouched


def test_empty_input_and_helpers() -> None:
    assert from_readable_spans([]).schema == SPAN_SCHEMA
    assert from_readable_spans([]).num_rows == 0
    assert empty_batch().schema == SPAN_SCHEMA
    first = from_readable_spans([make_span(span=1)])
    second = from_readable_spans([make_span(span=2)])
    assert concat([first, empty_batch(), second]).num_rows == 2
    assert concat([]).schema == SPAN_SCHEMA


def test_a_batch_matches_the_canonical_schema_exactly() -> None:
    table = from_readable_spans([make_span({sc.MODEL_ID: "m"}), make_span(span=9)])
    assert table.schema == SPAN_SCHEMA
    table.validate(full=True)


# -- the fast path agrees with ml_fields ----------------------------------------------------

_ML_KEYS = sorted(
    {
        sc.MODEL_ID,
        sc.MODEL_VERSION,
        sc.INFERENCE_TYPE,
        sc.INPUT_PREVIEW,
        sc.OUTPUT_PREVIEW,
        sc.INPUT_HASH,
        sc.INPUT_TOKENS,
        sc.OUTPUT_TOKENS,
        sc.TOTAL_TOKENS,
        sc.COST_MICROS,
        sc.GEN_AI_OPERATION_NAME,
        sc.GEN_AI_REQUEST_MODEL,
        sc.GEN_AI_RESPONSE_MODEL,
        sc.GEN_AI_USAGE_INPUT_TOKENS,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS,
        sc.GEN_AI_USAGE_PROMPT_TOKENS,
        sc.GEN_AI_USAGE_COMPLETION_TOKENS,
        sc.GEN_AI_INPUT_MESSAGES,
        sc.GEN_AI_OUTPUT_MESSAGES,
        sc.OI_SPAN_KIND,
        sc.OI_MODEL_NAME,
        sc.OI_TOKEN_PROMPT,
        sc.OI_TOKEN_COMPLETION,
        sc.OI_TOKEN_TOTAL,
        sc.OI_INPUT_VALUE,
        sc.OI_OUTPUT_VALUE,
        sc.EMBEDDING_MODEL_NAME,
        "user.id",
    }
)
_VALUES = st.one_of(
    st.sampled_from(["", "chat", "embeddings", "LLM", "EMBEDDING", "gpt-4o", "12", "-1", "x"]),
    st.integers(min_value=-5, max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.tuples(st.integers(0, 3), st.text(max_size=3)),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_ML_KEYS), _VALUES, max_size=8))
def test_from_readable_spans_reads_ml_fields_like_ml_fields(attributes: dict[str, Any]) -> None:
    kept = {key: value for key, value in attributes.items() if value is not None}
    expected = ml_fields(kept)
    for bounded in (True, False):
        stored = row(attributes, bounded=bounded)
        assert {column: stored[column] for column in ML_COLUMNS} == expected
