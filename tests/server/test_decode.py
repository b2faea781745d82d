"""OTLP decoding: every field mapping, both encodings, partial success, limits and bad input."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from _decode_requests import (
    INGESTED_NS,
    MS,
    T0,
    ResourceSpec,
    ScopeSpec,
    SpanSpec,
    one_span,
    traces_json,
    traces_pb,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from pyflare.exporters.masking import SpanMasker
from pyflare.mlfields import ml_fields
from pyflare.records import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA, to_pylist
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare.tracing.masking import PIIConfig, PIIMasker
from pyflare_server.receiver.decode import (
    TRUNCATED,
    Decoded,
    DecodeError,
    DecodeLimits,
    Encoding,
    Signal,
    decode,
)

PB, JSON = Encoding.PROTOBUF, Encoding.JSON
DEFAULT_LIMITS = DecodeLimits()


def decode_both(
    resources: Sequence[ResourceSpec], **options: Any
) -> tuple[Decoded, list[dict[str, Any]]]:
    """Decode the request in both encodings; they must agree. Returns one and its rows."""
    options.setdefault("ingested_at_ns", INGESTED_NS)
    from_pb = decode(Signal.TRACES, traces_pb(resources), PB, **options)
    from_json = decode(Signal.TRACES, traces_json(resources), JSON, **options)
    assert from_pb.batch.schema == SPAN_SCHEMA
    assert from_json.batch.equals(from_pb.batch), "JSON and protobuf rows differ"
    assert from_json.rejected == from_pb.rejected
    return from_pb, to_pylist(from_pb.batch)


def row_of(
    attributes: dict[str, Any] | list[tuple[str, Any]],
    *,
    limits: DecodeLimits = DEFAULT_LIMITS,
    mask_attributes: Any = None,
    **fields: Any,
) -> dict[str, Any]:
    """The row of one span with ``attributes`` (and other SpanSpec ``fields``)."""
    decoded, rows = decode_both(
        one_span(attributes=attributes, **fields), limits=limits, mask_attributes=mask_attributes
    )
    assert decoded.rejected == 0, decoded.error_message
    (row,) = rows
    return row


# -- the row ---------------------------------------------------------------------------


def test_a_span_becomes_the_canonical_row() -> None:
    resources = [
        ResourceSpec(
            attributes={"service.name": "rag-api ☃", "deployment.environment.name": "prod"},
            scopes=[
                ScopeSpec(
                    spans=[
                        SpanSpec(
                            trace_id=bytes.fromhex("abcdef0123456789abcdef0123456789"),
                            span_id=bytes.fromhex("0123456789abcdef"),
                            name="répondre 🔥",
                            kind=3,
                            start=T0 + 7,
                            end=T0 + 7 + 123_456_789,
                            attributes={"emoji 🔑": "value 🎉", "flag": True, "ratio": 0.25},
                            events=[(T0 + 999, "retry", {"attempt": 2, "reason": "429 ⏳"})],
                            status_code=2,
                            status_message="boom: ☠ failed",
                        ),
                        SpanSpec(
                            span_id=b"\x11" * 8,
                            parent_span_id=bytes.fromhex("0123456789abcdef"),
                            trace_id=bytes.fromhex("abcdef0123456789abcdef0123456789"),
                            name="",
                            kind=5,
                            start=T0 + 9,
                            end=T0 + 9,
                            status_code=1,
                        ),
                    ]
                )
            ],
        )
    ]
    decoded, rows = decode_both(resources)
    assert decoded.signal is Signal.TRACES
    assert (decoded.rejected, decoded.error_message) == (0, "")
    root, child = rows
    assert root["trace_id"] == "abcdef0123456789abcdef0123456789"
    assert root["span_id"] == "0123456789abcdef"
    assert root["parent_span_id"] is None
    assert pa.scalar(root["start_time"], pa.timestamp("ns")).value == T0 + 7
    assert root["duration_ns"] == 123_456_789
    assert (root["service_name"], root["operation_name"]) == ("rag-api ☃", "répondre 🔥")
    assert (root["span_kind"], root["status_code"]) == ("client", "error")
    assert root["status_message"] == "boom: ☠ failed"
    assert root["attributes"] == {"emoji 🔑": "value 🎉", "flag": "true", "ratio": "0.25"}
    assert root["resource"] == {"service.name": "rag-api ☃", "deployment.environment.name": "prod"}
    assert [(e["name"], e["attributes"]) for e in root["events"]] == [
        ("retry", {"attempt": "2", "reason": "429 ⏳"})
    ]
    assert pa.scalar(root["events"][0]["time"], pa.timestamp("ns")).value == T0 + 999
    assert pa.scalar(root["_ingested_at"], pa.timestamp("us")).value == INGESTED_NS // 1000
    for column in ("model_id", "inference_type", "input_preview", "input_tokens", "cost_micros"):
        assert root[column] is None
    assert child["parent_span_id"] == "0123456789abcdef"
    assert (child["operation_name"], child["span_kind"], child["status_code"]) == (
        "",
        "consumer",
        "ok",
    )
    assert child["status_message"] is None
    assert (child["duration_ns"], child["attributes"], child["events"]) == (0, {}, [])


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (0, "internal"),
        (1, "internal"),
        (2, "server"),
        (3, "client"),
        (4, "producer"),
        (5, "consumer"),
        (9, "internal"),
    ],
)
def test_span_kinds(kind: int, name: str) -> None:
    assert row_of({}, kind=kind)["span_kind"] == name


@pytest.mark.parametrize(("code", "name"), [(0, "unset"), (1, "ok"), (2, "error"), (7, "unset")])
def test_status_codes(code: int, name: str) -> None:
    assert row_of({}, status_code=code)["status_code"] == name


def test_a_resource_without_a_service_name_is_unknown_service() -> None:
    resources = [
        ResourceSpec(attributes={"host.name": "h"}, scopes=[ScopeSpec(spans=[SpanSpec()])])
    ]
    _, (row,) = decode_both(resources)
    assert row["service_name"] == "unknown_service"
    assert row["resource"] == {"host.name": "h"}


def test_an_all_zero_parent_is_a_root() -> None:
    assert row_of({}, parent_span_id=b"\0" * 8)["parent_span_id"] is None


def test_every_value_type_renders_like_the_sdk() -> None:
    row = row_of(
        {
            "s": "text",
            "empty": "",
            "b": False,
            "i": -42,
            "big": 2**63 - 1,
            "d": 1.5,
            "whole": 3.0,
            "nan": float("nan"),
            "inf": float("inf"),
            "bytes": b"\x00\xff",
            "strings": ["a", "b"],
            "mixed": [1, "x", True, None, 2.5, b"\x01"],
            "map": {"k": "v", "n": {"deep": [1]}},
            "unset": None,
        }
    )
    assert row["attributes"] == {
        "s": "text",
        "empty": "",
        "b": "false",
        "i": "-42",
        "big": "9223372036854775807",
        "d": "1.5",
        "whole": "3.0",
        "nan": "nan",
        "inf": "inf",
        "bytes": "00ff",
        "strings": '["a","b"]',
        "mixed": '[1,"x",true,null,2.5,"01"]',
        "map": '{"k":"v","n":{"deep":[1]}}',
    }


# -- ML fields: pyflare.*, OTel GenAI, OpenInference ---------------------------------------------


def test_pyflare_attributes_fill_the_ml_columns() -> None:
    row = row_of(
        {
            "pyflare.model.id": "gpt-4o-mini",
            "pyflare.model.version": "2024-07-18",
            "pyflare.inference.type": "llm",
            "pyflare.input.preview": "question " * 200,
            "pyflare.output.preview": "answer",
            "pyflare.input.hash": "5ce08fa6",
            "pyflare.usage.input_tokens": 1200,
            "pyflare.usage.output_tokens": 34,
            "pyflare.cost.micros": 987_654,
            "gen_ai.request.model": "ignored: pyflare.* comes first",
        }
    )
    assert row["model_id"] == "gpt-4o-mini"
    assert row["model_version"] == "2024-07-18"
    assert row["inference_type"] == "llm"
    assert row["input_preview"] == ("question " * 200)[:1000]
    assert (row["output_preview"], row["input_hash"]) == ("answer", "5ce08fa6")
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (1200, 34, 1234)
    assert row["cost_micros"] == 987_654
    # previews and the hash are columns, not repeated in the map
    assert set(row["attributes"]) == {
        "pyflare.model.id",
        "pyflare.model.version",
        "pyflare.inference.type",
        "pyflare.usage.input_tokens",
        "pyflare.usage.output_tokens",
        "pyflare.cost.micros",
        "gen_ai.request.model",
    }


def test_genai_attributes_fill_the_ml_columns() -> None:
    row = row_of(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.cache_read_input_tokens": 64,
            "gen_ai.usage.reasoning_tokens": 7,
            "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]',
            "gen_ai.output.messages": '[{"role":"assistant","parts":[]}]',
        },
        kind=3,
    )
    assert row["model_id"] == "gpt-4o-2024-08-06"  # the model that answered
    assert row["inference_type"] == "llm"
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (100, 20, 120)
    assert row["input_preview"].startswith('[{"role":"user"')
    assert row["output_preview"] == '[{"role":"assistant","parts":[]}]'
    # provider, cache and reasoning tokens stay attributes
    assert row["attributes"]["gen_ai.provider.name"] == "openai"
    assert row["attributes"]["gen_ai.usage.cache_read_input_tokens"] == "64"
    assert row["attributes"]["gen_ai.usage.reasoning_tokens"] == "7"


def test_deprecated_genai_names_are_read() -> None:
    row = row_of(
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-3.5-turbo",
            "gen_ai.usage.prompt_tokens": 11,
            "gen_ai.usage.completion_tokens": 5,
            "gen_ai.operation.name": "text_completion",
        }
    )
    assert (row["model_id"], row["inference_type"]) == ("gpt-3.5-turbo", "llm")
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (11, 5, 16)
    assert row["attributes"]["gen_ai.system"] == "openai"


def test_genai_embeddings() -> None:
    row = row_of(
        {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.usage.input_tokens": 8,
        }
    )
    assert (row["inference_type"], row["input_tokens"], row["total_tokens"]) == ("embedding", 8, 8)


@pytest.mark.parametrize(
    ("oi_kind", "otlp_kind", "span_kind", "inference_type"),
    [
        ("LLM", 1, "client", "llm"),
        ("LLM", 0, "client", "llm"),
        ("llm", 1, "client", "llm"),
        ("EMBEDDING", 1, "client", "embedding"),
        ("CHAIN", 1, "internal", None),
        ("RETRIEVER", 1, "internal", None),
        ("SOMETHING_NEW", 1, "internal", None),
        ("LLM", 2, "server", "llm"),  # a kind the sender chose is kept
    ],
)
def test_openinference_span_kind_gives_kind_and_inference_type(
    oi_kind: str, otlp_kind: int, span_kind: str, inference_type: str | None
) -> None:
    row = row_of({"openinference.span.kind": oi_kind}, kind=otlp_kind)
    assert (row["span_kind"], row["inference_type"]) == (span_kind, inference_type)


def test_openinference_attributes_fill_the_ml_columns() -> None:
    row = row_of(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "claude-3-5-sonnet",
            "llm.provider": "anthropic",
            "llm.token_count.prompt": 300,
            "llm.token_count.completion": 40,
            "llm.token_count.total": 345,  # as sent, even if it disagrees
            "input.value": "What is PyFlare?",
            "output.value": "An observability platform.",
        }
    )
    assert (row["model_id"], row["inference_type"]) == ("claude-3-5-sonnet", "llm")
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (300, 40, 345)
    assert (row["input_preview"], row["output_preview"]) == (
        "What is PyFlare?",
        "An observability platform.",
    )
    assert row["attributes"]["llm.provider"] == "anthropic"


@pytest.mark.parametrize(
    "attributes",
    [
        {"gen_ai.usage.input_tokens": "12", "gen_ai.request.model": "m"},
        {"gen_ai.usage.input_tokens": 12.0, "llm.model_name": 5},
        {"gen_ai.usage.input_tokens": -1, "pyflare.model.id": ""},
        {"gen_ai.usage.input_tokens": True, "pyflare.cost.micros": "x"},
        {"pyflare.model.id": "", "gen_ai.response.model": "", "gen_ai.request.model": "r"},
        {"input.value": ["a", 1], "gen_ai.input.messages": ""},
    ],
)
def test_ml_columns_equal_the_sdks_reading_of_the_same_values(attributes: dict[str, Any]) -> None:
    row = row_of(attributes)
    expected = ml_fields(attributes)
    assert {column: row[column] for column in expected} == expected


# -- partial success ---------------------------------------------------------------------


GOOD = SpanSpec(span_id=b"\x05" * 8)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (SpanSpec(trace_id=b"\x01" * 15), "traceId"),
        (SpanSpec(trace_id=b"\x00" * 16), "traceId"),
        (SpanSpec(span_id=b"\x02" * 9), "spanId"),
        (SpanSpec(span_id=b""), "spanId"),
        (SpanSpec(parent_span_id=b"\x03" * 4), "parentSpanId"),
        (SpanSpec(start=0, end=0), "startTimeUnixNano is missing"),
        (SpanSpec(start=T0, end=T0 - 1), "before startTimeUnixNano"),
        (SpanSpec(start=T0, end=2**63), "int64"),
    ],
)
def test_bad_spans_are_rejected_one_by_one(bad: SpanSpec, reason: str) -> None:
    resources = [ResourceSpec(scopes=[ScopeSpec(spans=[GOOD, bad, GOOD])])]
    for encoding, body in ((PB, traces_pb(resources)), (JSON, traces_json(resources))):
        decoded = decode(Signal.TRACES, body, encoding)
        assert decoded.batch.num_rows == 2
        assert decoded.rejected == 1
        assert decoded.error_message.startswith("1 spans rejected: ")
        assert "resourceSpans[0].scopeSpans[0].spans[1]" in decoded.error_message
        assert reason in decoded.error_message


@pytest.mark.parametrize(
    ("span", "reason"),
    [
        ({"traceId": "zz" * 16}, "traceId must be 32 hex digits"),
        ({"traceId": "ab" * 15}, "traceId must be 32 hex digits"),
        ({"traceId": "ab cd" * 6 + "ab"}, "traceId must be 32 hex digits"),
        ({"traceId": 12}, "traceId must be 32 hex digits"),
        ({"spanId": "ab" * 8 + "0"}, "spanId"),
        ({"spanId": None}, "spanId is missing"),
        ({"parentSpanId": "xyz"}, "parentSpanId"),
        ({"startTimeUnixNano": "12abc"}, "startTimeUnixNano must be an unsigned integer"),
        ({"startTimeUnixNano": -5}, "startTimeUnixNano must be an unsigned integer"),
        ({"endTimeUnixNano": 1.5}, "endTimeUnixNano"),
        ({"kind": "SPAN_KIND_NOPE"}, "kind must be an integer"),
        ({"name": 5}, "name must be a string"),
        ({"status": []}, "status must be an object"),
        ({"attributes": {"k": "v"}}, "attributes must be a list"),
        (
            {"attributes": [{"key": "k", "value": {"intValue": "1e3"}}]},
            "intValue must be an integer",
        ),
        ({"attributes": [{"key": "k", "value": {"intValue": str(2**63)}}]}, "int64"),
        (
            {"attributes": [{"key": "k", "value": {"stringValue": 5}}]},
            "stringValue must be a string",
        ),
        ({"attributes": [{"key": "k", "value": {"boolValue": "yes"}}]}, "boolValue"),
        ({"attributes": [{"key": "k", "value": {"doubleValue": "x"}}]}, "doubleValue"),
        ({"attributes": [{"key": "k", "value": {"bytesValue": "!!"}}]}, "base64"),
        ({"attributes": [{"key": "k", "value": {"arrayValue": []}}]}, "arrayValue"),
        ({"attributes": [{"key": 5, "value": {"stringValue": "v"}}]}, "key must be a string"),
        ({"attributes": ["k"]}, "attribute must be an object"),
        ({"attributes": [{"key": "k", "value": "v"}]}, "AnyValue must be an object"),
        ({"events": {"name": "e"}}, "events must be a list"),
        ({"events": [5]}, "event must be an object"),
    ],
)
def test_json_spans_with_wrong_fields_are_rejected_one_by_one(
    span: dict[str, Any], reason: str
) -> None:
    good = orjson.loads(traces_json(one_span()))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    bad = {**good, **span}
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [good, bad]}]}]}
    decoded = decode(Signal.TRACES, orjson.dumps(body), JSON)
    assert (decoded.batch.num_rows, decoded.rejected) == (1, 1), decoded.error_message
    assert reason in decoded.error_message


def test_many_rejections_quote_the_first_few() -> None:
    spans = [SpanSpec(span_id=bytes([n + 1]) * 8, trace_id=b"\x01" * 3) for n in range(10)]
    decoded = decode(Signal.TRACES, traces_pb([ResourceSpec(scopes=[ScopeSpec(spans=spans)])]), PB)
    assert (decoded.batch.num_rows, decoded.rejected) == (0, 10)
    assert decoded.error_message.startswith("10 spans rejected: ")
    assert decoded.error_message.endswith("; and 7 more")


def test_the_same_span_twice_is_kept_twice_for_the_store_to_deduplicate(tmp_path: Path) -> None:
    resources = [ResourceSpec(scopes=[ScopeSpec(spans=[GOOD, GOOD])])]
    decoded, _ = decode_both(resources)
    assert decoded.batch.num_rows == 2
    with DuckDBSpanStore(tmp_path / "s.duckdb") as store:
        assert store.write(decoded.batch) == 1


# -- the encodings agree ---------------------------------------------------------------------


def test_json_and_protobuf_give_the_same_rows_for_a_rich_request() -> None:
    rng = random.Random(7)
    spans = []
    for n in range(30):
        attributes: dict[str, Any] = {
            "openinference.span.kind": rng.choice(["LLM", "CHAIN", "EMBEDDING", "TOOL"]),
            "llm.model_name": rng.choice(["gpt-4o", "claude", ""]),
            "llm.token_count.prompt": rng.randrange(0, 5000),
            "input.value": "q" * rng.randrange(0, 2000),
            "score": rng.random(),
            "ok": rng.random() < 0.5,
            "tags": ["x", "y"][: rng.randrange(3)],
            "blob": os.urandom(rng.randrange(4)),
            "nested": {"a": [1, {"b": None}]},
        }
        spans.append(
            SpanSpec(
                trace_id=os.urandom(16),
                span_id=os.urandom(8),
                parent_span_id=os.urandom(8) if n % 3 else b"",
                kind=n % 6,
                start=T0 + n * MS,
                end=T0 + n * MS + rng.randrange(10**9),
                attributes=attributes,
                events=[(T0, f"e{n}", {"i": n})] if n % 4 == 0 else (),
                status_code=n % 3,
                status_message="bad" if n % 3 == 2 else "",
            )
        )
    resources = [
        ResourceSpec(
            {"service.name": "a"}, [ScopeSpec("s1", spans[:10]), ScopeSpec("s2", spans[10:20])]
        ),
        ResourceSpec({"service.name": "b", "k": 1}, [ScopeSpec("pyflare", spans[20:])]),
    ]
    decoded, rows = decode_both(resources)
    assert decoded.batch.num_rows == 30
    assert {row["service_name"] for row in rows} == {"a", "b"}


def test_json_takes_proto_field_names_enum_names_and_numbers() -> None:
    body = {
        "resource_spans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"string_value": "s"}}]
                },
                "scope_spans": [
                    {
                        "scope": {"name": "x", "unknownField": 1},
                        "spans": [
                            {
                                "trace_id": "01" * 16,
                                "span_id": "02" * 8,
                                "parent_span_id": "",
                                "name": "n",
                                "kind": "SPAN_KIND_SERVER",
                                "start_time_unix_nano": T0,
                                "end_time_unix_nano": str(T0 + 1),
                                "attributes": [
                                    {"key": "i", "value": {"int_value": 5}},
                                    {"key": "d", "value": {"double_value": "Infinity"}},
                                    {"key": "e", "value": {}},
                                    {"key": "n"},
                                ],
                                "status": {"code": "STATUS_CODE_ERROR"},
                                "somethingNew": {"ignored": True},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    decoded = decode(Signal.TRACES, orjson.dumps(body), JSON)
    assert decoded.rejected == 0, decoded.error_message
    (row,) = to_pylist(decoded.batch)
    assert (row["span_kind"], row["status_code"], row["service_name"]) == ("server", "error", "s")
    assert row["attributes"] == {"i": "5", "d": "inf"}  # empty values are left out


# -- masking ---------------------------------------------------------------------------------

EMAIL = "write to jane.doe@example.com"


def masker() -> Any:
    return SpanMasker(PIIMasker(PIIConfig())).mask_in_place


def test_spans_from_other_sdks_are_masked_before_ml_fields_are_read() -> None:
    attributes = {"input.value": EMAIL, "openinference.span.kind": "LLM", "plain": EMAIL}
    row = row_of(attributes, mask_attributes=masker())
    assert row["input_preview"] == "write to [EMAIL]"
    assert row["attributes"]["input.value"] == "write to [EMAIL]"
    assert row["attributes"]["plain"] == EMAIL  # not a content attribute


def test_pyflare_sdk_spans_are_not_masked_again() -> None:
    resources = one_span(
        scope="pyflare",
        attributes={"input.value": EMAIL},
        events=[(T0, "e", {"gen_ai.prompt": EMAIL})],
    )
    _, (row,) = decode_both(resources, mask_attributes=masker())
    assert row["attributes"]["input.value"] == EMAIL
    assert row["events"][0]["attributes"]["gen_ai.prompt"] == EMAIL


def test_event_attributes_are_masked() -> None:
    resources = one_span(events=[(T0, "gen_ai.content.prompt", {"gen_ai.prompt": EMAIL})])
    _, (row,) = decode_both(resources, mask_attributes=masker())
    assert row["events"][0]["attributes"]["gen_ai.prompt"] == "write to [EMAIL]"


def test_masked_arrays_render_as_json_and_masking_failures_hide_the_value() -> None:
    def mask(values: dict[str, Any]) -> None:
        values["llm.input_messages.0.message.content"] = ("a", "[EMAIL]")
        values["input.value"] = "x" * 50

    row = row_of(
        {"llm.input_messages.0.message.content": ["a", EMAIL], "input.value": EMAIL, "k": "v"},
        mask_attributes=mask,
    )
    assert row["attributes"]["llm.input_messages.0.message.content"] == '["a","[EMAIL]"]'
    assert row["input_preview"] == "x" * 50
    assert row["attributes"]["k"] == "v"


# -- limits: values cut and flagged ------------------------------------------------------------


def test_a_10_mb_attribute_value_is_cut_and_flagged() -> None:
    huge = "é" * (10 * 1024 * 1024)
    row = row_of({"input.value": huge, "small": "ok"})
    limit = DecodeLimits().max_attribute_chars
    assert row["attributes"]["input.value"] == "é" * limit
    assert row["attributes"][TRUNCATED] == "input.value"
    assert row["input_preview"] == "é" * 1000
    assert row["attributes"]["small"] == "ok"


def test_100k_attributes_on_a_span_keep_the_first_max_attributes() -> None:
    attributes = [(f"k{n}", n) for n in range(100_000)]
    row = row_of(attributes)
    assert len(row["attributes"]) == DecodeLimits().max_attributes + 1
    assert row["attributes"]["k1023"] == "1023"
    assert "k1024" not in row["attributes"]
    assert row["attributes"][TRUNCATED] == "[attributes]"


def test_deep_nesting_is_cut_at_max_depth_and_flagged() -> None:
    value: Any = "bottom"
    for _ in range(40):
        value = [value]
    row = row_of({"deep": value})
    limit = DecodeLimits().max_depth
    assert row["attributes"]["deep"] == "[" * limit + '"[too deep]"' + "]" * limit
    assert row["attributes"][TRUNCATED] == "deep"


def _nested_pb(depth: int) -> bytes:
    """An AnyValue nested ``depth`` arrays deep, encoded without recursion."""
    inner = AnyValue(string_value="bottom").SerializeToString()
    for _ in range(depth):
        element = b"\x0a" + _varint(len(inner)) + inner  # ArrayValue.values
        inner = b"\x2a" + _varint(len(element)) + element  # AnyValue.array_value
    return inner


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def test_a_protobuf_value_nested_10000_deep_is_cut_not_an_error() -> None:
    value = _nested_pb(10_000)
    pair = b"\x0a\x04deep" + b"\x12" + _varint(len(value)) + value  # KeyValue
    span = ExportTraceServiceRequest()
    span_pb = span.resource_spans.add().scope_spans.add().spans.add()
    span_pb.trace_id, span_pb.span_id = b"\x01" * 16, b"\x02" * 8
    span_pb.start_time_unix_nano, span_pb.end_time_unix_nano = T0, T0
    body = span.SerializeToString()
    # Append the pair as one more attribute (field 9) of the span, re-framing the span.
    raw_span = span_pb.SerializeToString() + b"\x4a" + _varint(len(pair)) + pair
    scope = b"\x12" + _varint(len(raw_span)) + raw_span
    resource = b"\x12" + _varint(len(scope)) + scope
    body = b"\x0a" + _varint(len(resource)) + resource
    with pytest.raises(Exception):  # noqa: B017, PT011 - the official parser gives up
        ExportTraceServiceRequest.FromString(body)
    decoded = decode(Signal.TRACES, body, PB)
    assert decoded.rejected == 0, decoded.error_message
    (row,) = to_pylist(decoded.batch)
    assert row["attributes"][TRUNCATED] == "deep"
    assert '"[too deep]"' in row["attributes"]["deep"]


def test_a_json_value_nested_10000_deep_is_a_decode_error() -> None:
    value = '{"stringValue":"x"}'
    for _ in range(10_000):
        value = '{"arrayValue":{"values":[' + value + "]}}"
    span = orjson.loads(traces_json(one_span()))
    body = orjson.dumps(span).replace(
        b'"attributes":[]', b'"attributes":[{"key":"k","value":' + value.encode() + b"}]", 1
    )
    with pytest.raises(DecodeError, match="invalid JSON"):
        decode(Signal.TRACES, body, JSON)


def test_a_long_name_and_status_message_are_cut_and_flagged() -> None:
    limits = DecodeLimits(max_attribute_chars=10)
    row = row_of({}, name="n" * 20, status_code=2, status_message="m" * 20, limits=limits)
    assert (row["operation_name"], row["status_message"]) == ("n" * 10, "m" * 10)
    assert row["attributes"][TRUNCATED] == "[name],[status_message]"


def test_too_many_events_are_dropped_and_flagged() -> None:
    events = [(T0 + n, f"e{n}", {}) for n in range(5)]
    row = row_of({}, events=events, limits=DecodeLimits(max_events=3))
    assert [event["name"] for event in row["events"]] == ["e0", "e1", "e2"]
    assert row["events"][-1]["attributes"] == {TRUNCATED: "[events]"}


def test_a_senders_truncation_flag_is_kept_and_added_to() -> None:
    row = row_of({TRUNCATED: "theirs", "v": "x" * 20}, limits=DecodeLimits(max_attribute_chars=10))
    assert row["attributes"][TRUNCATED] == "theirs,v"


def test_repeated_keys_keep_the_last_value() -> None:
    row = row_of([("k", "first"), ("other", 1), ("k", "second")])
    assert row["attributes"] == {"k": "second", "other": "1"}


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10"])
def test_limits_must_be_positive_ints(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_depth must be a positive int"):
        DecodeLimits(max_depth=bad)


def test_invalid_utf8_in_protobuf_is_replaced_not_fatal() -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = b"\x01" * 16, b"\x02" * 8
    span.start_time_unix_nano, span.end_time_unix_nano = T0, T0
    span.name = "NAME"
    span.attributes.append(KeyValue(key="KEY", value=AnyValue(string_value="VALUE")))
    body = (
        request.SerializeToString().replace(b"NAME", b"N\xffME").replace(b"VALUE", b"VAL\xfe\xff")
    )
    (row,) = to_pylist(decode(Signal.TRACES, body, PB).batch)
    assert row["operation_name"] == "N\ufffdME"
    assert row["attributes"] == {"KEY": "VAL\ufffd\ufffd"}


# -- bad requests: DecodeError ----------------------------------------------------------------


def test_an_empty_request_is_an_empty_batch() -> None:
    for signal, schema in (
        (Signal.TRACES, SPAN_SCHEMA),
        (Signal.METRICS, METRIC_SCHEMA),
        (Signal.LOGS, LOG_SCHEMA),
    ):
        for encoding, body in ((PB, b""), (JSON, b""), (JSON, b"{}"), (JSON, b" \n")):
            decoded = decode(signal, body, encoding)
            assert decoded.batch.schema == schema
            assert (decoded.batch.num_rows, decoded.rejected, decoded.error_message) == (0, 0, "")


def test_truncated_protobuf_is_a_decode_error() -> None:
    body = traces_pb(one_span(attributes={"input.value": "x" * 100}))
    for cut in (1, 10, len(body) // 2, len(body) - 1):
        with pytest.raises(DecodeError, match="not a protobuf ExportTraceServiceRequest"):
            decode(Signal.TRACES, body[:cut], PB)


@pytest.mark.parametrize(
    "body", [b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x07", b"GET / HTTP/1.1\r\n"]
)
def test_random_bytes_are_a_decode_error(body: bytes) -> None:
    for signal in Signal:
        with pytest.raises(DecodeError):
            decode(signal, body, PB)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "invalid JSON"),
        (b"[]", "must be a JSON object, got list"),
        (b'"x"', "must be a JSON object"),
        (b'{"resourceSpans": {}}', "resourceSpans must be a list"),
        (b'{"resourceSpans": [5]}', "resourceSpans[0] must be an object"),
        (b'{"resourceSpans": [{"scopeSpans": 1}]}', "scopeSpans must be a list"),
        (b'{"resourceSpans": [{"scopeSpans": [[]]}]}', "scopeSpans[0] must be an object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": {}}]}]}', "spans must be a list"),
        (b'{"resourceSpans": [{"resource": 3}]}', "resource must be an object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"scope": "x"}]}]}', "scope must be an object"),
        (b'{"a": "\\ud800"}', "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
    ],
)
def test_json_of_the_wrong_shape_is_a_decode_error(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match="not an OTLP/JSON ExportTraceServiceRequest") as info:
        decode(Signal.TRACES, body, JSON)
    assert message in str(info.value)


def test_a_bad_resource_rejects_its_spans() -> None:
    good = traces_json(one_span())
    request = orjson.loads(good)
    request["resourceSpans"][0]["resource"]["attributes"] = [
        {"key": "k", "value": {"intValue": "x"}}
    ]
    request["resourceSpans"].append(orjson.loads(good)["resourceSpans"][0])
    decoded = decode(Signal.TRACES, orjson.dumps(request), JSON)
    assert (decoded.batch.num_rows, decoded.rejected) == (1, 1)
    assert "resource: intValue" in decoded.error_message


def test_signal_and_encoding_may_be_given_as_strings() -> None:
    decoded = decode("traces", traces_json(one_span()), "json")  # type: ignore[arg-type]
    assert decoded.signal is Signal.TRACES and decoded.batch.num_rows == 1
    with pytest.raises(ValueError, match="profiles"):
        decode("profiles", b"", "json")  # type: ignore[arg-type]


def test_decoded_spans_go_into_the_store(tmp_path: Path) -> None:
    resources = one_span(
        attributes={"llm.model_name": "m", "x": [1, 2], TRUNCATED: "a"},
        events=[(T0, "e", {"k": 1})],
    )
    decoded, _ = decode_both(resources)
    with DuckDBSpanStore(tmp_path / "s.duckdb") as store:
        assert store.write(decoded.batch) == 1
        (stored,) = to_pylist(store.spans("01" * 16).drop_columns(["depth"]))
    assert stored == to_pylist(decoded.batch)[0]


def test_a_huge_array_value_is_cut_early_and_flagged() -> None:
    row = row_of({"embedding": list(range(200_000))}, limits=DecodeLimits(max_attribute_chars=1000))
    text = row["attributes"]["embedding"]
    assert len(text) == 1000
    assert text.startswith("[0,1,2,")
    assert row["attributes"][TRUNCATED] == "embedding"


def test_small_limits_cut_numbers_and_flags_too() -> None:
    row = row_of(
        {"n": -1_000_000_000, "f": 0.123456789, "b": False},
        limits=DecodeLimits(max_attribute_chars=4),
    )
    assert row["attributes"] == {"n": "-100", "f": "0.12", "b": "fals", TRUNCATED: "n,f,b"}
