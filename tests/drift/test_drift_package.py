"""pyflare.drift's public surface, and that `import pyflare` doesn't load it."""

from __future__ import annotations

from typing import Any

import numpy as np

from pyflare import drift


def test_public_names_are_pinned() -> None:
    assert sorted(drift.__all__) == drift.__all__
    assert drift.__all__ == [
        "ADWIN", "DDM", "DriftDetector", "DriftReport", "DriftType", "EmbeddingDriftConfig",
        "EmbeddingDriftDetector", "FeatureDriftConfig", "FeatureDriftDetector", "FeatureSkip",
        "PageHinkley", "PredictionDriftConfig", "PredictionDriftDetector", "TestResult",
        "WindowReport", "WindowedDrift", "benjamini_hochberg", "centroid_cosine", "chi2",
        "compare", "compare_embeddings", "compare_features", "conditional_drift",
        "detect_changes", "hellinger", "jensen_shannon", "ks", "mmd", "mmd_linear",
        "prediction_drift", "psi", "report_html", "wasserstein",
    ]  # fmt: skip
    for name in drift.__all__:
        assert getattr(drift, name) is not None


def test_import_pyflare_leaves_drift_and_scipy_alone(run_python: Any) -> None:
    result = run_python(
        """
        import json, sys
        import pyflare
        print("RESULT", json.dumps([m for m in ("scipy", "pyflare.drift") if m in sys.modules]))
        """
    )
    assert run_python.result(result.stdout) == []


def test_compare_end_to_end() -> None:
    rng = np.random.default_rng(7)
    reference = {"amount": rng.normal(0, 1, 5000), "country": rng.choice(["de", "fr"], 5000)}
    current = {"amount": rng.normal(0.5, 1, 5000), "country": rng.choice(["de", "fr"], 5000)}
    report = drift.compare(reference, current)
    assert report.is_drifted
    assert report.results["amount"].is_drifted
    assert not report.results["country"].is_drifted
    assert "amount" in report._repr_html_()
