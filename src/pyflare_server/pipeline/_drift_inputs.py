"""Reading drift inputs out of Arrow span batches: features, predictions, embeddings, LLM outputs.

What each input is and where it comes from is described in
:mod:`pyflare_server.pipeline.drift`. The readers look at the attribute keys
with vectorised Arrow kernels first and turn only the matching rows into
Python values, so a batch without drift inputs costs a scan of its keys.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pyflare import semconv as sc
from pyflare.drift.prediction import REFUSAL_PATTERN

__all__ = [
    "Embedding",
    "SpanInputs",
    "drift_records",
    "embedding_vector",
    "first_reason",
    "llm_outputs",
    "number",
    "output_text",
]

Embedding = npt.NDArray[np.float32]

_FEATURE = sc.FEATURE_PREFIX
_PREDICTION = sc.PREDICTION_PREFIX
# Where a span's finish reason is, in order; the first is an array (JSON in the row).
_FINISH_KEYS = ("gen_ai.response.finish_reasons", "gen_ai.completion.0.finish_reason")
_UNKNOWN_FINISH = "unknown"
_TEXT_KEYS = frozenset({"content", "text"})
# The opening of a text string in JSON that was cut short (its end may be missing).
_CUT_TEXT = re.compile(r'"(?:content|text)"\s*:\s*"((?:[^"\\]|\\.)*)')


class SpanInputs(NamedTuple):
    """What one span gives the drift streams (empty mappings and None: nothing)."""

    start_ns: int
    model_id: str
    features: dict[str, Any]
    prediction: dict[str, str]
    embedding: Embedding | None
    """The span's embedding vector, when it has a valid one."""
    bad_embedding: bool
    """The span has an embedding attribute that is not a finite vector of numbers."""


def drift_records(batch: pa.Table) -> list[SpanInputs]:
    """The inputs of the spans with drift attributes and a model id, by start time."""
    models = batch.column("model_id")
    if models.null_count == len(models):
        return []
    rows = _rows_with_drift_keys(batch.column("attributes"))
    if rows.size == 0:
        return []
    picked = batch.select(["start_time", "model_id", "attributes"]).take(pa.array(rows))
    picked = picked.filter(pc.is_valid(picked.column("model_id")))
    starts = picked.column("start_time").cast(pa.int64()).to_pylist()
    records = []
    for start, model_id, entries in zip(
        starts,
        picked.column("model_id").to_pylist(),
        picked.column("attributes").to_pylist(),
        strict=True,
    ):
        features: dict[str, Any] = {}
        prediction: dict[str, str] = {}
        embedding: Embedding | None = None
        bad = False
        for key, value in entries:
            if key.startswith(_FEATURE):
                features[key[len(_FEATURE) :]] = _feature_value(value)
            elif key.startswith(_PREDICTION):
                prediction[key[len(_PREDICTION) :]] = value
            elif key == sc.EMBEDDING:
                embedding = embedding_vector(value)
                bad = embedding is None
        records.append(SpanInputs(start, model_id, features, prediction, embedding, bad))
    records.sort(key=lambda r: r.start_ns)
    return records


def _rows_with_drift_keys(column: pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Indices of the rows whose attribute map has a feature, prediction or embedding key."""
    return _rows_with_keys(
        column,
        lambda keys: pc.or_(
            pc.or_(pc.starts_with(keys, _FEATURE), pc.starts_with(keys, _PREDICTION)),
            pc.equal(keys, sc.EMBEDDING),
        ),
    )


def embedding_vector(value: str | None) -> Embedding | None:
    """The vector of an array attribute (JSON ``[0.1, 0.2]`` in the row); None when invalid.

    Invalid: not JSON, not a non-empty flat array of numbers (booleans are not
    numbers), or a value that is not finite in float32.
    """
    if not value:
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if (
        not isinstance(parsed, list)
        or not parsed
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in parsed)
    ):
        return None
    with np.errstate(over="ignore"):
        vector = np.asarray(parsed, dtype=np.float32)
    return vector if bool(np.isfinite(vector).all()) else None


def _rows_with_keys(
    column: pa.ChunkedArray, match: Callable[[pa.Array], pa.Array]
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Indices of the rows whose attribute map has a key ``match`` marks."""
    return np.unique(_matching_entries(column, match)[0])


def _matching_entries(
    column: pa.ChunkedArray, match: Callable[[pa.Array], pa.Array]
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], list[pa.Array]]:
    """(row of each matching map entry, the matching entries' keys and values per chunk)."""
    rows = []
    entries: list[pa.Array] = []
    base = 0
    for chunk in column.chunks:
        offsets = np.asarray(chunk.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        first, last = int(offsets[0]), int(offsets[-1])
        # A slice's children are not sliced: cut them to its entries.
        keys = chunk.keys.slice(first, last - first)
        hits = match(keys)
        if pc.any(hits).as_py():
            positions = np.flatnonzero(hits.to_numpy(zero_copy_only=False))
            rows.append(np.searchsorted(offsets - first, positions, side="right") - 1 + base)
            taken = pa.array(positions)
            entries += [keys.take(taken), chunk.items.slice(first, last - first).take(taken)]
        base += len(chunk)
    found = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    return found, entries


def llm_outputs(batch: pa.Table) -> list[tuple[int, str, dict[str, Any]]]:
    """(start ns, model id, output) of the LLM spans that are outputs (module doc), by time."""
    kinds = batch.column("inference_type")
    if kinds.null_count == len(kinds):
        return []
    mask = pc.and_(
        pc.and_(pc.equal(kinds, "llm"), pc.is_valid(batch.column("model_id"))),
        pc.not_equal(batch.column("status_code"), "error"),
    ).fill_null(False)
    if not pc.any(mask).as_py():
        return []
    picked = batch.select(
        ["start_time", "model_id", "output_preview", "output_tokens", "attributes"]
    ).filter(mask)
    attributes = picked.column("attributes")
    classic = set(
        _rows_with_keys(attributes, lambda keys: pc.starts_with(keys, _PREDICTION)).tolist()
    )
    finishes = _finish_reasons(attributes)
    outputs = []
    for row, (start, model_id, preview, tokens) in enumerate(
        zip(
            picked.column("start_time").cast(pa.int64()).to_pylist(),
            picked.column("model_id").to_pylist(),
            picked.column("output_preview").to_pylist(),
            picked.column("output_tokens").to_pylist(),
            strict=True,
        )
    ):
        if row in classic:
            continue
        text, finish = output_text(preview)
        outputs.append(
            (
                start,
                model_id,
                {
                    "text": text,
                    "refused": REFUSAL_PATTERN.match(text) is not None,
                    "finish_reason": finishes.get(row) or finish or _UNKNOWN_FINISH,
                    "output_tokens": tokens,
                },
            )
        )
    outputs.sort(key=lambda r: r[0])
    return outputs


def _finish_reasons(attributes: pa.ChunkedArray) -> dict[int, str]:
    """Row -> the finish reason its attributes give (the first of ``_FINISH_KEYS`` found)."""
    wanted = pa.array(_FINISH_KEYS)
    rows, entries = _matching_entries(attributes, lambda keys: pc.is_in(keys, wanted))
    if rows.size == 0:
        return {}
    keys = [k for chunk in entries[0::2] for k in chunk.to_pylist()]
    values = [v for chunk in entries[1::2] for v in chunk.to_pylist()]
    found: dict[int, tuple[int, str]] = {}
    for row, key, value in zip(rows.tolist(), keys, values, strict=True):
        rank = _FINISH_KEYS.index(key)
        reason = first_reason(value)
        if reason and (row not in found or rank < found[row][0]):
            found[row] = (rank, reason)
    return {row: reason for row, (_, reason) in found.items()}


def first_reason(value: str | None) -> str | None:
    """The first finish reason of an array attribute (JSON ``["stop"]``) or a plain string."""
    if not value:
        return None
    if value.startswith("["):
        try:
            reasons = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        first = reasons[0] if isinstance(reasons, list) and reasons else None
        return first if isinstance(first, str) and first else None
    return value


def output_text(preview: str | None) -> tuple[str, str | None]:
    """The output's text and the finish reason found in it, from the row's preview.

    A preview holding JSON (GenAI output messages, a provider's response) gives
    its first ``content``/``text`` string and its first ``finish_reason``; one
    that was cut short is searched for the opening of that string. Any other
    preview is the text itself.
    """
    if not preview:
        return "", None
    if preview.lstrip()[:1] not in ("[", "{"):
        return preview, None
    try:
        parsed = orjson.loads(preview)
    except orjson.JSONDecodeError:
        found = _CUT_TEXT.search(preview)
        if found is None:
            return preview, None
        text = found.group(1)
        with contextlib.suppress(orjson.JSONDecodeError):  # an escape cut in two stays raw
            text = orjson.loads(f'"{text.rstrip(chr(92))}"')
        return text, None
    strings: dict[str, str] = {}
    _first_strings(parsed, strings)
    return strings.get("text", preview), strings.get("finish_reason")


def _first_strings(value: Any, found: dict[str, str]) -> None:
    """Fill ``found`` with the first text (``content``/``text``) and ``finish_reason`` strings.

    Depth first over the JSON value, stopping once both are found.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                if key in _TEXT_KEYS:
                    found.setdefault("text", item)
                elif key == "finish_reason":
                    found.setdefault("finish_reason", item)
            elif isinstance(item, dict | list):
                _first_strings(item, found)
            if len(found) == 2:
                return
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                _first_strings(item, found)
                if len(found) == 2:
                    return


def number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _feature_value(value: str | None) -> float | str | None:
    """A number when the string is one (non-finite ones are missing), else the category."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else None
