"""Feature drift over many columns: the automatic choice, planted shifts, false alarms, skips."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pyflare.drift.features import compare_features
from pyflare.drift.result import DriftType
from pyflare.drift.stats import benjamini_hochberg
from pyflare.errors import DriftError, InvalidArgumentError


def skip_reasons(report) -> dict[str, str]:
    return {s.feature: s.reason for s in report.skipped}


def test_auto_detects_a_tenth_of_a_sigma_mean_shift_at_10k() -> None:
    for seed in range(3):
        rng = np.random.default_rng(seed)
        reference = pd.DataFrame({"x": rng.normal(size=10_000)})
        current = pd.DataFrame({"x": rng.normal(0.1, 1.0, size=10_000)})
        report = compare_features(reference, current)
        assert report.results["x"].method == "ks"
        assert report.is_drifted, seed
        assert report.drift_type is DriftType.FEATURE
        assert report.feature_breakdown()["x"] > 0.5


def test_no_shift_false_alarm_rate_stays_near_alpha() -> None:
    rng = np.random.default_rng(2024)
    trials, alarms = 200, {"num": 0, "cat": 0}
    for _ in range(trials):
        reference = {"num": rng.normal(size=150), "cat": rng.choice(list("abcd"), size=150)}
        current = {"num": rng.normal(size=120), "cat": rng.choice(list("abcd"), size=120)}
        report = compare_features(reference, current, alpha=0.05)
        assert report.results["num"].method == "ks"
        assert report.results["cat"].method == "chi2"
        for name in alarms:
            alarms[name] += report.results[name].is_drifted
    assert alarms["num"] / trials <= 0.07
    assert alarms["cat"] / trials <= 0.07


def test_auto_rule_by_type_size_and_distinct_values() -> None:
    rng = np.random.default_rng(1)
    big, small = 20_000, 500
    reference = {
        "small_num": rng.normal(size=small),
        "big_num": rng.normal(size=big)[:small],
        "discrete": rng.integers(0, 3, size=small),
        "flag": rng.random(small) < 0.3,
        "city": rng.choice(["paris", "oslo"], size=small),
    }
    choices = {k: compare_features(reference, reference, columns=[k]) for k in reference}
    assert {k: r.results[k].method for k, r in choices.items()} == {
        "small_num": "ks",
        "big_num": "ks",
        "discrete": "chi2",
        "flag": "chi2",
        "city": "chi2",
    }
    large = {
        "num": rng.normal(size=big),
        "cat": rng.choice(["a", "b", "c"], size=big),
        "discrete": rng.integers(0, 3, size=big),
    }
    report = compare_features(large, large)
    assert {k: r.method for k, r in report.results.items()} == {
        "num": "wasserstein",
        "cat": "jensen_shannon",
        "discrete": "jensen_shannon",
    }
    assert report.results["num"].details["choice"] == "auto: numeric, reference n > 10000"
    assert not report.is_drifted


def test_categoricals_with_new_categories() -> None:
    reference = pd.DataFrame({"model": ["gpt-4o"] * 300 + ["claude"] * 200})
    current = pd.DataFrame({"model": ["gpt-4o"] * 150 + ["claude"] * 100 + ["llama"] * 250})
    result = compare_features(reference, current).results["model"]
    assert result.method == "chi2" and result.is_drifted
    assert result.details["unseen_categories"] == ["llama"]
    assert result.details["unseen_count"] == 250


def test_missing_values_are_dropped_and_counted_infinities_skip() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=300)
    cur = rng.normal(size=300)
    cur[:7] = np.nan
    report = compare_features(
        {"x": ref, "bad": ref, "c": ["a", None, "b"] * 100},
        {"x": cur, "bad": np.append(cur[7:], [np.inf] * 7), "c": ["a", "b", "b"] * 100},
    )
    x = report.results["x"]
    assert (x.current_size, x.details["current_missing"], x.details["reference_missing"]) == (
        293,
        7,
        0,
    )
    assert report.results["c"].details["reference_missing"] == 100
    assert skip_reasons(report) == {"bad": "current holds 7 infinite values"}


def test_empty_constant_and_mismatched_columns_are_skipped_with_reasons() -> None:
    reference = {
        "ok": np.arange(100.0),
        "all_nan": np.arange(100.0),
        "constant": np.full(100, 3.0),
        "types": np.arange(100.0),
        "when": pd.date_range("2024-01-01", periods=100),
        "mixed": [1, "a"] * 50,
        "only_ref": np.arange(100.0),
        "empty": np.arange(100.0),
    }
    current = {
        "ok": np.arange(100.0) + 1,
        "all_nan": np.full(50, np.nan),
        "constant": np.full(80, 3.0),
        "types": ["a", "b"] * 50,
        "when": pd.date_range("2024-02-01", periods=100),
        "mixed": [1, "a"] * 50,
        "empty": np.array([], dtype=float),
        "only_cur": np.arange(10.0),
    }
    report = compare_features(reference, current)
    assert list(report.results) == ["ok"]
    reasons = skip_reasons(report)
    assert reasons["all_nan"] == "current has no values (50 missing)"
    assert reasons["constant"].startswith("constant (")
    assert reasons["types"] == "reference is numeric but current is categorical"
    assert "no drift test takes" in reasons["when"]
    assert "mixed" in reasons["mixed"]
    assert reasons["only_ref"] == "not in the current data"
    assert reasons["empty"] == "current has no values"
    assert reasons["only_cur"] == "not in the reference"
    frame = report.to_frame()
    assert len(frame) == 9 and frame["skipped_reason"].notna().sum() == 8


def test_a_constant_reference_still_sees_a_changed_current() -> None:
    report = compare_features({"x": np.zeros(200)}, {"x": np.r_[np.zeros(100), np.ones(100)]})
    assert report.results["x"].method == "chi2" and report.is_drifted


def test_nothing_comparable_is_an_error() -> None:
    with pytest.raises(DriftError, match="no feature could be compared"):
        compare_features({"x": []}, {"x": [1.0]})
    with pytest.raises(DriftError, match="mapping of column name"):
        compare_features([1, 2, 3], {"x": [1.0]})


def test_benjamini_hochberg_controls_many_features() -> None:
    rng = np.random.default_rng(8)
    reference = {f"f{i}": rng.normal(size=400) for i in range(20)}
    current = {f"f{i}": rng.normal(size=400) for i in range(20)}
    current["f0"] = current["f0"] + 1.0
    plain = compare_features(reference, current)
    adjusted = compare_features(reference, current, fdr="bh")
    assert adjusted.fdr == "benjamini_hochberg" and plain.fdr is None
    raw = [plain.results[f"f{i}"].p_value for i in range(20)]
    expected = benjamini_hochberg(raw)
    for i in range(20):
        result = adjusted.results[f"f{i}"]
        assert result.p_value == raw[i]
        assert result.details["p_value_adjusted"] == pytest.approx(expected[i])
        assert result.is_drifted == (expected[i] < 0.05)
    assert adjusted.drifted_features == ["f0"]
    assert len(adjusted.drifted_features) <= len(plain.drifted_features)
    assert "benjamini-hochberg" in adjusted.explanation


def test_methods_thresholds_columns_and_categorical_overrides() -> None:
    rng = np.random.default_rng(4)
    reference = {"a": rng.normal(size=1000), "b": rng.integers(0, 50, size=1000)}
    current = {"a": rng.normal(0.2, size=1000), "b": rng.integers(0, 50, size=1000)}
    report = compare_features(
        reference,
        current,
        method={"a": "psi"},
        thresholds={"psi": 0.5},
        categorical=["b"],
        bins=5,
    )
    assert report.results["a"].method == "psi" and report.results["a"].threshold == 0.5
    assert report.results["a"].details["bins"] == 5
    assert report.results["b"].method == "chi2"
    only_a = compare_features(reference, current, method="wasserstein", columns=["a"])
    assert list(only_a.results) == ["a"] and only_a.results["a"].method == "wasserstein"
    with pytest.raises(DriftError, match="ks needs numeric values"):
        compare_features({"c": ["x", "y"] * 5}, {"c": ["x"] * 10}, method="ks")


def test_pyarrow_tables_and_pandas_nullable_types() -> None:
    reference = pa.table({"n": pa.array([1.0, 2.0, None, 4.0] * 25), "s": ["u", "v"] * 50})
    current = pd.DataFrame(
        {
            "n": pd.array([1, 2, None, 4] * 25, dtype="Int64"),
            "s": pd.Categorical(["u", "v"] * 50),
        }
    )
    report = compare_features(reference, current)
    assert set(report.results) == {"n", "s"}
    assert report.results["n"].details["current_missing"] == 25
    assert not report.is_drifted


def test_min_size_skips_small_columns() -> None:
    report = compare_features(
        {"x": np.arange(50.0), "y": np.arange(50.0)},
        {"x": np.arange(5.0), "y": np.arange(40.0)},
        min_size=10,
    )
    assert skip_reasons(report) == {"x": "current has only 5 values (min_size=10)"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": 0.0},
        {"fdr": "bonferroni"},
        {"method": "t-test"},
        {"method": {"x": "nope"}},
        {"min_size": 0},
    ],
)
def test_bad_options_are_refused(kwargs) -> None:
    with pytest.raises(InvalidArgumentError):
        compare_features({"x": [1.0, 2.0]}, {"x": [1.0, 2.0]}, **kwargs)


def test_report_is_json_ready() -> None:
    import json

    rng = np.random.default_rng(6)
    report = compare_features(
        {"x": rng.normal(size=100), "c": ["a", "b"] * 50},
        {"x": rng.normal(size=100), "c": ["a", "c"] * 50},
    )
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["features"]["c"]["details"]["unseen_categories"] == ["c"]
    assert math.isclose(data["score"], report.score)
