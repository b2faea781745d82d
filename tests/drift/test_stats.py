"""Two-sample drift tests against scipy's reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from pyflare.drift import _ks
from pyflare.drift.stats import (
    DEFAULT_THRESHOLDS,
    benjamini_hochberg,
    chi2,
    hellinger,
    jensen_shannon,
    ks,
    ks_statistic,
    psi,
    wasserstein,
)
from pyflare.errors import DriftError, InvalidArgumentError


def samples(rng: np.random.Generator, n1: int, n2: int, case: int) -> tuple[np.ndarray, np.ndarray]:
    if case % 3 == 0:  # heavy ties, within and across samples
        return rng.integers(0, 5, n1).astype(float), rng.integers(0, 6, n2).astype(float)
    shift = rng.normal() * 0.5
    return rng.normal(size=n1), rng.normal(shift, 1.0 + 0.2 * (case % 2), size=n2)


def assert_same_as_scipy(a: np.ndarray, b: np.ndarray, method: str) -> None:
    ours = ks(a, b, method=method)  # type: ignore[arg-type]
    ref = stats.ks_2samp(a, b, method=method)
    assert ours.statistic == ref.statistic, (a.size, b.size, method)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=0), (a.size, b.size, method)
    assert ours.is_drifted == (ref.pvalue < 0.05)


def test_ks_equals_scipy_on_small_samples_with_ties_in_every_mode() -> None:
    rng = np.random.default_rng(7)
    for case in range(400):
        n1, n2 = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        a, b = samples(rng, n1, n2, case)
        for method in ("auto", "exact", "asymp"):
            if method == "asymp" and n1 == n2 == 1:
                continue
            assert_same_as_scipy(a, b, method)


@pytest.mark.parametrize(
    ("n1", "n2", "shift"),
    [
        (300, 450, 0.25),  # exact
        (10_000, 9_999, 0.05),  # the largest exact size
        (10_001, 20_000, 0.0),  # asymp, no drift
        (12_000, 15_000, 0.04),  # asymp through the vectorised Smirnov sum
        (30_000, 30_000, 0.1),  # asymp, strong drift (tiny p-value)
        (150_000, 120_000, 0.01),  # large enough for the threaded path
    ],
)
def test_ks_equals_scipy_on_larger_samples(n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1 + n2)
    a, b = rng.normal(size=n1), rng.normal(shift, 1.0, size=n2)
    assert_same_as_scipy(a, b, "auto")


def test_ks_statistic_alone_and_on_rounded_data() -> None:
    rng = np.random.default_rng(3)
    a, b = np.round(rng.normal(size=5000), 1), np.round(rng.normal(0.1, size=7000), 1)
    assert ks_statistic(a, b) == stats.ks_2samp(a, b, method="asymp").statistic


def test_vectorised_smirnov_sum_matches_scipy() -> None:
    for n in (141, 1000, 20_000):
        for nxx in (2.2, 3.0, 8.0, 50.0, 300.0):
            x = math.sqrt(nxx / n) * 1.000_37
            if x >= 0.5:
                continue
            assert _ks._smirnov_sf(n, x) == pytest.approx(special.smirnov(n, x), rel=1e-11)


def test_ks_reports_mode_location_sizes_and_score() -> None:
    result = ks([1.0, 2.0, 3.0, 4.0], [10.0, 11.0, 12.0, 13.0])
    assert result.method == "ks"
    assert result.statistic == 1.0
    assert result.details["p_value_mode"] == "exact"
    assert result.details["location"] == 4.0
    assert (result.reference_size, result.current_size) == (4, 4)
    assert result.is_drifted and result.score > 0.5
    same = ks(np.arange(50.0), np.arange(50.0))
    assert same.statistic == 0.0 and same.p_value == 1.0 and same.score == 0.0


def test_ks_asymptotic_with_one_value_each_is_an_error() -> None:
    with pytest.raises(DriftError, match="too few"):
        ks([1.0], [2.0], method="asymp")


def test_chi2_equals_scipy_contingency_and_reports_unseen_categories() -> None:
    reference = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    current = ["a"] * 30 + ["b"] * 30 + ["c"] * 10 + ["new"] * 25 + ["newer"] * 5
    result = chi2(reference, current)
    table = np.array([[50, 30, 20, 0, 0], [30, 30, 10, 25, 5]])
    ref = stats.chi2_contingency(table, correction=False)
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert result.is_drifted
    assert result.details["unseen_categories"] == ["new", "newer"]
    assert result.details["unseen_count"] == 30
    assert result.details["unseen_share"] == pytest.approx(0.3)
    assert result.details["missing_categories"] == []
    assert result.details["dof"] == 4
    assert (result.reference_size, result.current_size) == (100, 100)


def test_chi2_on_two_categories_is_the_two_proportion_z_test() -> None:
    reference = [True] * 120 + [False] * 80
    current = [True] * 95 + [False] * 105
    result = chi2(reference, current)
    p1, p2, pooled = 120 / 200, 95 / 200, 215 / 400
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (2 / 200))
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert result.details["missing_categories"] == []


def test_chi2_needs_two_categories() -> None:
    with pytest.raises(DriftError, match="at least two categories"):
        chi2(["x"] * 5, ["x"] * 7)


def test_psi_by_hand_with_empty_bins() -> None:
    reference = np.arange(100.0)  # quartile bins: [.., 24.75), [24.75, 49.5), ...
    current = np.concatenate([np.full(50, 10.0), np.full(50, 60.0)])
    result = psi(reference, current, bins=4)
    assert result.details["bin_edges"] == [24.75, 49.5, 74.25]
    r = np.array([0.25, 0.25, 0.25, 0.25])
    c = np.array([0.5, 1e-4, 0.5, 1e-4])
    assert result.statistic == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert result.details["band"] == "significant"
    assert result.is_drifted and result.threshold == DEFAULT_THRESHOLDS["psi"] == 0.1
    assert result.details["current_proportions"] == [0.5, 0.0, 0.5, 0.0]


def test_psi_bands_and_values_beyond_the_reference_range() -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(size=20_000)
    stable = psi(reference, rng.normal(size=20_000))
    assert stable.details["band"] == "stable" and not stable.is_drifted
    moved = psi(reference, rng.normal(3.0, size=20_000))  # mostly above the top edge
    assert moved.details["band"] == "significant"
    assert moved.details["current_proportions"][-1] > 0.9
    categorical = psi(["a", "b"] * 50, ["a"] * 100, categorical=True)
    assert categorical.details["category_values"] == ["a", "b"]
    assert categorical.is_drifted


def test_psi_merges_bins_on_tied_reference_values() -> None:
    reference = np.array([0.0] * 80 + [1.0, 2.0, 3.0, 4.0] * 5)
    result = psi(reference, reference)
    assert result.details["bins"] < 10
    assert result.statistic == 0.0


def test_jensen_shannon_and_hellinger_match_their_definitions() -> None:
    rng = np.random.default_rng(11)
    reference, current = rng.normal(size=3000), rng.normal(0.5, 1.3, size=2000)
    js = jensen_shannon(reference, current, bins=12)
    p = np.array(js.details["reference_proportions"])
    q = np.array(js.details["current_proportions"])
    assert js.statistic == pytest.approx(jensenshannon(p, q, base=2), rel=1e-12)
    h = hellinger(reference, current, bins=12)
    assert h.statistic == pytest.approx(math.sqrt(1 - np.sum(np.sqrt(p * q))), rel=1e-9)
    assert js.is_drifted and h.is_drifted
    same = jensen_shannon(["x", "y"] * 10, ["y", "x"] * 10, categorical=True)
    assert same.statistic == 0.0 and not same.is_drifted
    apart = hellinger(["x"] * 10, ["y"] * 10, categorical=True)
    assert apart.statistic == pytest.approx(1.0)


def test_wasserstein_equals_scipy_and_is_normalised() -> None:
    rng = np.random.default_rng(2)
    reference, current = rng.normal(0, 2.0, size=4000), rng.normal(0.5, 2.0, size=3000)
    raw = stats.wasserstein_distance(reference, current)
    result = wasserstein(reference, current)
    assert result.details["distance"] == pytest.approx(raw, rel=1e-12)
    assert result.statistic == pytest.approx(raw / np.std(reference), rel=1e-12)
    assert result.is_drifted  # a quarter of a standard deviation
    iqr = wasserstein(reference, current, normalize="iqr")
    q1, q3 = np.quantile(reference, [0.25, 0.75])
    assert iqr.statistic == pytest.approx(raw / (q3 - q1), rel=1e-12)
    none = wasserstein(reference, current, normalize="none", threshold=1.0)
    assert none.statistic == pytest.approx(raw) and not none.is_drifted


def test_wasserstein_refuses_a_reference_without_spread() -> None:
    with pytest.raises(DriftError, match="zero spread"):
        wasserstein([1.0, 1.0, 1.0], [1.0, 2.0])


@pytest.mark.parametrize("test", [ks, wasserstein, psi, jensen_shannon, hellinger])
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1.0, math.nan, 2.0], "NaN or infinite"),
        ([1.0, math.inf, 2.0], "NaN or infinite"),
        ([], "empty"),
        ([[1.0, 2.0], [3.0, 4.0]], "one-dimensional"),
        (["a", "b"], "must hold numbers"),
    ],
)
def test_numeric_tests_refuse_unusable_data(test, values, message) -> None:
    with pytest.raises(DriftError, match=message):
        test([0.5, 1.5, 2.5], values)
    with pytest.raises(DriftError, match=message):
        test(values, [0.5, 1.5, 2.5])


@pytest.mark.parametrize("values", [["a", None], ["a", math.nan], []])
def test_categorical_tests_refuse_missing_values_and_empty_samples(values) -> None:
    with pytest.raises(DriftError):
        chi2(["a", "b"], values)
    with pytest.raises(DriftError):
        psi(values, ["a", "b"], categorical=True)


def test_bad_thresholds_and_options_are_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        ks([1.0, 2.0], [3.0], threshold=1.5)
    with pytest.raises(InvalidArgumentError):
        ks([1.0, 2.0], [3.0], method="fast")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        psi([1.0, 2.0], [3.0], threshold=0.0)
    with pytest.raises(InvalidArgumentError):
        psi([1.0, 2.0], [3.0], bins=1)
    with pytest.raises(InvalidArgumentError):
        wasserstein([1.0, 2.0], [3.0], normalize="mad")  # type: ignore[arg-type]


def test_score_is_above_one_half_exactly_when_drifted() -> None:
    rng = np.random.default_rng(4)
    for shift in (0.0, 0.02, 0.1, 0.3, 1.0):
        a, b = rng.normal(size=2000), rng.normal(shift, size=2000)
        for test in (ks, wasserstein, psi, jensen_shannon, hellinger):
            result = test(a, b)
            assert 0.0 <= result.score <= 1.0
            assert result.is_drifted == (result.score >= 0.5), (test.__name__, shift)
        cats_a = rng.choice(["x", "y", "z"], size=500)
        cats_b = rng.choice(["x", "y", "z"], size=500, p=[0.5 - shift / 3, 0.3, 0.2 + shift / 3])
        result = chi2(cats_a, cats_b)
        assert result.is_drifted == (result.score > 0.5)


def test_benjamini_hochberg_equals_scipy() -> None:
    rng = np.random.default_rng(9)
    for m in (1, 2, 7, 50):
        p = rng.uniform(size=m) ** 3
        np.testing.assert_allclose(
            benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"), rtol=1e-12
        )
    assert benjamini_hochberg([]).size == 0
    with pytest.raises(InvalidArgumentError):
        benjamini_hochberg([0.5, 1.5])
