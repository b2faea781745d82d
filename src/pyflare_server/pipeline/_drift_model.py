"""One model's drift detector of one drift type, its reference kept in the store.

How references are chosen (the store's latest, or a frozen first window) is
described in :mod:`pyflare_server.pipeline.drift`.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

from pyflare_server.pipeline._drift_inputs import Embedding, number

if TYPE_CHECKING:
    from pyflare.drift import DriftReport, DriftType
    from pyflare.drift.detector import (
        EmbeddingDriftDetector,
        FeatureDriftDetector,
        PredictionDriftDetector,
    )
    from pyflare.drift.prediction import PredictionKind
    from pyflare.store.base import SpanStore
    from pyflare_server.pipeline.drift import DriftCounters

__all__ = ["ModelDrift"]

Detector: TypeAlias = "FeatureDriftDetector | EmbeddingDriftDetector | PredictionDriftDetector"

logger = logging.getLogger(__name__)

_FEATURE_TYPE = "feature"
_PREDICTION_TYPE = "prediction"
_EMBEDDING_TYPE = "embedding"
# Vectors an auto-frozen embedding reference keeps (its MMD kernel matrix is quadratic).
_EMBEDDING_REFERENCE = 2_000


class ModelDrift:
    """One model's detector of one drift type, its reference kept in the store."""

    def __init__(
        self,
        store: SpanStore,
        counters: DriftCounters,
        model_id: str,
        drift_type: str,
        *,
        llm: bool = False,
        auto_reference: bool,
        min_sample_size: int,
        reference_sample_size: int,
    ) -> None:
        self.store = store
        self.counters = counters
        self.model_id = model_id
        self.kind = drift_type
        self.llm = llm
        """LLM outputs (a prediction detector of kind ``llm``) rather than classic predictions."""
        self.auto_reference = auto_reference
        self.min_sample_size = min_sample_size
        self.reference_sample_size = reference_sample_size
        self.detector: Detector | None = None
        self._reference_ns: int | None = None

    @property
    def drift_type(self) -> DriftType:
        from pyflare.drift import DriftType

        return DriftType(self.kind)

    def compute(self, window: list[Any]) -> DriftReport:
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
            self.counters.errors += 1
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

    def _fits(self, detector: Detector) -> bool:
        """Whether a stored reference is this stream's: LLM outputs and classic ones don't mix."""
        from pyflare.drift.detector import PredictionDriftDetector

        if not isinstance(detector, PredictionDriftDetector):
            return True
        return (detector.config.kind == "llm") == self.llm

    def _refresh(self) -> None:
        """Take the store's latest reference when it is not the one in use."""
        counters = self.counters
        try:
            found = self.store.drift_reference(self.model_id, self.kind)
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

    def set_reference(self, window: list[Any]) -> None:
        """Freeze ``window`` as the model's reference, in memory and in the store."""
        from pyflare.drift.detector import FeatureDriftDetector
        from pyflare.errors import DriftError

        def refuse(rows: int) -> None:
            if rows < self.min_sample_size:
                raise DriftError(
                    f"insufficient data for a reference: the window has {rows} rows, "
                    f"min_sample_size is {self.min_sample_size}"
                )

        refuse(len(window))
        kind: PredictionKind = (
            "llm"
            if self.llm
            else "classification"
            if self.kind == _PREDICTION_TYPE and any("label" in v for v in window)
            else "regression"
        )
        detector = self._new_detector(kind)
        data = self._data(detector, window)
        n_samples = len(window) if isinstance(detector, FeatureDriftDetector) else len(data)
        refuse(n_samples)
        detector.set_reference(data)
        self.detector = detector
        self.counters.references_frozen += 1
        try:
            meta = self.store.put_drift_reference(
                self.model_id, self.kind, detector.state(), n_samples=n_samples
            )
            self._reference_ns = meta["created_at_ns"]
        except Exception:
            # Kept in memory: this process compares with it even though the store refused it.
            self.counters.errors += 1
            logger.exception("drift: storing the reference of %s failed", self.model_id)

    def _new_detector(self, kind: PredictionKind = "classification") -> Detector:
        from pyflare.drift import (
            EmbeddingDriftConfig,
            EmbeddingDriftDetector,
            FeatureDriftConfig,
            FeatureDriftDetector,
            PredictionDriftConfig,
            PredictionDriftDetector,
        )

        if self.kind == _EMBEDDING_TYPE:
            return EmbeddingDriftDetector(
                EmbeddingDriftConfig(
                    # MMD: a p-value, like the other drift types, and no false alarms
                    # from a centroid near the origin; the permutation test up to
                    # AUTO_PERMUTATION_MAX_ROWS pooled vectors, linear-time above.
                    metric="auto",
                    min_sample_size=self.min_sample_size,
                    # The kernel matrix grows with the square of the pooled rows.
                    reference_sample_size=min(self.reference_sample_size, _EMBEDDING_REFERENCE),
                )
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

    def _data(self, detector: Detector, window: list[Any]) -> Any:
        """The window as the detector reads it: feature rows, vectors, or one output per span."""
        from pyflare.drift.detector import EmbeddingDriftDetector, PredictionDriftDetector

        if isinstance(detector, EmbeddingDriftDetector):
            return self._vectors(window)
        if isinstance(detector, PredictionDriftDetector):
            if detector.config.kind == "llm":
                return window  # the output mappings _llm_outputs made
            if detector.config.kind == "classification":
                return [v["label"] for v in window if "label" in v]
            outputs = (v.get("score", v.get("value")) for v in window)
            return [o for o in (number(x) for x in outputs if x is not None) if o is not None]
        names = sorted({name for row in window for name in row})
        return {name: [row.get(name) for row in window] for name in names}

    def _vectors(self, window: list[Embedding]) -> npt.NDArray[np.float32]:
        """The window's vectors of its most common dimension; the others counted and left out."""
        dims = Counter(len(v) for v in window)
        dim = dims.most_common(1)[0][0] if dims else 0
        self.counters.skipped_embeddings += len(window) - dims[dim]
        kept = [v for v in window if len(v) == dim]
        return np.stack(kept) if kept else np.empty((0, dim), dtype=np.float32)
