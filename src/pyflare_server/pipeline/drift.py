"""Drift on the span stream: a model's features, embeddings, predictions, LLM outputs, in windows.

A span takes part when it has a ``model_id`` and attributes
``pyflare.feature.<name>`` (its input features),
``pyflare.prediction.<label|score|value>`` (its output) or ``pyflare.embedding``
(its input's embedding vector, :data:`pyflare.semconv.EMBEDDING`). Spans are grouped per
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

Embedding drift (drift type ``embedding``): ``pyflare.embedding`` is a float-array
attribute, JSON such as ``[0.1, 0.2]`` in the row. A value that is not a flat
array of finite numbers is left out and counted (``skipped_embeddings``), and so
is a vector whose dimension differs from the most common one of its window; a
reference of another dimension skips the window with that reason. Auto-frozen
references keep at most 2000 vectors, and windows are compared with
:func:`~pyflare.drift.embedding.compare_embeddings` ``method="auto"``: the MMD
permutation test up to 10 000 pooled vectors, the linear-time MMD above.

The processor runs in the store writer's thread and never fails a batch: the
batch goes on unchanged and errors are logged and counted (:attr:`counters`).
Batches without drift attributes cost a scan of the attribute keys, and a
comparison of the ``inference_type`` column for LLM outputs.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pyflare.records import DRIFT_RESULT_SCHEMA
from pyflare_server.pipeline._drift_inputs import SpanInputs, drift_records, llm_outputs
from pyflare_server.pipeline._drift_model import ModelDrift

if TYPE_CHECKING:
    from pyflare.drift import DriftReport, WindowedDrift, WindowReport
    from pyflare.store.base import SpanStore
    from pyflare_server.receiver.decode import Signal
    from pyflare_server.settings import DriftSettings

__all__ = ["DriftCounters", "DriftProcessor", "drift_processor"]

logger = logging.getLogger(__name__)

_FEATURE_TYPE = "feature"
_PREDICTION_TYPE = "prediction"
_EMBEDDING_TYPE = "embedding"
# The streams of records, each its own WindowedDrift: LLM outputs are prediction drift.
_LLM_OUTPUTS = "llm"
_STREAM_TYPES = {
    _FEATURE_TYPE: _FEATURE_TYPE,
    _PREDICTION_TYPE: _PREDICTION_TYPE,
    _EMBEDDING_TYPE: _EMBEDDING_TYPE,
    _LLM_OUTPUTS: _PREDICTION_TYPE,
}


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
    skipped_embeddings: int = 0
    """Embedding vectors left out: unreadable, not finite, or of another dimension."""
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
    """Computes feature, embedding, prediction and LLM output drift per model from span batches.

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
        #: Called with the result rows after each successful write (the live stream).
        self.on_results: Callable[[list[dict[str, Any]]], None] | None = None
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

    def _models(self, stream: str, options: dict[str, Any]) -> Callable[[str], ModelDrift]:
        def make(model_id: str) -> ModelDrift:
            return ModelDrift(
                self.store,
                self.counters,
                model_id,
                _STREAM_TYPES[stream],
                llm=stream == _LLM_OUTPUTS,
                **options,
            )

        return make

    def process(self, signal: Signal, batch: pa.Table) -> pa.Table:
        """Feed the batch's drift attributes to the windows; ``batch`` goes on unchanged."""
        if signal != "traces" or batch.num_rows == 0:
            return batch
        try:
            records = drift_records(batch)
            outputs = llm_outputs(batch)
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

    def _add(self, records: list[SpanInputs]) -> None:
        reports: list[tuple[str, WindowReport]] = []
        for record in records:
            start, model_id = record.start_ns, record.model_id
            if record.prediction and len(self._classic_models) < self._max_models:
                self._classic_models.add(model_id)
            for stream, values in (
                (_FEATURE_TYPE, record.features),
                (_PREDICTION_TYPE, record.prediction),
            ):
                if values:
                    reports += self._add_one(stream, start, model_id, values)
            if record.embedding is not None:
                reports += self._add_one(_EMBEDDING_TYPE, start, model_id, record.embedding)
            self.counters.skipped_embeddings += record.bad_embedding
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
        self, stream: str, timestamp: int, model_id: str, values: Any
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
        listener = self.on_results
        if listener is not None:
            try:
                listener(rows)
            except Exception:  # telling subscribers never fails a write
                logger.exception("drift: notifying of %d drift results failed", len(rows))
        return written

    def __repr__(self) -> str:
        return f"DriftProcessor({asdict(self.counters)})"


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
