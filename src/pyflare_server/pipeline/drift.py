"""Drift on the span stream: each model's features and predictions, in fixed windows.

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

The processor runs in the store writer's thread and never fails a batch: the
batch goes on unchanged and errors are logged and counted (:attr:`counters`).
Batches without drift attributes cost a scan of the attribute keys.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pyflare import semconv as sc
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


@dataclass
class DriftCounters:
    """What the processor has done since it started."""

    spans: int = 0
    """Spans with drift attributes and a model id that were read."""
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
    """Computes feature and prediction drift per model from span batches (see the module doc)."""

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
            drift_type: WindowedDrift(
                self._models(drift_type, options),
                window_s=window_s,
                lateness_s=lateness_s,
                max_window_rows=max_window_rows,
                max_models=max_models,
            )
            for drift_type in (_FEATURE_TYPE, _PREDICTION_TYPE)
        }

    def _models(self, drift_type: str, options: dict[str, Any]) -> Callable[[str], _ModelDrift]:
        def make(model_id: str) -> _ModelDrift:
            return _ModelDrift(self, model_id, drift_type, **options)

        return make

    def process(self, signal: Signal, batch: pa.Table) -> pa.Table:
        """Feed the batch's drift attributes to the windows; ``batch`` goes on unchanged."""
        if signal != "traces" or batch.num_rows == 0:
            return batch
        try:
            records = _drift_records(batch)
            if records:
                with self._lock:
                    self.counters.spans += len(records)
                    self._add(records)
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
            for drift_type, values in ((_FEATURE_TYPE, features), (_PREDICTION_TYPE, prediction)):
                if values:
                    windows = self._windows[drift_type]
                    late = windows.dropped_late
                    reports += [(drift_type, r) for r in windows.add(timestamp, model_id, values)]
                    self.counters.dropped_late += windows.dropped_late - late
        self._write(reports)

    def _write(self, reports: Sequence[tuple[str, WindowReport]]) -> int:
        rows = []
        for drift_type, window in reports:
            if window.report is None:
                self.counters.skipped_windows += 1
                logger.debug(
                    "drift: %s window of %s at %d skipped: %s",
                    drift_type,
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
        auto_reference: bool,
        min_sample_size: int,
        reference_sample_size: int,
    ) -> None:
        self.processor = processor
        self.model_id = model_id
        self.kind = drift_type
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
        detector = self._new_detector()
        detector.load_state(state)
        self.detector = detector

    def _refresh(self) -> None:
        """Take the store's latest reference when it is not the one in use."""
        counters = self.processor.counters
        try:
            found = self.processor.store.drift_reference(self.model_id, self.kind)
            if found is None or found[1]["created_at_ns"] == self._reference_ns:
                return
            state, meta = found
            self._reference_ns = meta["created_at_ns"]  # a bad state is not read again
            self.load_state(state)
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
            "classification" if any("label" in v for v in window) else "regression"
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
            )
        )

    @staticmethod
    def _data(detector: Any, window: list[dict[str, Any]]) -> Any:
        """The window as the detector reads it: feature rows, or one output per span."""
        from pyflare.drift.detector import PredictionDriftDetector

        if isinstance(detector, PredictionDriftDetector):
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
    found = []
    base = 0
    for chunk in column.chunks:
        offsets = np.asarray(chunk.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        first, last = int(offsets[0]), int(offsets[-1])
        # A slice's children are not sliced: cut them to its entries.
        keys = chunk.keys.slice(first, last - first)
        hits = pc.or_(pc.starts_with(keys, _FEATURE), pc.starts_with(keys, _PREDICTION))
        if pc.any(hits).as_py():
            positions = np.flatnonzero(hits.to_numpy(zero_copy_only=False))
            found.append(
                np.unique(np.searchsorted(offsets - first, positions, side="right") - 1) + base
            )
        base += len(chunk)
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


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
