"""The canonical span row: its Arrow schema and how spans become rows.

One row per span, the same columns everywhere (DESIGN.md §3). ``SpanBatch`` is
an Arrow table with :data:`SPAN_SCHEMA`. ML fields (model, tokens, inference
type, previews) are read from PyFlare's attributes first, then the OTel GenAI
conventions, then OpenInference, so a span from any of those instrumentations
is understood the same way.

This module imports pyarrow; ``import pyflare`` does not import it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from pyflare import semconv as sc

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "PREVIEW_CHARS",
    "SPAN_SCHEMA",
    "SpanBatch",
    "empty_batch",
    "from_readable_spans",
    "ml_fields",
    "stringify",
]

SpanBatch = pa.Table
PREVIEW_CHARS = 1000

_STR_MAP = pa.map_(pa.string(), pa.string())
_EVENT = pa.struct(
    [
        pa.field("time", pa.timestamp("ns")),
        pa.field("name", pa.string()),
        pa.field("attributes", _STR_MAP),
    ]
)

SPAN_SCHEMA = pa.schema(
    [
        pa.field("trace_id", pa.string(), nullable=False),
        pa.field("span_id", pa.string(), nullable=False),
        pa.field("parent_span_id", pa.string()),
        pa.field("start_time", pa.timestamp("ns"), nullable=False),
        pa.field("end_time", pa.timestamp("ns"), nullable=False),
        pa.field("duration_ns", pa.int64(), nullable=False),
        pa.field("service_name", pa.string(), nullable=False),
        pa.field("operation_name", pa.string(), nullable=False),
        pa.field("span_kind", pa.string(), nullable=False),
        pa.field("status_code", pa.string(), nullable=False),
        pa.field("status_message", pa.string()),
        pa.field("model_id", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("inference_type", pa.string()),
        pa.field("input_preview", pa.string()),
        pa.field("output_preview", pa.string()),
        pa.field("input_hash", pa.string()),
        pa.field("input_tokens", pa.int64()),
        pa.field("output_tokens", pa.int64()),
        pa.field("total_tokens", pa.int64()),
        pa.field("cost_micros", pa.int64()),
        pa.field("attributes", _STR_MAP, nullable=False),
        pa.field("resource", _STR_MAP, nullable=False),
        pa.field("events", pa.list_(_EVENT), nullable=False),
        pa.field("_ingested_at", pa.timestamp("us"), nullable=False),
    ]
)

_KIND_NAMES = ("internal", "server", "client", "producer", "consumer")
_STATUS_NAMES = ("unset", "ok", "error")


def empty_batch() -> SpanBatch:
    """A batch with the canonical schema and no rows."""
    return SPAN_SCHEMA.empty_table()


def stringify(value: Any) -> str:
    """Render an OTel attribute value as the string stored in the row's maps."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, bytes):
        return value.hex()
    try:
        return orjson.dumps(value, default=str).decode()
    except (TypeError, ValueError):
        return str(value)


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            return None
        return number if number >= 0 else None
    return None


def _first(attributes: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return value
    return None


def _first_str(attributes: Mapping[str, Any], *keys: str) -> str | None:
    value = _first(attributes, *keys)
    return None if value is None else stringify(value)


def ml_fields(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The ML columns of a span, read from its attributes.

    Order of precedence: ``pyflare.*``, then OTel GenAI (``gen_ai.*``, the
    deprecated names included), then OpenInference (``llm.*``, ``input.value``…).
    Token counts that are absent stay ``None`` (never 0 for unknown).
    """
    model_id = _first_str(
        attributes,
        sc.MODEL_ID,
        sc.GEN_AI_RESPONSE_MODEL,
        sc.GEN_AI_REQUEST_MODEL,
        sc.OI_MODEL_NAME,
        sc.EMBEDDING_MODEL_NAME,
    )
    inference_type = _first_str(attributes, sc.INFERENCE_TYPE)
    if inference_type is None:
        operation = attributes.get(sc.GEN_AI_OPERATION_NAME)
        if isinstance(operation, str):
            inference_type = sc.GEN_AI_OPERATIONS.get(operation)
    if inference_type is None:
        oi_kind = attributes.get(sc.OI_SPAN_KIND)
        if isinstance(oi_kind, str):
            inference_type = sc.OPENINFERENCE_KINDS.get(oi_kind.upper(), ("", ""))[1] or None
    input_tokens = _as_int(
        _first(
            attributes,
            sc.INPUT_TOKENS,
            sc.GEN_AI_USAGE_INPUT_TOKENS,
            sc.GEN_AI_USAGE_PROMPT_TOKENS,
            sc.OI_TOKEN_PROMPT,
        )
    )
    output_tokens = _as_int(
        _first(
            attributes,
            sc.OUTPUT_TOKENS,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS,
            sc.GEN_AI_USAGE_COMPLETION_TOKENS,
            sc.OI_TOKEN_COMPLETION,
        )
    )
    total_tokens = _as_int(_first(attributes, sc.TOTAL_TOKENS, sc.OI_TOKEN_TOTAL))
    if total_tokens is None and input_tokens is not None:
        if output_tokens is not None:
            total_tokens = input_tokens + output_tokens
        elif inference_type == "embedding":
            total_tokens = input_tokens  # embeddings have no output tokens
    input_preview = _first_str(
        attributes, sc.INPUT_PREVIEW, sc.GEN_AI_INPUT_MESSAGES, sc.OI_INPUT_VALUE
    )
    output_preview = _first_str(
        attributes, sc.OUTPUT_PREVIEW, sc.GEN_AI_OUTPUT_MESSAGES, sc.OI_OUTPUT_VALUE
    )
    return {
        "model_id": model_id,
        "model_version": _first_str(attributes, sc.MODEL_VERSION),
        "inference_type": inference_type,
        "input_preview": None if input_preview is None else input_preview[:PREVIEW_CHARS],
        "output_preview": None if output_preview is None else output_preview[:PREVIEW_CHARS],
        "input_hash": _first_str(attributes, sc.INPUT_HASH),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": total_tokens,
        "cost_micros": _as_int(attributes.get(sc.COST_MICROS)),
    }


_ML_NAMES = (
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
_NO_ML = dict.fromkeys(_ML_NAMES)
# PyFlare's own content attributes become columns; keeping them in the
# attributes map as well would store every preview twice.
_PROMOTED = frozenset({sc.INPUT_PREVIEW, sc.OUTPUT_PREVIEW, sc.INPUT_HASH})

# Every attribute key ml_fields() reads: spans carrying none of them skip it.
_ML_KEYS = frozenset(
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
    }
)


def _map_array(offsets: list[int], keys: list[str], values: list[str]) -> pa.Array:
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.array(keys, pa.string()),
        pa.array(values, pa.string()),
    )


def from_readable_spans(
    spans: Sequence[ReadableSpan],
    *,
    ingested_at_ns: int | None = None,
    transform: Any = None,
) -> SpanBatch:
    """Convert finished OTel SDK spans into a canonical :data:`SpanBatch`.

    ``transform``, when given, is called with each span's ML-field dict and its
    attributes and returns the dict to store (PyFlare uses it to mask content
    that other instrumentations recorded).

    This runs on every exported span, so it makes one pass over each span's
    attributes and builds the map columns from flat arrays.
    """
    trace_ids: list[str] = []
    span_ids: list[str] = []
    parents: list[str | None] = []
    starts: list[int] = []
    ends: list[int] = []
    durations: list[int] = []
    services: list[str] = []
    names: list[str] = []
    kinds: list[str] = []
    statuses: list[str] = []
    messages: list[str | None] = []
    ml_columns: list[list[Any]] = [[] for _ in _ML_NAMES]
    attr_offsets = [0]
    attr_keys: list[str] = []
    attr_values: list[str] = []
    res_offsets = [0]
    res_keys: list[str] = []
    res_values: list[str] = []
    events_col: list[list[dict[str, Any]]] = []
    resource_cache: dict[int, tuple[list[str], list[str], str]] = {}
    ml_keys = _ML_KEYS
    promoted = _PROMOTED
    for span in spans:
        ctx = span.context
        if ctx is None:
            continue
        trace_ids.append(f"{ctx.trace_id:032x}")
        span_ids.append(f"{ctx.span_id:016x}")
        parent = span.parent
        parents.append(None if parent is None else f"{parent.span_id:016x}")
        start = span.start_time or 0
        end = span.end_time or start
        starts.append(start)
        ends.append(end)
        durations.append(end - start if end > start else 0)
        resource = span.resource
        cached = resource_cache.get(id(resource))
        if cached is None:
            res_attrs = dict(resource.attributes) if resource is not None else {}
            cached = (
                list(res_attrs),
                [stringify(v) for v in res_attrs.values()],
                stringify(res_attrs.get("service.name", "unknown_service")),
            )
            resource_cache[id(resource)] = cached
        res_keys.extend(cached[0])
        res_values.extend(cached[1])
        res_offsets.append(len(res_keys))
        services.append(cached[2])
        names.append(span.name)
        kinds.append(_KIND_NAMES[span.kind.value])
        status = span.status
        statuses.append(_STATUS_NAMES[status.status_code.value])
        messages.append(status.description or None)
        found: dict[str, Any] | None = None
        attrs = span.attributes
        if attrs:
            for key, value in attrs.items():
                if value is None:
                    continue
                if key in ml_keys:
                    if found is None:
                        found = {}
                    found[key] = value
                    if key in promoted:
                        continue
                attr_keys.append(key)
                attr_values.append(value if type(value) is str else stringify(value))
        attr_offsets.append(len(attr_keys))
        fields = _NO_ML if found is None else ml_fields(found)
        if transform is not None:
            fields = transform(dict(fields), attrs or {})
        for column, name in zip(ml_columns, _ML_NAMES, strict=True):
            column.append(fields[name])
        events = span.events
        if events:
            events_col.append(
                [
                    {
                        "time": event.timestamp,
                        "name": event.name,
                        "attributes": [
                            (k, stringify(v)) for k, v in (event.attributes or {}).items()
                        ],
                    }
                    for event in events
                ]
            )
        else:
            events_col.append([])
    count = len(trace_ids)
    now_us = (ingested_at_ns if ingested_at_ns is not None else time.time_ns()) // 1000
    schema = SPAN_SCHEMA
    arrays = [
        pa.array(trace_ids, pa.string()),
        pa.array(span_ids, pa.string()),
        pa.array(parents, pa.string()),
        pa.array(starts, pa.timestamp("ns")),
        pa.array(ends, pa.timestamp("ns")),
        pa.array(durations, pa.int64()),
        pa.array(services, pa.string()),
        pa.array(names, pa.string()),
        pa.array(kinds, pa.string()),
        pa.array(statuses, pa.string()),
        pa.array(messages, pa.string()),
        *(
            pa.array(column, schema.field(name).type)
            for column, name in zip(ml_columns, _ML_NAMES, strict=True)
        ),
        _map_array(attr_offsets, attr_keys, attr_values),
        _map_array(res_offsets, res_keys, res_values),
        pa.array(events_col, schema.field("events").type),
        pa.array([now_us] * count, pa.timestamp("us")),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def to_pylist(batch: SpanBatch) -> list[dict[str, Any]]:
    """Rows as dicts with maps as plain dicts (handy in tests and notebooks)."""
    rows = batch.to_pylist()
    for row in rows:
        row["attributes"] = dict(row["attributes"])
        row["resource"] = dict(row["resource"])
        for event in row["events"]:
            event["attributes"] = dict(event["attributes"])
    return rows


def concat(batches: Iterable[SpanBatch]) -> SpanBatch:
    """Concatenate batches with the canonical schema."""
    tables = [b for b in batches if b.num_rows]
    return pa.concat_tables(tables) if tables else empty_batch()
