"""The canonical span row: its Arrow schema and how spans become rows.

One row per span, the same columns everywhere (DESIGN.md §3). ``SpanBatch`` is
an Arrow table with :data:`SPAN_SCHEMA`. The ML columns (model, tokens, inference
type, previews) are read from the attributes by :mod:`pyflare.mlfields`; this module
builds the rest of the row and the table around them. :data:`METRIC_SCHEMA` and
:data:`LOG_SCHEMA` are the rows of the ``metrics`` and ``logs`` tables, which the
server fills from OTLP; :data:`DRIFT_RESULT_SCHEMA` the rows of ``drift_results``.

This module imports pyarrow; ``import pyflare`` does not import it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.trace import SpanKind, StatusCode

from pyflare import semconv as sc
from pyflare.mlfields import (
    ML_COLUMNS,
    PREVIEW_CHARS,
    ml_fields,
    ml_lookups,
    ml_values,
    stringify,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "COST_SCHEMA",
    "DRIFT_RESULT_SCHEMA",
    "LOG_SCHEMA",
    "METRIC_SCHEMA",
    "PREVIEW_CHARS",
    "SPAN_SCHEMA",
    "SpanBatch",
    "concat",
    "empty_batch",
    "from_readable_spans",
    "ml_fields",
    "stringify",
    "to_pylist",
]

SpanBatch: TypeAlias = pa.Table

_STR_MAP = pa.map_(pa.string(), pa.string())
_EVENT = pa.struct(
    [
        pa.field("time", pa.timestamp("ns")),
        pa.field("name", pa.string()),
        pa.field("attributes", _STR_MAP),
    ]
)

_BUCKET = pa.struct([pa.field("upper_bound", pa.float64()), pa.field("count", pa.int64())])
_QUANTILE = pa.struct([pa.field("quantile", pa.float64()), pa.field("value", pa.float64())])

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

# One row per metric data point (the spec's metrics table). value_type is 'gauge'
# (gauges and non-monotonic sums), 'counter' (monotonic sums), 'histogram' (explicit
# and exponential buckets, both stored as explicit upper bounds, the last +inf) or
# 'summary'. value is the point's number; for histograms and summaries the mean
# (sum / count), null when unknown. temporality is 'delta' or 'cumulative' for sums
# and histograms, else null.
METRIC_SCHEMA = pa.schema(
    [
        pa.field("metric_name", pa.string(), nullable=False),
        pa.field("service_name", pa.string(), nullable=False),
        pa.field("model_id", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("environment", pa.string()),
        pa.field("timestamp", pa.timestamp("ns"), nullable=False),
        pa.field("start_time", pa.timestamp("ns")),
        pa.field("value_type", pa.string(), nullable=False),
        pa.field("temporality", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("histogram_count", pa.int64()),
        pa.field("histogram_sum", pa.float64()),
        pa.field("histogram_buckets", pa.list_(_BUCKET), nullable=False),
        pa.field("quantiles", pa.list_(_QUANTILE), nullable=False),
        pa.field("unit", pa.string()),
        pa.field("scope_name", pa.string()),
        pa.field("attributes", _STR_MAP, nullable=False),
        pa.field("resource", _STR_MAP, nullable=False),
        pa.field("_ingested_at", pa.timestamp("us"), nullable=False),
    ]
)

# One row per log record. timestamp is the record's time, else its observed time;
# trace_id and span_id are lowercase hex or null; body is the AnyValue rendered
# as attribute values are (maps and arrays as JSON). event_name is the record's
# event name, else its ``event.name`` attribute.
LOG_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.timestamp("ns"), nullable=False),
        pa.field("observed_timestamp", pa.timestamp("ns")),
        pa.field("trace_id", pa.string()),
        pa.field("span_id", pa.string()),
        pa.field("severity_number", pa.int32(), nullable=False),
        pa.field("severity_text", pa.string()),
        pa.field("body", pa.string()),
        pa.field("event_name", pa.string()),
        pa.field("service_name", pa.string(), nullable=False),
        pa.field("scope_name", pa.string()),
        pa.field("attributes", _STR_MAP, nullable=False),
        pa.field("resource", _STR_MAP, nullable=False),
        pa.field("_ingested_at", pa.timestamp("us"), nullable=False),
    ]
)

# One drift result: a DriftReport of one model's window (the drift_results table).
# score and threshold are on the common 0..1 scale (0.5 is every method's
# threshold); method is the one method used when all features share it, else
# null; feature_scores is the report's feature_breakdown(); details is the JSON
# of DriftReport.to_dict(). window_start is null for a result not tied to a window.
DRIFT_RESULT_SCHEMA = pa.schema(
    [
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("drift_type", pa.string(), nullable=False),
        pa.field("window_start", pa.timestamp("ns")),
        pa.field("window_end", pa.timestamp("ns"), nullable=False),
        pa.field("computed_at", pa.timestamp("ns"), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("threshold", pa.float64(), nullable=False),
        pa.field("is_drifted", pa.bool_(), nullable=False),
        pa.field("method", pa.string()),
        pa.field("feature_scores", pa.map_(pa.string(), pa.float64()), nullable=False),
        pa.field("explanation", pa.string()),
        pa.field("n_reference", pa.int64()),
        pa.field("n_current", pa.int64()),
        pa.field("details", pa.string()),
    ]
)

# One row per LLM or embedding call with a model (the costs table, the spec's
# CostResult plus span_id, which makes rewriting a span idempotent). Token counts
# are null when unknown; the cost columns are null when the model is unpriced
# (never 0 for an unknown model). price_source says where the price came from:
# 'span' (the span carried pyflare.cost.micros), 'user' (a price from the user's
# YAML), 'genai-prices' (the built-in catalogue), or null when unpriced.
# tokens_estimated is true when the tokens were counted or estimated by PyFlare
# rather than reported by the provider.
COST_SCHEMA = pa.schema(
    [
        pa.field("trace_id", pa.string(), nullable=False),
        pa.field("span_id", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("ns"), nullable=False),
        pa.field("service_name", pa.string(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("model_version", pa.string()),
        pa.field("provider", pa.string()),
        pa.field("price_model", pa.string()),
        pa.field("price_source", pa.string()),
        pa.field("input_tokens", pa.int64()),
        pa.field("output_tokens", pa.int64()),
        pa.field("total_tokens", pa.int64()),
        pa.field("cached_input_tokens", pa.int64()),
        pa.field("reasoning_tokens", pa.int64()),
        pa.field("tokens_estimated", pa.bool_(), nullable=False),
        pa.field("input_cost_micros", pa.int64()),
        pa.field("output_cost_micros", pa.int64()),
        pa.field("total_cost_micros", pa.int64()),
        pa.field("user_id", pa.string()),
        pa.field("session_id", pa.string()),
        pa.field("feature_id", pa.string()),
        pa.field("team", pa.string()),
        pa.field("environment", pa.string()),
        pa.field("dimensions", _STR_MAP, nullable=False),
    ]
)

_KIND_NAMES = ("internal", "server", "client", "producer", "consumer")
_STATUS_NAMES = ("unset", "ok", "error")


def empty_batch() -> SpanBatch:
    """A batch with the canonical schema and no rows."""
    return SPAN_SCHEMA.empty_table()


# The ML columns of a span with no ML attribute, shared rather than built per span.
_NO_ML: tuple[Any, ...] = (None,) * len(ML_COLUMNS)

# PyFlare's own content attributes become columns; keeping them in the
# attributes map as well would store every preview twice.
_PROMOTED = frozenset({sc.INPUT_PREVIEW, sc.OUTPUT_PREVIEW, sc.INPUT_HASH})

# What from_readable_spans() needs to know about a span's attribute keys, worked
# out once per distinct key tuple (spans from one code path share it):
# (keys stored in the map, positions of those keys or None for all of them,
#  the first present key of each multi-key ML lookup or None when no ML key is present).
_Plan = tuple[tuple[str, ...], tuple[int, ...] | None, tuple[str | None, ...] | None]
_PLANS: dict[tuple[str, ...], _Plan] = {}
_MAX_PLANS = 4096


def _plan(names: tuple[str, ...]) -> _Plan:
    promoted = _PROMOTED.intersection(names)
    keep = tuple(i for i, name in enumerate(names) if name not in promoted)
    plan: _Plan = (tuple(names[i] for i in keep), keep if promoted else None, ml_lookups(names))
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()  # key sets are few in practice; this only bounds memory
    _PLANS[names] = plan
    return plan


class _NoneValue(Exception):
    """An attribute value is None (the SDK keeps those; the row's maps drop them)."""


def _attribute_value(value: Any) -> str:
    if value is None:
        raise _NoneValue
    return stringify(value)


def _bool_str(value: bool) -> str:
    return "true" if value else "false"


# stringify() for the common attribute types, looked up by exact type.
_TO_STR: dict[type, Any] = {
    int: int.__repr__,
    float: float.__repr__,
    bool: _bool_str,
}


_KINDS_BY_ID = {id(kind): _KIND_NAMES[kind.value] for kind in SpanKind}
_STATUS_BY_ID = {id(code): _STATUS_NAMES[code.value] for code in StatusCode}


def _sanitized(value: Any) -> Any:
    """``value`` with lone surrogates in its strings replaced (Arrow needs valid UTF-8)."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list | tuple):
        return [_sanitized(item) for item in value]
    if isinstance(value, dict):
        return {key: _sanitized(item) for key, item in value.items()}
    return value


def _array(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, type_)
    except UnicodeEncodeError:
        return pa.array(_sanitized(values), type_)


def _map_array(offsets: Sequence[int], keys: Sequence[str], values: Sequence[str]) -> pa.Array:
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()),
        _array(keys, pa.string()),
        _array(values, pa.string()),
    )


def _hex_ids(ids: Sequence[int], size: int) -> list[str]:
    """Lowercase hex of each id, ``size`` bytes wide."""
    try:
        return [i.to_bytes(size, "big").hex() for i in ids]
    except OverflowError:  # not a valid OTel id; keep what it says rather than drop the batch
        return [f"{i:0{size * 2}x}" for i in ids]


def _hex_parent_ids(ids: Sequence[int | None]) -> list[str | None]:
    """Parent span ids as hex; no parent, or the invalid id 0, is None (a root)."""
    try:
        return [None if i is None or i == 0 else i.to_bytes(8, "big").hex() for i in ids]
    except OverflowError:
        return [None if i is None or i == 0 else f"{i:016x}" for i in ids]


def _events(events: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "time": event.timestamp,
            "name": event.name,
            "attributes": [
                (key, stringify(value))
                for key, value in (event.attributes or {}).items()
                if value is not None
            ],
        }
        for event in events
    ]


def from_readable_spans(
    spans: Sequence[ReadableSpan],
    *,
    ingested_at_ns: int | None = None,
    mask_attributes: Callable[[dict[str, Any]], None] | None = None,
) -> SpanBatch:
    """Convert finished OTel SDK spans into a canonical :data:`SpanBatch`.

    ``mask_attributes``, when given,
    changes each span's (copied) attribute dict in place before anything is read
    from it: the local exporter masks PII this way without copying spans.

    This runs on every exported span (the exporter's budget is a few µs a span),
    so the per-span loop only gathers Python values: attribute key sets are
    analysed once per distinct set, ids are formatted and columns built in bulk.
    """
    rows: list[tuple[Any, ...]] = []
    ml_rows: list[tuple[Any, ...]] = []
    attr_offsets = [0]
    attr_keys: list[str] = []
    attr_values: list[str] = []
    resource_rows: list[int] = []
    resource_index: dict[int, int] = {}
    resources: list[tuple[list[str], list[str], str]] = []
    events_col: list[list[dict[str, Any]]] = []
    plans = _PLANS
    kinds = _KINDS_BY_ID
    statuses = _STATUS_BY_ID
    no_ml = _NO_ML
    no_events: list[dict[str, Any]] = []
    to_str = _TO_STR.get
    for span in spans:
        ctx = span.context
        if ctx is None:
            continue
        parent = span.parent
        start = span.start_time or 0
        end = span.end_time or start
        resource = span.resource
        position = resource_index.get(id(resource))
        if position is None:
            position = resource_index[id(resource)] = len(resources)
            resources.append(_resource_entry(resource))
        resource_rows.append(position)
        kind = span.kind
        status = span.status
        code = status.status_code
        ml = no_ml
        attrs = span.attributes
        # ReadableSpan.attributes is a read-only proxy of BoundedAttributes; copy()
        # reaches the dict underneath in C instead of iterating the mapping in Python.
        try:
            values_dict = attrs.copy()  # type: ignore[union-attr]
        except AttributeError:
            values_dict = dict(attrs) if attrs else {}
        if type(values_dict) is not dict:
            values_dict = dict(values_dict)
        if mask_attributes is not None:
            mask_attributes(values_dict)
        if values_dict:
            names = tuple(values_dict)
            plan = plans.get(names) or _plan(names)
            try:
                values = [
                    v if type(v) is str else to_str(type(v), _attribute_value)(v)
                    for v in values_dict.values()
                ]
            except _NoneValue:
                values_dict = {k: v for k, v in values_dict.items() if v is not None}
                names = tuple(values_dict)
                plan = plans.get(names) or _plan(names)
                values = [v if type(v) is str else stringify(v) for v in values_dict.values()]
            kept, keep, lookups = plan
            attr_keys += kept
            attr_values += values if keep is None else [values[i] for i in keep]
            if lookups is not None:
                ml = ml_values(values_dict, lookups)
        attr_offsets.append(len(attr_keys))
        ml_rows.append(ml)
        events = span.events
        events_col.append(_events(events) if events else no_events)
        rows.append(
            (
                ctx.trace_id,
                ctx.span_id,
                None if parent is None else parent.span_id,
                start,
                end,
                span.name,
                kinds.get(id(kind)) or _KIND_NAMES[kind.value],
                statuses.get(id(code)) or _STATUS_NAMES[code.value],
                status.description or None,
            )
        )
    return _table(
        rows,
        ml_rows,
        attr_offsets,
        attr_keys,
        attr_values,
        resources,
        resource_rows,
        events_col,
        ingested_at_ns,
    )


def _resource_entry(resource: Any) -> tuple[list[str], list[str], str]:
    attributes = {
        key: value
        for key, value in (dict(resource.attributes) if resource is not None else {}).items()
        if value is not None
    }
    return (
        list(attributes),
        [stringify(value) for value in attributes.values()],
        stringify(attributes.get("service.name", "unknown_service")),
    )


def _table(
    rows: list[tuple[Any, ...]],
    ml_rows: list[tuple[Any, ...]],
    attr_offsets: list[int],
    attr_keys: list[str],
    attr_values: list[str],
    resources: list[tuple[list[str], list[str], str]],
    resource_rows: list[int],
    events_col: list[list[dict[str, Any]]],
    ingested_at_ns: int | None,
) -> SpanBatch:
    count = len(rows)
    if count == 0:
        return empty_batch()
    trace_ids, span_ids, parents, starts, ends, names, kinds, statuses, messages = zip(
        *rows, strict=True
    )
    ml_columns = list(zip(*ml_rows, strict=True))
    string = pa.string()
    start_array = pa.array(starts, pa.int64())
    end_array = pa.array(ends, pa.int64())
    durations = pc.max_element_wise(pc.subtract(end_array, start_array), 0)
    resource_take = pa.array(resource_rows, pa.int32())
    resource_offsets = [0]
    resource_keys: list[str] = []
    resource_values: list[str] = []
    for keys, values, _ in resources:
        resource_keys += keys
        resource_values += values
        resource_offsets.append(len(resource_keys))
    services = _array([service for _, _, service in resources], string).take(resource_take)
    now_us = (ingested_at_ns if ingested_at_ns is not None else time.time_ns()) // 1000
    schema = SPAN_SCHEMA
    arrays = [
        pa.array(_hex_ids(trace_ids, 16), string),
        pa.array(_hex_ids(span_ids, 8), string),
        pa.array(_hex_parent_ids(parents), string),
        start_array.cast(pa.timestamp("ns")),
        end_array.cast(pa.timestamp("ns")),
        durations,
        services,
        _array(names, string),
        pa.array(kinds, string),
        pa.array(statuses, string),
        _array(messages, string),
        *(
            _array(column, schema.field(name).type)
            for column, name in zip(ml_columns, ML_COLUMNS, strict=True)
        ),
        _map_array(attr_offsets, attr_keys, attr_values),
        _map_array(resource_offsets, resource_keys, resource_values).take(resource_take),
        _array(events_col, schema.field("events").type),
        pa.repeat(pa.scalar(now_us, pa.timestamp("us")), count),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def to_pylist(batch: SpanBatch) -> list[dict[str, Any]]:
    """Rows as dicts with maps as plain dicts (handy in tests and notebooks)."""
    rows: list[dict[str, Any]] = batch.to_pylist()
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
