"""Fuzzing the OTLP decoders: any input gives rows or a DecodeError, never another exception."""

from __future__ import annotations

import json
import math
from typing import Any

from _decode_requests import ResourceSpec, ScopeSpec, SpanSpec, traces_json, traces_pb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyflare.mlfields import ML_COLUMNS, ML_KEYS, ml_fields
from pyflare.records import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from pyflare_server.receiver.decode import (
    Decoded,
    DecodeError,
    DecodeLimits,
    Encoding,
    Signal,
    decode,
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SCHEMAS = {Signal.TRACES: SPAN_SCHEMA, Signal.METRICS: METRIC_SCHEMA, Signal.LOGS: LOG_SCHEMA}
# Small limits, so that cutting and flagging happen often.
LIMITS = DecodeLimits(max_attribute_chars=40, max_attributes=6, max_depth=3, max_events=2)


def decodes_or_refuses(signal: Signal, body: bytes, encoding: Encoding) -> None:
    """``body`` decodes to rows of the signal's schema, or is refused with DecodeError."""
    for limits in (DecodeLimits(), LIMITS):
        try:
            decoded = decode(signal, body, encoding, limits=limits)
        except DecodeError:
            continue
        assert isinstance(decoded, Decoded)
        assert decoded.batch.schema == SCHEMAS[signal]
        assert decoded.rejected >= 0
        assert bool(decoded.error_message) == bool(decoded.rejected)
        decoded.batch.validate(full=True)


@FUZZ
@given(st.sampled_from(list(Signal)), st.binary(max_size=300))
def test_random_bytes_as_protobuf(signal: Signal, body: bytes) -> None:
    decodes_or_refuses(signal, body, Encoding.PROTOBUF)


GOOD_BODY = traces_pb(
    [
        ResourceSpec(
            attributes={"service.name": "svc", "list": [1, {"k": [b"x"]}]},
            scopes=[
                ScopeSpec(
                    spans=[
                        SpanSpec(
                            attributes={"input.value": "hello", "n": 3, "f": 1.5, "b": True},
                            events=[(1, "e", {"k": "v"})],
                            parent_span_id=b"\x03" * 8,
                        )
                    ]
                )
            ],
        )
    ]
)


@FUZZ
@given(st.data())
def test_mutated_protobuf(data: st.DataObject) -> None:
    body = bytearray(GOOD_BODY)
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(body) - 1))
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        byte = data.draw(st.integers(0, 255))
        if action == "flip":
            body[position] = byte
        elif action == "insert":
            body.insert(position, byte)
        elif action == "delete" and len(body) > 1:
            del body[position]
        elif action == "cut":
            del body[position:]
        if not body:
            break
    decodes_or_refuses(Signal.TRACES, bytes(body), Encoding.PROTOBUF)


# JSON-ish values, with OTLP's field names as keys often enough to get deep into the decoders.
OTLP_KEYS = [
    "resourceSpans",
    "resourceMetrics",
    "resourceLogs",
    "resource",
    "attributes",
    "scopeSpans",
    "scopeMetrics",
    "scopeLogs",
    "scope",
    "name",
    "spans",
    "metrics",
    "logRecords",
    "traceId",
    "spanId",
    "parentSpanId",
    "kind",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "timeUnixNano",
    "status",
    "code",
    "message",
    "events",
    "key",
    "value",
    "stringValue",
    "intValue",
    "doubleValue",
    "boolValue",
    "bytesValue",
    "arrayValue",
    "kvlistValue",
    "values",
    "body",
    "severityNumber",
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
    "dataPoints",
    "asInt",
    "asDouble",
    "bucketCounts",
    "explicitBounds",
    "count",
    "positive",
    "scale",
    "quantileValues",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["01" * 16, "02" * 8, "1767225600000000000", "NaN", "SPAN_KIND_SERVER"])
)
JSONISH = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(OTLP_KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)


@FUZZ
@given(st.sampled_from(list(Signal)), JSONISH)
def test_random_json(signal: Signal, value: Any) -> None:
    # The standard library writes integers of any size (orjson refuses them on both ends).
    decodes_or_refuses(signal, json.dumps(value).encode(), Encoding.JSON)


@FUZZ
@given(st.sampled_from(list(Signal)), st.binary(max_size=200))
def test_random_bytes_as_json(signal: Signal, body: bytes) -> None:
    decodes_or_refuses(signal, body, Encoding.JSON)


# Attribute values PyFlare's SDK could have set, and keys it reads ML fields from.
VALUES = st.recursive(
    st.text(max_size=30)
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.binary(max_size=6),
    lambda children: st.lists(children, max_size=3),
    max_leaves=6,
)
KEYS = st.sampled_from(sorted(ML_KEYS)) | st.text(min_size=1, max_size=12)
PROMOTED = {"pyflare.input.preview", "pyflare.output.preview", "pyflare.input.hash"}


def _python(value: Any) -> Any:
    """What decoding an attribute value gives: nested bytes as hex."""
    if isinstance(value, list):
        return [item.hex() if isinstance(item, bytes) else _python(item) for item in value]
    return value


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, VALUES, max_size=8), st.integers(0, 5))
def test_both_encodings_agree_and_ml_columns_match_the_sdk(
    attributes: dict[str, Any], kind: int
) -> None:
    resources = [
        ResourceSpec(scopes=[ScopeSpec(spans=[SpanSpec(attributes=attributes, kind=kind)])])
    ]
    from_pb = decode(Signal.TRACES, traces_pb(resources), Encoding.PROTOBUF, ingested_at_ns=1)
    from_json = decode(Signal.TRACES, traces_json(resources), Encoding.JSON, ingested_at_ns=1)
    assert from_pb.rejected == from_json.rejected == 0
    assert from_json.batch.equals(from_pb.batch)
    (row,) = from_pb.batch.to_pylist()
    expected = ml_fields({key: _python(value) for key, value in attributes.items()})
    assert {column: row[column] for column in ML_COLUMNS} == expected
    stored = dict(row["attributes"])
    for key, value in attributes.items():
        if key in PROMOTED:
            assert key not in stored
        elif isinstance(value, float) and not math.isfinite(value):
            assert stored[key] in ("inf", "-inf")
        elif isinstance(value, str):
            assert stored[key] == value


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(KEYS, VALUES), max_size=12), st.integers(1, 5))
def test_limits_always_hold(pairs: list[tuple[str, Any]], most: int) -> None:
    limits = DecodeLimits(max_attribute_chars=10, max_attributes=most, max_depth=2)
    resources = [ResourceSpec(scopes=[ScopeSpec(spans=[SpanSpec(attributes=pairs)])])]
    for encoding, body in (
        (Encoding.PROTOBUF, traces_pb(resources)),
        (Encoding.JSON, traces_json(resources)),
    ):
        decoded = decode(Signal.TRACES, body, encoding, limits=limits)
        (row,) = decoded.batch.to_pylist()
        stored = dict(row["attributes"])
        flagged = stored.pop("pyflare.truncated", None)
        assert len(stored) <= most
        assert all(len(text) <= 10 for text in stored.values())
        if len(pairs) > most:
            assert flagged is not None
            assert "[attributes]" in flagged
