"""Drift detection: plain numpy/scipy functions the SDK, the server and notebooks share.

- Two-sample tests on one feature (:func:`ks`, :func:`chi2`, :func:`psi`,
  :func:`jensen_shannon`, :func:`wasserstein`, :func:`hellinger`), each a
  :class:`TestResult` with a 0..1 score that is 0.5 at the method's threshold.
- Many features at once: :func:`compare` / :func:`compare_features` → a
  :class:`DriftReport` (automatic method choice, Benjamini-Hochberg, skips
  with reasons, an HTML view in notebooks).
- Embeddings: :func:`centroid_cosine`, :func:`mmd` (permutation test),
  :func:`mmd_linear`, :func:`compare_embeddings`.
- Predictions and concept drift: :func:`prediction_drift`,
  :func:`conditional_drift`; change detectors on streams (:class:`DDM`,
  :class:`PageHinkley`, :class:`ADWIN`).
- Detectors with state and windows: :class:`FeatureDriftDetector`,
  :class:`EmbeddingDriftDetector`, :class:`PredictionDriftDetector`,
  :class:`WindowedDrift`.

``import pyflare`` does not import this package; ``from pyflare import drift`` does.
"""

from __future__ import annotations

from pyflare.drift.detector import (
    DriftDetector,
    EmbeddingDriftConfig,
    EmbeddingDriftDetector,
    FeatureDriftConfig,
    FeatureDriftDetector,
    PredictionDriftConfig,
    PredictionDriftDetector,
)
from pyflare.drift.embedding import centroid_cosine, compare_embeddings, mmd, mmd_linear
from pyflare.drift.features import compare_features
from pyflare.drift.prediction import conditional_drift, prediction_drift
from pyflare.drift.report import compare, report_html
from pyflare.drift.result import DriftReport, DriftType, FeatureSkip, TestResult
from pyflare.drift.stats import (
    benjamini_hochberg,
    chi2,
    hellinger,
    jensen_shannon,
    ks,
    psi,
    wasserstein,
)
from pyflare.drift.streams import ADWIN, DDM, PageHinkley, detect_changes
from pyflare.drift.windows import WindowedDrift, WindowReport

__all__ = [
    "ADWIN",
    "DDM",
    "DriftDetector",
    "DriftReport",
    "DriftType",
    "EmbeddingDriftConfig",
    "EmbeddingDriftDetector",
    "FeatureDriftConfig",
    "FeatureDriftDetector",
    "FeatureSkip",
    "PageHinkley",
    "PredictionDriftConfig",
    "PredictionDriftDetector",
    "TestResult",
    "WindowReport",
    "WindowedDrift",
    "benjamini_hochberg",
    "centroid_cosine",
    "chi2",
    "compare",
    "compare_embeddings",
    "compare_features",
    "conditional_drift",
    "detect_changes",
    "hellinger",
    "jensen_shannon",
    "ks",
    "mmd",
    "mmd_linear",
    "prediction_drift",
    "psi",
    "report_html",
    "wasserstein",
]
