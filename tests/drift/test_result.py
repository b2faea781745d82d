"""Drift result types: the common score scale, reports, frames and JSON."""

from __future__ import annotations

import json
import math

import pytest

from pyflare.drift.result import (
    SCORE_THRESHOLD,
    DriftReport,
    DriftType,
    FeatureSkip,
    TestResult,
    distance_score,
    p_value_score,
)
from pyflare.errors import DriftError, InvalidArgumentError


def result(
    method: str = "ks", *, score: float = 0.2, drifted: bool = False, **kw: object
) -> TestResult:
    fields: dict[str, object] = {
        "method": method,
        "statistic": 0.03,
        "p_value": 0.4,
        "threshold": 0.05,
        "is_drifted": drifted,
        "score": score,
        "reference_size": 100,
        "current_size": 80,
    }
    fields.update(kw)
    return TestResult(**fields)  # type: ignore[arg-type]


def test_p_value_score_is_anchored_at_alpha() -> None:
    assert p_value_score(1.0, 0.05) == 0.0
    assert p_value_score(0.05, 0.05) == pytest.approx(0.5)
    assert p_value_score(0.0, 0.05) == 1.0
    assert p_value_score(0.01, 0.05) > 0.5 > p_value_score(0.2, 0.05)
    scores = [p_value_score(p, 0.01) for p in (1.0, 0.5, 0.1, 0.01, 1e-5, 1e-300)]
    assert scores == sorted(scores)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_distance_score_is_anchored_at_the_threshold() -> None:
    assert distance_score(0.0, 0.1) == 0.0
    assert distance_score(0.1, 0.1) == 0.5
    assert distance_score(0.3, 0.1) == pytest.approx(0.75)
    assert distance_score(math.inf, 0.1) == 1.0


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (p_value_score, (0.5, 0.0)),
        (p_value_score, (0.5, 1.0)),
        (p_value_score, (math.nan, 0.05)),
        (distance_score, (0.5, 0.0)),
        (distance_score, (math.nan, 0.1)),
    ],
)
def test_score_mappings_reject_unusable_input(call, args) -> None:
    with pytest.raises(InvalidArgumentError):
        call(*args)


def test_a_score_outside_0_1_is_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        result(score=1.5)


def test_report_takes_the_worst_feature_and_any_drift() -> None:
    report = DriftReport.from_results(
        DriftType.FEATURE,
        {
            "age": result(score=0.2),
            "income": result("wasserstein", score=0.7, drifted=True, p_value=None, threshold=0.1),
        },
        [FeatureSkip("name", "constant")],
        computed_at_ns=123,
    )
    assert report.score == 0.7
    assert report.threshold == SCORE_THRESHOLD
    assert report.is_drifted
    assert report.drifted_features == ["income"]
    assert report.feature_breakdown() == {"age": 0.2, "income": 0.7}
    assert "1 of 2 compared features drifted" in report.explanation
    assert "income (wasserstein=0.03 >= 0.1)" in report.explanation
    assert "1 skipped (name)" in report.explanation
    assert report.computed_at_ns == 123


def test_report_without_drift() -> None:
    report = DriftReport.from_results("feature", {"a": result()})  # type: ignore[arg-type]
    assert report.drift_type is DriftType.FEATURE
    assert not report.is_drifted
    assert report.fdr is None
    assert report.computed_at_ns > 0


def test_a_report_with_nothing_compared_is_an_error_not_a_zero() -> None:
    with pytest.raises(DriftError, match=r"no feature could be compared.*a: constant"):
        DriftReport.from_results(DriftType.FEATURE, {}, [FeatureSkip("a", "constant")])


def test_frame_has_a_row_per_feature_including_skips() -> None:
    import pandas as pd

    report = DriftReport.from_results(
        DriftType.FEATURE, {"a": result()}, [FeatureSkip("b", "all values missing")]
    )
    frame = report.to_frame()
    assert list(frame.index) == ["a", "b"]
    assert frame.loc["a", "method"] == "ks"
    assert frame.loc["a", "p_value"] == 0.4
    assert frame.loc["b", "skipped_reason"] == "all values missing"
    assert pd.isna(frame.loc["a", "skipped_reason"])
    assert "score" in frame.columns and "is_drifted" in frame.columns


def test_dict_is_json_ready() -> None:
    import numpy as np

    details = {
        "edges": np.array([-np.inf, 0.5, np.inf]),
        "count": np.int64(3),
        "unseen": ("x", "y"),
    }
    report = DriftReport.from_results(
        DriftType.PREDICTION, {"a": result(details=details, statistic=np.float64(0.25))}
    )
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)
    back = json.loads(text)
    assert back["drift_type"] == "prediction"
    assert back["feature_breakdown"] == {"a": 0.2}
    assert back["features"]["a"]["details"] == {
        "edges": [None, 0.5, None],
        "count": 3,
        "unseen": ["x", "y"],
    }
    assert back["features"]["a"]["statistic"] == 0.25
    assert back["skipped"] == []
    assert set(back) >= {"score", "threshold", "is_drifted", "explanation", "computed_at_ns"}


def test_test_result_is_not_collected_by_pytest() -> None:
    assert TestResult.__test__ is False
