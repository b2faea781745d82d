"""The ML columns of a span row, read from the span's attributes.

ML fields are filled from, in order: ``pyflare.*``, OTel GenAI (``gen_ai.*``, the
deprecated names included), OpenInference (``llm.*``, ``input.value``…). A span from
any of those instrumentations is understood the same way, and a value PyFlare set
itself wins over one an instrumentation set.

:func:`ml_fields` is the definition. :func:`ml_values` computes the same thing on the
exporter's per-span path, reading only the keys :func:`ml_lookups` found present in
that span's key set (worked out once per set by :mod:`pyflare.records`).

:func:`stringify` lives here rather than in :mod:`pyflare.records` because the ML
columns and the row's attribute maps must render a value identically, and the
records module depends on this one, not the other way round.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from operator import itemgetter
from typing import Any

import orjson

from pyflare import semconv as sc

__all__ = [
    "ML_COLUMNS",
    "ML_KEYS",
    "PREVIEW_CHARS",
    "ml_fields",
    "ml_lookups",
    "ml_tuple",
    "ml_values",
    "stringify",
]

PREVIEW_CHARS = 1000


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


_INT64_MAX = 2**63 - 1


def _as_int(value: Any) -> int | None:
    """A token count or cost as a non-negative int64, or None when it isn't one."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():  # also rejects nan and inf
            return None
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            return None
    else:
        return None
    return number if 0 <= number <= _INT64_MAX else None


def _first(attributes: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return value
    return None


def _first_str(attributes: Mapping[str, Any], *keys: str) -> str | None:
    value = _first(attributes, *keys)
    return None if value is None else stringify(value)


# Where each ML field is read from, in order of precedence.
_MODEL_KEYS = (
    sc.MODEL_ID,
    sc.GEN_AI_RESPONSE_MODEL,  # the model that answered beats the one asked for
    sc.GEN_AI_REQUEST_MODEL,
    sc.OI_MODEL_NAME,
    sc.EMBEDDING_MODEL_NAME,
)
_INPUT_TOKEN_KEYS = (
    sc.INPUT_TOKENS,
    sc.GEN_AI_USAGE_INPUT_TOKENS,
    sc.GEN_AI_USAGE_PROMPT_TOKENS,
    sc.OI_TOKEN_PROMPT,
)
_OUTPUT_TOKEN_KEYS = (
    sc.OUTPUT_TOKENS,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS,
    sc.GEN_AI_USAGE_COMPLETION_TOKENS,
    sc.OI_TOKEN_COMPLETION,
)
_TOTAL_TOKEN_KEYS = (sc.TOTAL_TOKENS, sc.OI_TOKEN_TOTAL)
_INPUT_PREVIEW_KEYS = (sc.INPUT_PREVIEW, sc.GEN_AI_INPUT_MESSAGES, sc.OI_INPUT_VALUE)
_OUTPUT_PREVIEW_KEYS = (sc.OUTPUT_PREVIEW, sc.GEN_AI_OUTPUT_MESSAGES, sc.OI_OUTPUT_VALUE)


def _inference_type(attributes: Mapping[str, Any], declared: Any) -> str | None:
    if declared is not None and declared != "":
        return declared if type(declared) is str else stringify(declared)
    operation = attributes.get(sc.GEN_AI_OPERATION_NAME)
    if isinstance(operation, str):
        found = sc.GEN_AI_OPERATIONS.get(operation)
        if found is not None:
            return found
    oi_kind = attributes.get(sc.OI_SPAN_KIND)
    if isinstance(oi_kind, str):
        return sc.OPENINFERENCE_KINDS.get(oi_kind.upper(), ("", ""))[1] or None
    return None


def _total_tokens(
    total: int | None, input_tokens: int | None, output_tokens: int | None, inference_type: Any
) -> int | None:
    if total is not None or input_tokens is None:
        return total
    if output_tokens is not None:
        both = input_tokens + output_tokens
        return both if both <= _INT64_MAX else None
    if inference_type == "embedding":
        return input_tokens  # embeddings have no output tokens
    return None


def _preview(value: Any) -> str | None:
    if value is None:
        return None
    text = value if type(value) is str else stringify(value)
    return text[:PREVIEW_CHARS]


def ml_fields(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The ML columns of a span, read from its attributes.

    Order of precedence: ``pyflare.*``, then OTel GenAI (``gen_ai.*``, the
    deprecated names included), then OpenInference (``llm.*``, ``input.value``…).
    Token counts that are absent or unusable (negative, not a whole number, a
    bool) stay ``None`` (never 0 for unknown).
    """
    inference_type = _inference_type(attributes, _first(attributes, sc.INFERENCE_TYPE))
    input_tokens = _as_int(_first(attributes, *_INPUT_TOKEN_KEYS))
    output_tokens = _as_int(_first(attributes, *_OUTPUT_TOKEN_KEYS))
    total_tokens = _as_int(_first(attributes, *_TOTAL_TOKEN_KEYS))
    return {
        "model_id": _first_str(attributes, *_MODEL_KEYS),
        "model_version": _first_str(attributes, sc.MODEL_VERSION),
        "inference_type": inference_type,
        "input_preview": _preview(_first(attributes, *_INPUT_PREVIEW_KEYS)),
        "output_preview": _preview(_first(attributes, *_OUTPUT_PREVIEW_KEYS)),
        "input_hash": _first_str(attributes, sc.INPUT_HASH),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": _total_tokens(total_tokens, input_tokens, output_tokens, inference_type),
        "cost_micros": _as_int(attributes.get(sc.COST_MICROS)),
    }


# The ML columns in SPAN_SCHEMA's order; ml_tuple() picks them out of an ml_fields() dict.
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
ml_tuple = itemgetter(*ML_COLUMNS)


#: Every attribute key ml_fields() reads: spans carrying none of them skip it, and
#: ml_fields() of only these keys equals ml_fields() of all attributes.
ML_KEYS = frozenset(
    {
        *_MODEL_KEYS,
        *_INPUT_TOKEN_KEYS,
        *_OUTPUT_TOKEN_KEYS,
        *_TOTAL_TOKEN_KEYS,
        *_INPUT_PREVIEW_KEYS,
        *_OUTPUT_PREVIEW_KEYS,
        sc.MODEL_VERSION,
        sc.INFERENCE_TYPE,
        sc.INPUT_HASH,
        sc.COST_MICROS,
        sc.GEN_AI_OPERATION_NAME,
        sc.OI_SPAN_KIND,
    }
)
_MULTI_KEY_LOOKUPS = (
    _MODEL_KEYS,
    _INPUT_TOKEN_KEYS,
    _OUTPUT_TOKEN_KEYS,
    _TOTAL_TOKEN_KEYS,
    _INPUT_PREVIEW_KEYS,
    _OUTPUT_PREVIEW_KEYS,
)


def ml_lookups(names: Collection[str]) -> tuple[str | None, ...] | None:
    """The first present key of each multi-key lookup, or None when no ML key is present."""
    present = ML_KEYS.intersection(names)
    if not present:
        return None
    return tuple(next((k for k in keys if k in present), None) for keys in _MULTI_KEY_LOOKUPS)


_MODEL_VERSION: str = sc.MODEL_VERSION
_INFERENCE_TYPE: str = sc.INFERENCE_TYPE
_INPUT_HASH: str = sc.INPUT_HASH
_COST_MICROS: str = sc.COST_MICROS


def ml_values(attributes: dict[str, Any], lookups: tuple[str | None, ...]) -> tuple[Any, ...]:
    """ml_fields() as a tuple, reading only the first present key of each lookup.

    Equal to ``ml_fields(attributes)`` (a test checks it); an empty value at a
    looked-up key, where precedence would fall through to the next key, takes
    ml_fields() itself. The common cases (str, int) are inlined: this runs per span.
    """
    get = attributes.get
    model_key, input_key, output_key, total_key, in_preview_key, out_preview_key = lookups
    model = get(model_key)  # type: ignore[arg-type]  # get(None) is None
    input_value = get(input_key)  # type: ignore[arg-type]
    output_value = get(output_key)  # type: ignore[arg-type]
    total_value = get(total_key)  # type: ignore[arg-type]
    in_preview = get(in_preview_key)  # type: ignore[arg-type]
    out_preview = get(out_preview_key)  # type: ignore[arg-type]
    if "" in (model, input_value, output_value, total_value, in_preview, out_preview):
        return ml_tuple(ml_fields(attributes))  # type: ignore[no-any-return]
    if model is not None and type(model) is not str:
        model = stringify(model)
    version = get(_MODEL_VERSION)
    if version is not None:
        version = None if version == "" else stringify(version)
    input_hash = get(_INPUT_HASH)
    if input_hash is not None:
        input_hash = None if input_hash == "" else stringify(input_hash)
    declared = get(_INFERENCE_TYPE)
    inference_type = (
        declared if type(declared) is str and declared else _inference_type(attributes, declared)
    )
    if input_value is not None and (
        type(input_value) is not int or not 0 <= input_value <= _INT64_MAX
    ):
        input_value = _as_int(input_value)
    if output_value is not None and (
        type(output_value) is not int or not 0 <= output_value <= _INT64_MAX
    ):
        output_value = _as_int(output_value)
    if total_value is not None:
        total_value = _as_int(total_value)
    if total_value is None and input_value is not None:
        total_value = _total_tokens(None, input_value, output_value, inference_type)
    if in_preview is not None:
        in_preview = in_preview[:PREVIEW_CHARS] if type(in_preview) is str else _preview(in_preview)
    if out_preview is not None:
        out_preview = (
            out_preview[:PREVIEW_CHARS] if type(out_preview) is str else _preview(out_preview)
        )
    cost = get(_COST_MICROS)
    return (
        model,
        version,
        inference_type,
        in_preview,
        out_preview,
        input_hash,
        input_value,
        output_value,
        total_value,
        None if cost is None else _as_int(cost),
    )
