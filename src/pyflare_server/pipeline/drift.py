"""Drift on the span stream: each model's features, predictions and LLM outputs, in fixed windows.

A span takes part when it has a ``model_id`` and attributes
``pyflare.feature.<name>`` (its input features) or
``pyflare.prediction.<label|score|value>`` (its output). Spans are grouped per
model into windows ``[start, start + window_s)`` by start time (a
:class:`~pyflare.drift.WindowedDrift` per drift type); a window closes when a span
``lateness_s`` past its end arrives, or on :meth:`DriftProcessor.flush`. Each closed
window is compared with the model's reference and the report goes to the store's
``drift_results``.

The reference is the latest one in the store for the model and drift type
(``store.drift_reference``), checked again at every window, so an upload
through the API takes effect from the next window (with the config it was
uploaded with: its test and min_sample_size). A model without one takes
its first window with at least ``min_sample_size`` spans as its reference when
``auto_reference`` is on: that window is stored with ``put_drift_reference``
and not compared with itself (no result is written for it); later windows are
compared with it. Windows too small to compare, or without a reference, are
counted as skipped and write nothing: no window is given a made-up score.

Attribute values are strings in the row; a value that parses as a finite
number is a number, anything else (``true``, ``"US"``) a category, and a
missing feature is a missing value. Predictions: a ``label`` is compared as a
class (chi-squared), otherwise the ``score`` (or ``value``) as a number; a
reference uploaded through the API decides by its own kind.

LLM output drift (drift type ``prediction``, detector kind ``llm``): a span whose
``inference_type`` column is ``llm``, with a ``model_id`` and a status other than
``error``, gives one output. Error spans are left out: a failed call has no
output, and an error burst is the error rate's business, not a change in what the
model says. Per output:

- ``output_tokens``: the row's ``output_tokens`` column. It is compared when
  every span of the window (and of the reference) has it, which is the length
  measure previews cannot cap.
- ``output_length``: the characters of the output text, always compared. The
  text is the row's ``output_preview``; when that holds GenAI output messages or
  a provider response as JSON (``[{"role": ..., "parts": [{"content": ...}]}]``,
  ``{"choices": [{"message": {"content": ...}}]}``) the first ``content``/``text``
  string inside it. Previews are cut at 1000 characters
  (:data:`pyflare.records.PREVIEW_CHARS`), so longer outputs all count as
  1000-ish: use ``output_tokens`` for long outputs, and cut the texts of an
  uploaded reference the same way.
- ``refusal``: :data:`pyflare.drift.prediction.REFUSAL_PATTERN` on that text.
- ``finish_reason``: the first entry of ``gen_ai.response.finish_reasons`` (an
  OTel GenAI array attribute, stored as JSON such as ``["stop"]``; a plain
  string is taken as it is), else the legacy ``gen_ai.completion.0.finish_reason``,
  else a ``finish_reason`` inside the JSON preview (GenAI output messages and
  OpenAI-style responses carry one; OpenInference has no finish-reason
  attribute), else ``unknown``: a model that never reports one gives a constant
  column, which the report lists as skipped.

The model's ``prediction`` reference is shared with classic predictions: the
LLM outputs use a stored reference only when its kind is ``llm`` and classic
predictions only when it is not (the other one is ignored, and with
``auto_reference`` a window of the right kind is frozen in its place). Explicit
``pyflare.prediction.*`` attributes win: an LLM span carrying them, and every
LLM span of a model this process has seen with them, is read as a classic
prediction only, so one model never gets two prediction results per window.
Auto-frozen LLM references use Benjamini-Hochberg over their three or four
columns (two of them measure length).

The processor runs in the store writer's thread and never fails a batch: the
batch goes on unchanged and errors are logged and counted (:attr:`counters`).
Batches without drift attributes cost a scan of the attribute keys, and a
comparison of the ``inference_type`` column for LLM outputs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pyflare import semconv as sc
from pyflare.drift.prediction import REFUSAL_PATTERN
from pyflare.records import DRIFT_RESULT_SCHEMA

if TYPE_CHECKING:
    from pyflare.drift import DriftReport, DriftType, WindowedDrift, WindowReport
    from pyflare.drift.detector import FeatureDriftDetector, PredictionDriftDetector
    from pyflare.drift.prediction import PredictionKind
    from pyflare.store.base import SpanStore
    from pyflare_server.receiver.decode import Signal
    from pyflare_server.settings import DriftSettings

__all__ = ["DriftCounters", "DriftProcessor", "drift_processor"]

logger = logging.getLogger(__name__)

_FEATURE = sc.FEATURE_PREFIX
_PREDICTION = sc.PREDICTION_PREFIX
_FEATURE_TYPE = "feature"
_PREDICTION_TYPE = "prediction"
# The streams of records, each its own WindowedDrift: LLM outputs are prediction drift.
_LLM_OUTPUTS = "llm"
_STREAM_TYPES = {
    _FEATURE_TYPE: _FEATURE_TYPE,
    _PREDICTION_TYPE: _PREDICTION_TYPE,
    _LLM_OUTPUTS: _PREDICTION_TYPE,
}
# Where a span's finish reason is, in order; the first is an array (JSON in the row).
_FINISH_KEYS = ("gen_ai.response.finish_reasons", "gen_ai.completion.0.finish_reason")
_UNKNOWN_FINISH = "unknown"
_TEXT_KEYS = frozenset({"content", "text"})
# The opening of a text string in JSON that was cut short (its end may be missing).
_CUT_TEXT = re.compile(r'"(?:content|text)"\s*:\s*"((?:[^"\\]|\\.)*)')


@dataclass
class DriftCounters:
    """What the processor has done since it started."""

    spans: int = 0
    """Spans with drift attributes and a model id that were read."""
    llm_outputs: int = 0
    """LLM spans read for output drift (also counted in ``spans``)."""
    results: int = 0
    """Drift results written to the store."""
    skipped_windows: int = 0
    """Closed windows without a result (too small, no reference)."""
    references_frozen: int = 0
    """Windows that became a model's reference (auto_reference)."""
    references_loaded: int = 0
    """References read from the store (uploads, or frozen before a restart)."""
    dropped_late: int = 0
    """Spans for windows already closed."""
    errors: int = 0
    """Batches, windows or references that failed (each logged)."""


def drift_processor(settings: DriftSettings, store: SpanStore) -> DriftProcessor | None:
    """The processor ``collector.drift`` describes, or None when it is disabled."""
    if not settings.enabled:
        return None
    return DriftProcessor(
        store,
        window_s=settings.window_s,
        min_sample_size=settings.min_sample_size,
        auto_reference=settings.auto_reference,
    )


class DriftProcessor:
    """Computes feature, prediction and LLM output drift per model from span batches.

    See the module doc for what is read and how references are chosen.
    """

    name = "drift"

    def __init__(
        self,
        store: SpanStore,
        *,
        window_s: float = 300.0,
        min_sample_size: int = 100,
        auto_reference: bool = True,
        lateness_s: float = 30.0,
        max_window_rows: int = 10_000,
        max_models: int = 1_000,
        reference_sample_size: int = 10_000,
    ) -> None:
        # pyflare.drift loads scipy: only a server that computes drift pays for it.
        from pyflare.drift import WindowedDrift
        from pyflare.errors import DriftError

        if min_sample_size < 1 or reference_sample_size < 1:
            raise DriftError(
                "the drift processor needs min_sample_size and reference_sample_size >= 1"
            )
        self.store = store
        self.window_s = window_s
        self.min_sample_size = min_sample_size
        self.auto_reference = auto_reference
        self.counters = DriftCounters()
        self._lock = threading.Lock()
        options = {
            "auto_reference": auto_reference,
            "min_sample_size": min_sample_size,
            "reference_sample_size": reference_sample_size,
        }
        self._windows: dict[str, WindowedDrift] = {
            stream: WindowedDrift(
                self._models(stream, options),
                window_s=window_s,
                lateness_s=lateness_s,
                max_window_rows=max_window_rows,
                max_models=max_models,
            )
            for stream in _STREAM_TYPES
        }
        # Models seen with pyflare.prediction.* attributes: their LLM spans are not outputs.
        self._classic_models: set[str] = set()
        self._max_models = max_models

    def _models(self, stream: str, options: dict[str, Any]) -> Callable[[str], _ModelDrift]:
        def make(model_id: str) -> _ModelDrift:
            return _ModelDrift(
                self, model_id, _STREAM_TYPES[stream], llm=stream == _LLM_OUTPUTS, **options
            )

        return make

    def process(self, signal: Signal, batch: pa.Table) -> pa.Table:
        """Feed the batch's drift attributes to the windows; ``batch`` goes on unchanged."""
        if signal != "traces" or batch.num_rows == 0:
            return batch
        try:
            records = _drift_records(batch)
            outputs = _llm_outputs(batch)
            if records or outputs:
                with self._lock:
                    self.counters.spans += len(records)
                    self._add(records)
                    self._add_outputs(outputs)
        except Exception:
            # Drift is a by-product: the spans are stored whatever happens here.
            self.counters.errors += 1
            logger.exception("drift: a batch of %d spans could not be read", batch.num_rows)
        return batch

    def flush(self) -> int:
        """Close every open window now (at shutdown); the number of results written."""
        with self._lock:
            reports = [(t, r) for t, windows in self._windows.items() for r in windows.flush()]
            return self._write(reports)

    def _add(self, records: list[tuple[int, str, dict[str, Any], dict[str, str]]]) -> None:
        reports: list[tuple[str, WindowReport]] = []
        for timestamp, model_id, features, prediction in records:
            if prediction and len(self._classic_models) < self._max_models:
                self._classic_models.add(model_id)
            for stream, values in ((_FEATURE_TYPE, features), (_PREDICTION_TYPE, prediction)):
                if values:
                    reports += self._add_one(stream, timestamp, model_id, values)
        self._write(reports)

    def _add_outputs(self, outputs: list[tuple[int, str, dict[str, Any]]]) -> None:
        reports: list[tuple[str, WindowReport]] = []
        for timestamp, model_id, output in outputs:
            if model_id not in self._classic_models:
                self.counters.spans += 1
                self.counters.llm_outputs += 1
                reports += self._add_one(_LLM_OUTPUTS, timestamp, model_id, output)
        self._write(reports)

    def _add_one(
        self, stream: str, timestamp: int, model_id: str, values: dict[str, Any]
    ) -> list[tuple[str, WindowReport]]:
        windows = self._windows[stream]
        late = windows.dropped_late
        reports = [(stream, r) for r in windows.add(timestamp, model_id, values)]
        self.counters.dropped_late += windows.dropped_late - late
        return reports

    def _write(self, reports: Sequence[tuple[str, WindowReport]]) -> int:
        rows = []
        for stream, window in reports:
            if window.report is None:
                self.counters.skipped_windows += 1
                logger.debug(
                    "drift: %s window of %s at %d skipped: %s",
                    stream,
                    window.model_id,
                    window.start_ns,
                    window.skipped_reason,
                )
            else:
                rows.append(_result_row(window, window.report))
        if not rows:
            return 0
        try:
            written = self.store.write_drift_results(
                pa.Table.from_pylist(rows, schema=DRIFT_RESULT_SCHEMA)
            )
        except Exception:
            self.counters.errors += 1
            logger.exception("drift: writing %d drift results failed", len(rows))
            return 0
        self.counters.results += written
        return written

    def __repr__(self) -> str:
        return f"DriftProcessor({asdict(self.counters)})"


class _ModelDrift:
    """One model's detector of one drift type, its reference kept in the store."""

    def __init__(
        self,
        processor: DriftProcessor,
        model_id: str,
        drift_type: str,
        *,
        llm: bool = False,
        auto_reference: bool,
        min_sample_size: int,
        reference_sample_size: int,
    ) -> None:
        self.processor = processor
        self.model_id = model_id
        self.kind = drift_type
        self.llm = llm
        """LLM outputs (a prediction detector of kind ``llm``) rather than classic predictions."""
        self.auto_reference = auto_reference
        self.min_sample_size = min_sample_size
        self.reference_sample_size = reference_sample_size
        self.detector: FeatureDriftDetector | PredictionDriftDetector | None = None
        self._reference_ns: int | None = None

    @property
    def drift_type(self) -> DriftType:
        from pyflare.drift import DriftType

        return DriftType(self.kind)

    def compute(self, window: list[dict[str, Any]]) -> DriftReport:
        """The window's report; DriftError (a skipped window) when there is none."""
        from pyflare.errors import DriftError

        self._refresh()
        if self.detector is None:
            if not self.auto_reference:
                raise DriftError(
                    f"model {self.model_id!r} has no {self.kind} reference; upload one "
                    f"(POST /api/v1/drift/{self.model_id}/reference)"
                )
            self.set_reference(window)
            raise DriftError("this window became the model's reference (auto_reference)")
        try:
            return self.detector.compute(self._data(self.detector, window))
        except DriftError:
            raise
        except Exception as exc:
            # Anything else is a bug or odd data: skip this window, keep the others.
            self.processor.counters.errors += 1
            logger.exception("drift: the %s window of %s failed", self.kind, self.model_id)
            raise DriftError(f"computing drift failed: {exc!r}") from exc

    def state(self) -> bytes:
        from pyflare.errors import DriftError

        if self.detector is None:
            raise DriftError(f"model {self.model_id!r} has no {self.kind} reference yet")
        return self.detector.state()

    def load_state(self, state: bytes) -> None:
        from pyflare.errors import DriftError

        detector = self._new_detector()
        detector.load_state(state)
        if not self._fits(detector):
            kind = "LLM outputs" if self.llm else "classic predictions"
            raise DriftError(f"this prediction reference is not for {kind}")
        self.detector = detector

    def _fits(self, detector: FeatureDriftDetector | PredictionDriftDetector) -> bool:
        """Whether a stored reference is this stream's: LLM outputs and classic ones don't mix."""
        from pyflare.drift.detector import PredictionDriftDetector

        if not isinstance(detector, PredictionDriftDetector):
            return True
        return (detector.config.kind == "llm") == self.llm

    def _refresh(self) -> None:
        """Take the store's latest reference when it is not the one in use."""
        counters = self.processor.counters
        try:
            found = self.processor.store.drift_reference(self.model_id, self.kind)
            if found is None or found[1]["created_at_ns"] == self._reference_ns:
                return
            state, meta = found
            self._reference_ns = meta["created_at_ns"]  # a bad state is not read again
            detector = self._new_detector()
            detector.load_state(state)
            if not self._fits(detector):
                logger.info(
                    "drift: the prediction reference of %s is for %s, not %s; not used here",
                    self.model_id,
                    "classic predictions" if self.llm else "LLM outputs",
                    "LLM outputs" if self.llm else "classic predictions",
                )
                return
            self.detector = detector
        except Exception:
            counters.errors += 1
            logger.exception(
                "drift: the %s reference of %s is unreadable", self.kind, self.model_id
            )
            return
        counters.references_loaded += 1

    def set_reference(self, window: list[dict[str, Any]]) -> None:
        """Freeze ``window`` as the model's reference, in memory and in the store."""
        from pyflare.drift.detector import PredictionDriftDetector
        from pyflare.errors import DriftError

        if len(window) < self.min_sample_size:
            raise DriftError(
                f"insufficient data for a reference: the window has {len(window)} rows, "
                f"min_sample_size is {self.min_sample_size}"
            )
        kind: PredictionKind = (
            "llm"
            if self.llm
            else "classification"
            if any("label" in v for v in window)
            else "regression"
        )
        detector = self._new_detector(kind)
        data = self._data(detector, window)
        detector.set_reference(data)
        self.detector = detector
        self.processor.counters.references_frozen += 1
        n_samples = len(data) if isinstance(detector, PredictionDriftDetector) else len(window)
        try:
            meta = self.processor.store.put_drift_reference(
                self.model_id, self.kind, detector.state(), n_samples=n_samples
            )
            self._reference_ns = meta["created_at_ns"]
        except Exception:
            # Kept in memory: this process compares with it even though the store refused it.
            self.processor.counters.errors += 1
            logger.exception("drift: storing the reference of %s failed", self.model_id)

    def _new_detector(
        self, kind: PredictionKind = "classification"
    ) -> FeatureDriftDetector | PredictionDriftDetector:
        from pyflare.drift import (
            FeatureDriftConfig,
            FeatureDriftDetector,
            PredictionDriftConfig,
            PredictionDriftDetector,
        )

        if self.kind == _FEATURE_TYPE:
            return FeatureDriftDetector(
                FeatureDriftConfig(
                    min_sample_size=self.min_sample_size,
                    reference_sample_size=self.reference_sample_size,
                    # A model has many features and a window every few minutes:
                    # without it, some feature would cry drift most days.
                    fdr="bh",
                )
            )
        return PredictionDriftDetector(
            PredictionDriftConfig(
                kind=kind,
                min_sample_size=self.min_sample_size,
                reference_sample_size=self.reference_sample_size,
                # Three or four columns, two of them lengths: keep the false alarms at alpha.
                fdr="bh" if kind == "llm" else None,
            )
        )

    @staticmethod
    def _data(detector: Any, window: list[dict[str, Any]]) -> Any:
        """The window as the detector reads it: feature rows, or one output per span."""
        from pyflare.drift.detector import PredictionDriftDetector

        if isinstance(detector, PredictionDriftDetector):
            if detector.config.kind == "llm":
                return window  # the output mappings _llm_outputs made
            if detector.config.kind == "classification":
                return [v["label"] for v in window if "label" in v]
            outputs = (v.get("score", v.get("value")) for v in window)
            return [o for o in (_number(x) for x in outputs if x is not None) if o is not None]
        names = sorted({name for row in window for name in row})
        return {name: [row.get(name) for row in window] for name in names}


def _drift_records(batch: pa.Table) -> list[tuple[int, str, dict[str, Any], dict[str, str]]]:
    """(start ns, model id, features, prediction) of the spans with drift attributes, by time."""
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
        for key, value in entries:
            if key.startswith(_FEATURE):
                features[key[len(_FEATURE) :]] = _feature_value(value)
            elif key.startswith(_PREDICTION):
                prediction[key[len(_PREDICTION) :]] = value
        records.append((start, model_id, features, prediction))
    records.sort(key=lambda r: r[0])
    return records


def _rows_with_drift_keys(column: pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Indices of the rows whose attribute map has a feature or prediction key."""
    return _rows_with_keys(
        column,
        lambda keys: pc.or_(pc.starts_with(keys, _FEATURE), pc.starts_with(keys, _PREDICTION)),
    )


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


def _llm_outputs(batch: pa.Table) -> list[tuple[int, str, dict[str, Any]]]:
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
        text, finish = _output_text(preview)
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
        reason = _first_reason(value)
        if reason and (row not in found or rank < found[row][0]):
            found[row] = (rank, reason)
    return {row: reason for row, (_, reason) in found.items()}


def _first_reason(value: str | None) -> str | None:
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


def _output_text(preview: str | None) -> tuple[str, str | None]:
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


def _number(value: str) -> float | None:
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


def _result_row(window: WindowReport, report: DriftReport) -> dict[str, Any]:
    methods = {r.method for r in report.results.values()}
    return {
        "model_id": window.model_id,
        "drift_type": report.drift_type.value,
        "window_start": window.start_ns,
        "window_end": window.end_ns,
        "computed_at": report.computed_at_ns,
        "score": report.score,
        "threshold": report.threshold,
        "is_drifted": report.is_drifted,
        "method": methods.pop() if len(methods) == 1 else None,
        "feature_scores": list(report.feature_breakdown().items()),
        "explanation": report.explanation,
        "n_reference": max(r.reference_size for r in report.results.values()),
        "n_current": window.n_sampled,
        "details": json.dumps(report.to_dict()),
    }
