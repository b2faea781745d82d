"""Windowed drift per model: records grouped into fixed time windows, each compared.

:class:`WindowedDrift` takes ``(timestamp_ns, model_id, values)`` records, keeps
a bounded sample of each model's open window and, as windows close, has the
model's detector (:mod:`pyflare.drift.detector`) compare each with its
reference. A window with too little data is reported as skipped with the
detector's reason, never given a made-up score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyflare.drift.detector import DriftDetector
from pyflare.drift.result import DriftReport
from pyflare.errors import DriftError

__all__ = ["WindowReport", "WindowedDrift"]


@dataclass(frozen=True)
class WindowReport:
    """One closed window of one model: a report, or the reason there is none."""

    model_id: str
    start_ns: int
    end_ns: int
    n_records: int
    """Records that fell in the window (``n_sampled`` of them were compared)."""
    n_sampled: int
    report: DriftReport | None
    skipped_reason: str | None = None


@dataclass
class _OpenWindow:
    start_ns: int
    values: list[Any] = field(default_factory=list)
    n_records: int = 0


class WindowedDrift:
    """Groups ``(timestamp_ns, model_id, values)`` records into fixed windows and computes each.

    ``detectors`` gives the detector for a model id: a mapping, or a function
    called once per new model (return None to ignore a model). A window
    ``[start, start + window_s)`` closes when a record at least ``lateness_s``
    past its end arrives (for any model) or on :meth:`flush`; each closed window
    of each model that had records yields one :class:`WindowReport`. Memory is
    bounded: a window keeps at most ``max_window_rows`` records per model (a
    uniform reservoir sample beyond that), at most ``max_models`` models are
    tracked, and records for windows already closed are counted in
    ``dropped_late`` and otherwise ignored.
    """

    def __init__(
        self,
        detectors: Mapping[str, DriftDetector] | Callable[[str], DriftDetector | None],
        *,
        window_s: float = 300.0,
        lateness_s: float = 0.0,
        max_window_rows: int = 10_000,
        max_models: int = 1_000,
        seed: int = 0,
    ) -> None:
        if window_s <= 0 or lateness_s < 0 or max_window_rows < 1 or max_models < 1:
            raise DriftError(
                "WindowedDrift needs window_s > 0, lateness_s >= 0, max_window_rows >= 1, "
                "max_models >= 1"
            )
        self._factory = detectors if callable(detectors) else dict(detectors).get
        self._detectors: dict[str, DriftDetector | None] = {}
        self.window_ns = int(window_s * 1e9)
        self.lateness_ns = int(lateness_s * 1e9)
        self.max_window_rows = max_window_rows
        self.max_models = max_models
        self._rng = np.random.default_rng(seed)
        self._open: dict[tuple[str, int], _OpenWindow] = {}
        self._closed_before_ns: int | None = None  # windows starting before this are closed
        self.dropped_late = 0
        self.dropped_models = 0

    def add(self, timestamp_ns: int, model_id: str, values: Any) -> list[WindowReport]:
        """Add one record; the reports of the windows this record's time closes."""
        start = timestamp_ns - timestamp_ns % self.window_ns
        if self._closed_before_ns is not None and start < self._closed_before_ns:
            self.dropped_late += 1
        elif self._detector(model_id) is None:
            pass
        else:
            window = self._open.get((model_id, start))
            if window is None:
                window = self._open[(model_id, start)] = _OpenWindow(start)
            window.n_records += 1
            if len(window.values) < self.max_window_rows:
                window.values.append(values)
            else:
                j = int(self._rng.integers(0, window.n_records))
                if j < self.max_window_rows:
                    window.values[j] = values
        watermark = timestamp_ns - self.lateness_ns
        closes = watermark - watermark % self.window_ns  # windows starting before it have ended
        if self._closed_before_ns is None or closes > self._closed_before_ns:
            self._closed_before_ns = closes
            return self._close(lambda s: s < closes)
        return []

    def add_many(self, records: Iterable[tuple[int, str, Any]]) -> list[WindowReport]:
        """Add records in order; the reports of every window they close."""
        reports: list[WindowReport] = []
        for timestamp_ns, model_id, values in records:
            reports += self.add(timestamp_ns, model_id, values)
        return reports

    def flush(self) -> list[WindowReport]:
        """Close every open window (at the end of a stream)."""
        if self._open:
            last = max(start for _, start in self._open) + self.window_ns
            self._closed_before_ns = max(self._closed_before_ns or last, last)
        return self._close(lambda s: True)

    def _detector(self, model_id: str) -> DriftDetector | None:
        if model_id not in self._detectors:
            if len(self._detectors) >= self.max_models:
                self.dropped_models += 1
                return None
            self._detectors[model_id] = self._factory(model_id)
        return self._detectors[model_id]

    def _close(self, due: Callable[[int], bool]) -> list[WindowReport]:
        keys = sorted((k for k in self._open if due(k[1])), key=lambda k: (k[1], k[0]))
        return [
            self._compute(model_id, self._open.pop((model_id, start))) for model_id, start in keys
        ]

    def _compute(self, model_id: str, window: _OpenWindow) -> WindowReport:
        detector = self._detectors[model_id]
        assert detector is not None  # windows are opened only for models with a detector
        report: DriftReport | None = None
        reason: str | None = None
        try:
            report = detector.compute(window.values)
        except DriftError as exc:
            reason = str(exc)
        return WindowReport(
            model_id=model_id,
            start_ns=window.start_ns,
            end_ns=window.start_ns + self.window_ns,
            n_records=window.n_records,
            n_sampled=len(window.values),
            report=report,
            skipped_reason=reason,
        )
