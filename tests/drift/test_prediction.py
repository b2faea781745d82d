"""Prediction drift on outputs, and concept drift as a change of P(y | x)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from pyflare.drift.prediction import (
    REFUSAL_PATTERN,
    conditional_drift,
    prediction_columns,
    prediction_drift,
)
from pyflare.drift.result import DriftType
from pyflare.errors import DriftError


def _labels(rng: np.random.Generator, p: list[float], n: int) -> list[str]:
    return list(rng.choice(["cat", "dog", "bird"], size=n, p=p))


def test_class_mix_shift_is_a_chi2_on_the_labels() -> None:
    rng = np.random.default_rng(0)
    ref = _labels(rng, [0.5, 0.3, 0.2], 2000)
    cur = _labels(rng, [0.4, 0.3, 0.3], 2000)
    report = prediction_drift(ref, cur, kind="classification")
    assert report.drift_type is DriftType.PREDICTION
    result = report.results["prediction"]
    assert result.method == "chi2"
    table = [
        [ref.count(c) for c in ("cat", "dog", "bird")],
        [cur.count(c) for c in ("cat", "dog", "bird")],
    ]
    expected = sps.chi2_contingency(table, correction=False)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-6)
    assert report.is_drifted


def test_labels_as_numbers_are_classes_and_missing_labels_are_errors() -> None:
    cols = prediction_columns([0, 1, 1, 2], "classification")
    assert cols["prediction"].tolist() == ["0", "1", "1", "2"]
    with pytest.raises(DriftError, match="missing"):
        prediction_columns([0, None, 1], "classification")
    with pytest.raises(DriftError):
        prediction_columns([], "classification")
    with pytest.raises(DriftError):
        prediction_columns([1.0], "ranking")  # type: ignore[arg-type]


def test_regression_values_shift_and_non_finite_values_are_errors() -> None:
    rng = np.random.default_rng(1)
    report = prediction_drift(rng.normal(0, 1, 3000), rng.normal(0.2, 1, 3000), kind="regression")
    assert report.is_drifted
    assert report.drift_type is DriftType.PREDICTION
    same = prediction_drift(rng.normal(0, 1, 3000), rng.normal(0, 1, 3000), kind="regression")
    assert not same.is_drifted
    with pytest.raises(DriftError, match="NaN or infinite"):
        prediction_drift([1.0, math.nan], [1.0, 2.0], kind="regression")


def test_llm_outputs_become_length_refusal_and_finish_reason_columns() -> None:
    outputs = [
        "Paris is the capital of France.",
        {"text": "I'm sorry, but I can't help with that.", "finish_reason": "stop"},
        {"content": "ok", "finish_reason": "length", "refused": False},
    ]
    cols = prediction_columns(outputs, "llm")
    assert cols["output_length"].tolist() == [31.0, 38.0, 2.0]
    assert cols["refusal"].tolist() == ["answered", "refused", "answered"]
    assert "finish_reason" not in cols  # the first output has none
    assert "output_tokens" not in cols
    with_reasons = prediction_columns(
        [{"text": "a", "finish_reason": "stop", "output_tokens": 3}] * 2, "llm"
    )
    assert with_reasons["finish_reason"].tolist() == ["stop", "stop"]
    assert with_reasons["output_tokens"].tolist() == [3.0, 3.0]
    with pytest.raises(DriftError):
        prediction_columns([42], "llm")


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("I'm sorry, but I cannot assist with that request.", True),
        ("I can't help with that.", True),
        ("As an AI language model, I don't have opinions.", True),
        ("I am unable to provide medical advice.", True),
        ("Sorry for the delay - here is the summary.", False),
        ("The answer is 42. I can't stress this enough.", False),
    ],
)
def test_refusal_pattern(text: str, refused: bool) -> None:
    assert bool(REFUSAL_PATTERN.match(text)) is refused


def test_a_rising_refusal_rate_and_finish_reason_mix_are_prediction_drift() -> None:
    rng = np.random.default_rng(2)

    def outputs(refusal: float, truncated: float, n: int) -> list[dict[str, object]]:
        return [
            {
                "text": "I can't help with that."
                if rng.random() < refusal
                else "x" * int(rng.integers(50, 150)),
                "finish_reason": "length" if rng.random() < truncated else "stop",
            }
            for _ in range(n)
        ]

    report = prediction_drift(outputs(0.02, 0.05, 2000), outputs(0.08, 0.05, 2000), kind="llm")
    assert report.drift_type is DriftType.PREDICTION
    assert set(report.results) == {"output_length", "refusal", "finish_reason"}
    assert report.results["refusal"].is_drifted
    assert not report.results["finish_reason"].is_drifted
    same = prediction_drift(outputs(0.02, 0.05, 2000), outputs(0.02, 0.05, 2000), kind="llm")
    assert not same.results["refusal"].is_drifted


def _concept(rng: np.random.Generator, n: int, p_high: float, x_mean: float = 0.0):  # type: ignore[no-untyped-def]
    """x ~ N(x_mean, 1); P(y = yes | x) is 0.3 below 0 and ``p_high`` above (a step at 0)."""
    x = rng.normal(x_mean, 1, n)
    y = np.where(rng.random(n) < np.where(x < 0, 0.3, p_high), "yes", "no")
    return x, y


def test_conditional_drift_finds_a_change_of_y_given_x_in_the_bins_where_it_changed() -> None:
    rng = np.random.default_rng(3)
    rx, ry = _concept(rng, 5000, p_high=0.7)
    cx, cy = _concept(rng, 5000, p_high=0.45)
    report = conditional_drift(rx, ry, cx, cy, bins=4)  # edges near -0.67, 0, 0.67
    assert report.drift_type is DriftType.CONCEPT
    assert report.is_drifted
    lows = [name for name in report.results if name.startswith("x in [-inf")]
    assert report.results[lows[0]].is_drifted is False
    assert report.drifted_features[-1].endswith(", inf)")
    assert "Bonferroni" in report.explanation


def test_conditional_drift_ignores_a_shift_of_x_alone() -> None:
    # P(x) moves (feature drift), P(y | x) does not: no concept drift in any seed.
    # (The step sits on a bin edge; a step inside a bin would mix with P(x).)
    alarms = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        rx, ry = _concept(rng, 3000, p_high=0.7)
        cx, cy = _concept(rng, 3000, p_high=0.7, x_mean=0.5)
        alarms += conditional_drift(rx, ry, cx, cy, bins=4).is_drifted
    assert alarms <= 2


def test_conditional_drift_regression_and_categorical_x() -> None:
    rng = np.random.default_rng(4)
    rx = rng.choice(["a", "b"], 4000)
    cx = rng.choice(["a", "b"], 4000)
    ry = rng.normal(0, 1, 4000)
    cy = rng.normal(0, 1, 4000) + (cx == "b") * 0.3
    report = conditional_drift(rx, ry, cx, cy, kind="regression")
    assert report.drifted_features == ["x = b"]
    assert report.results["x = b"].method == "ks"


def test_conditional_drift_skips_small_bins_and_rejects_bad_input() -> None:
    rng = np.random.default_rng(5)
    rx, ry = _concept(rng, 400, p_high=0.7)
    cx, cy = _concept(rng, 100, p_high=0.7)
    rare = np.array(["a"] * 390 + ["b"] * 10)
    report = conditional_drift(rare, ry, rare[:100], cy, min_bin_size=30)
    assert [s.feature for s in report.skipped] == ["x = b"]
    assert "too few rows (10 reference, 0 current < 30)" in report.skipped[0].reason
    with pytest.raises(DriftError, match="no feature could be compared"):
        conditional_drift(rx, ry, cx, cy, bins=5, min_bin_size=1000)
    with pytest.raises(DriftError, match="NaN"):
        conditional_drift(np.r_[rx[:-1], np.nan], ry, cx, cy)
    with pytest.raises(DriftError, match="same length"):
        conditional_drift(rx, ry[:-1], cx, cy)
