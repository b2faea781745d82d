"""Two-sample drift tests: ``f(reference, current, *, threshold=...) -> TestResult``.

| method            | data        | statistic                         | drifted when       | default threshold |
|-------------------|-------------|-----------------------------------|--------------------|-------------------|
| ``ks``            | numeric     | KS D (as ``scipy.stats.ks_2samp``) | p < threshold      | 0.05 (alpha)      |
| ``chi2``          | categorical | Pearson chi-squared, 2 x K table  | p < threshold      | 0.05 (alpha)      |
| ``psi``           | either      | population stability index        | PSI >= threshold   | 0.1               |
| ``jensen_shannon``| either      | JS distance, base 2 (0..1)        | JS >= threshold    | 0.1               |
| ``wasserstein``   | numeric     | W1 / reference std (normalised)   | W >= threshold     | 0.1               |
| ``hellinger``     | either      | Hellinger distance (0..1)         | H >= threshold     | 0.1               |

The distance thresholds are the customary ones (Evidently uses the same
defaults): PSI below 0.1 is stable, 0.1-0.25 a moderate shift, above 0.25 a
significant one (``details["band"]``). Every result's ``score`` is on the common
0..1 scale of :mod:`pyflare.drift.result`, where 0.5 is the threshold: p-value
tests map through ``p_value_score``, the others through ``distance_score``.

Binned methods (PSI, JS, Hellinger) on numeric data use ``bins`` reference
quantile bins (open-ended at both sides so current values outside the
reference's range still count); with ``categorical=True`` each distinct value is
a bin. Inputs must be non-empty and finite: NaN, inf and None raise
``DriftError`` (drop missing values first; ``compare_features`` does, and counts
them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from pyflare.drift import _ks
from pyflare.drift.result import TestResult, distance_score, p_value_score
from pyflare.errors import DriftError, InvalidArgumentError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "benjamini_hochberg",
    "chi2",
    "hellinger",
    "jensen_shannon",
    "ks",
    "ks_statistic",
    "psi",
    "wasserstein",
]

DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chi2": 0.05,
    "psi": 0.1,
    "jensen_shannon": 0.1,
    "wasserstein": 0.1,
    "hellinger": 0.1,
}

PSI_EPSILON = 1e-4
"""Proportion given to a PSI bin that is empty on one side, so the log stays finite."""

_EXACT_KS_MAX_N = 10_000  # as ks_2samp's method="auto": exact p-values up to this size
_MAX_LISTED_CATEGORIES = 50  # details list per-category proportions up to this many

FloatArray = npt.NDArray[np.float64]


# -- Kolmogorov-Smirnov ------------------------------------------------------------


def ks(
    reference: Iterable[float] | npt.ArrayLike,
    current: Iterable[float] | npt.ArrayLike,
    *,
    threshold: float = DEFAULT_THRESHOLDS["ks"],
    method: Literal["auto", "exact", "asymp"] = "auto",
) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test (two-sided); ``threshold`` is the significance level.

    The statistic and p-value are those of ``scipy.stats.ks_2samp`` with the same
    ``method`` (``"auto"``: exact when both samples have at most 10,000 values,
    else the asymptotic distribution). D itself is computed here, several times
    faster than ``ks_2samp`` on large samples (see ``pyflare.drift._ks``): each
    sample is sorted once and the other's empirical CDF is read off at its sorted
    values; the asymptotic p-value's exact Smirnov sum is vectorised.
    """
    _check_alpha(threshold)
    if method not in ("auto", "exact", "asymp"):
        raise InvalidArgumentError(f"method must be 'auto', 'exact' or 'asymp', got {method!r}")
    a, b = _ks.sorted_pair(_numeric(reference, "reference"), _numeric(current, "current"))
    d, location = _ks.statistic(a, b)
    n1, n2 = a.size, b.size
    mode = method
    if mode == "auto":
        mode = "exact" if max(n1, n2) <= _EXACT_KS_MAX_N else "asymp"
    p_value = math.nan
    if mode == "exact":
        exact = _ks.exact_p_value(a, b)
        if exact is None:
            mode = "asymp"  # as ks_2samp, which also falls back (with a warning)
        else:
            d, p_value = exact
    if mode == "asymp":
        if n1 == n2 == 1:
            raise DriftError(
                "one value on each side is too few for the asymptotic KS p-value; "
                "use method='exact'"
            )
        p_value = _ks.asymptotic_p_value(n1, n2, d)
    p_value = min(max(p_value, 0.0), 1.0)
    return TestResult(
        method="ks",
        statistic=d,
        p_value=p_value,
        threshold=threshold,
        is_drifted=p_value < threshold,
        score=p_value_score(p_value, threshold),
        reference_size=n1,
        current_size=n2,
        details={"p_value_mode": mode, "location": location},
    )


def ks_statistic(
    reference: Iterable[float] | npt.ArrayLike, current: Iterable[float] | npt.ArrayLike
) -> float:
    """The two-sample KS statistic D alone (as ``ks_2samp`` reports it with ``method="asymp"``)."""
    a, b = _ks.sorted_pair(_numeric(reference, "reference"), _numeric(current, "current"))
    return _ks.statistic(a, b)[0]


# -- chi-squared -------------------------------------------------------------------


def chi2(
    reference: Iterable[Any] | npt.ArrayLike,
    current: Iterable[Any] | npt.ArrayLike,
    *,
    threshold: float = DEFAULT_THRESHOLDS["chi2"],
) -> TestResult:
    """Pearson chi-squared test of homogeneity on category counts; ``threshold`` is alpha.

    Values are categories (strings, ints, bools). The 2 x K table covers every
    category of either sample, so categories unseen in the reference are part
    of the test (their expected count comes from the pooled sample) and are
    listed in ``details["unseen_categories"]`` with the number of current values
    they hold. Same statistic and p-value as
    ``scipy.stats.chi2_contingency(table, correction=False)``; with two
    categories this equals the two-proportion z-test.
    """
    _check_alpha(threshold)
    categories, ref_counts, cur_counts, details = _category_counts(reference, current)
    if categories.size < 2:
        raise DriftError(
            f"chi2 needs at least two categories; both samples hold only {categories[0]!r}"
        )
    from scipy.stats import chi2 as chi2_dist

    observed = np.vstack([ref_counts, cur_counts]).astype(np.float64)
    expected = (
        observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / observed.sum()
    )
    statistic = float(((observed - expected) ** 2 / expected).sum())
    dof = categories.size - 1
    p_value = float(chi2_dist.sf(statistic, dof))
    details.update(dof=dof, min_expected=float(expected.min()))
    return TestResult(
        method="chi2",
        statistic=statistic,
        p_value=p_value,
        threshold=threshold,
        is_drifted=p_value < threshold,
        score=p_value_score(p_value, threshold),
        reference_size=int(ref_counts.sum()),
        current_size=int(cur_counts.sum()),
        details=details,
    )


# -- binned distances --------------------------------------------------------------


def psi(
    reference: Iterable[Any] | npt.ArrayLike,
    current: Iterable[Any] | npt.ArrayLike,
    *,
    threshold: float = DEFAULT_THRESHOLDS["psi"],
    bins: int = 10,
    categorical: bool = False,
    epsilon: float = PSI_EPSILON,
) -> TestResult:
    """Population stability index: ``sum((c - r) * ln(c / r))`` over bins.

    A bin empty on one side gets proportion ``epsilon`` there (1e-4 by default,
    as is customary) instead of 0. Bands: < 0.1 stable, 0.1-0.25 moderate,
    >= 0.25 significant (``details["band"]``).
    """
    if not 0.0 < epsilon < 1.0:
        raise InvalidArgumentError(f"epsilon must be between 0 and 1, got {epsilon!r}")
    result = _binned_test(
        "psi", partial(_psi, epsilon=epsilon), reference, current, threshold, bins, categorical
    )
    value = result.statistic
    band = "stable" if value < 0.1 else "moderate" if value < 0.25 else "significant"
    return replace(result, details={**result.details, "band": band, "epsilon": epsilon})


def _psi(p: FloatArray, q: FloatArray, *, epsilon: float) -> float:
    p = np.where(p == 0.0, epsilon, p)
    q = np.where(q == 0.0, epsilon, q)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(
    reference: Iterable[Any] | npt.ArrayLike,
    current: Iterable[Any] | npt.ArrayLike,
    *,
    threshold: float = DEFAULT_THRESHOLDS["jensen_shannon"],
    bins: int = 10,
    categorical: bool = False,
) -> TestResult:
    """Jensen-Shannon distance in base 2 (0..1), as ``scipy.spatial.distance.jensenshannon``."""
    return _binned_test(
        "jensen_shannon", _jensen_shannon, reference, current, threshold, bins, categorical
    )


def _jensen_shannon(p: FloatArray, q: FloatArray) -> float:
    from scipy.special import rel_entr

    m = (p + q) / 2.0
    divergence = (float(rel_entr(p, m).sum()) + float(rel_entr(q, m).sum())) / math.log(2.0)
    return math.sqrt(max(divergence / 2.0, 0.0))


def hellinger(
    reference: Iterable[Any] | npt.ArrayLike,
    current: Iterable[Any] | npt.ArrayLike,
    *,
    threshold: float = DEFAULT_THRESHOLDS["hellinger"],
    bins: int = 10,
    categorical: bool = False,
) -> TestResult:
    """Hellinger distance ``||sqrt(p) - sqrt(q)|| / sqrt(2)`` (0..1) between binned distributions."""
    return _binned_test("hellinger", _hellinger, reference, current, threshold, bins, categorical)


def _hellinger(p: FloatArray, q: FloatArray) -> float:
    return float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)) / math.sqrt(2.0))


def _binned_test(
    method: str,
    distance: Callable[[FloatArray, FloatArray], float],
    reference: Any,
    current: Any,
    threshold: float,
    bins: int,
    categorical: bool,
) -> TestResult:
    _check_threshold(threshold)
    ref_counts, cur_counts, details = _binned(reference, current, bins, categorical)
    value = distance(_proportions(ref_counts), _proportions(cur_counts))
    return _distance_result(method, value, threshold, ref_counts, cur_counts, details)


# -- Wasserstein ---------------------------------------------------------------------


def wasserstein(
    reference: Iterable[float] | npt.ArrayLike,
    current: Iterable[float] | npt.ArrayLike,
    *,
    threshold: float = DEFAULT_THRESHOLDS["wasserstein"],
    normalize: Literal["std", "iqr", "none"] = "std",
) -> TestResult:
    """Wasserstein-1 distance divided by the reference's spread.

    ``normalize="std"`` (default) divides by the reference's standard deviation
    (ddof=0), so 0.1 means the current distribution moved by about a tenth of a
    standard deviation; ``"iqr"`` divides by its interquartile range (robust to
    outliers); ``"none"`` keeps the raw distance (then choose ``threshold`` in
    the data's units). A reference with zero spread can't normalise: DriftError.
    The raw distance equals ``scipy.stats.wasserstein_distance``
    (``details["distance"]``).
    """
    _check_threshold(threshold)
    a = np.sort(_numeric(reference, "reference"))
    b = np.sort(_numeric(current, "current"))
    if normalize == "std":
        scale = float(np.std(a))
    elif normalize == "iqr":
        q1, q3 = np.quantile(a, [0.25, 0.75])
        scale = float(q3 - q1)
    elif normalize == "none":
        scale = 1.0
    else:
        raise InvalidArgumentError(f"normalize must be 'std', 'iqr' or 'none', got {normalize!r}")
    if not scale > 0.0:
        raise DriftError(
            f"the reference has zero spread ({normalize}), so the Wasserstein distance "
            "can't be normalised; use ks, or normalize='none'"
        )
    distance = _sorted_wasserstein(a, b)
    details = {"distance": distance, "normalize": normalize, "scale": scale}
    return TestResult(
        method="wasserstein",
        statistic=distance / scale,
        p_value=None,
        threshold=threshold,
        is_drifted=distance / scale >= threshold,
        score=distance_score(distance / scale, threshold),
        reference_size=a.size,
        current_size=b.size,
        details=details,
    )


def _sorted_wasserstein(a: FloatArray, b: FloatArray) -> float:
    """The integral of |F_a - F_b| for sorted samples (scipy's formula, without re-sorting)."""
    merged = np.concatenate((a, b))
    merged.sort(kind="stable")  # two sorted runs: a linear merge
    deltas = np.diff(merged)
    fa = np.searchsorted(a, merged[:-1], side="right") / a.size
    fb = np.searchsorted(b, merged[:-1], side="right") / b.size
    return float(np.sum(np.abs(fa - fb) * deltas))


# -- many features -----------------------------------------------------------------


def benjamini_hochberg(p_values: npt.ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values (as ``scipy.stats.false_discovery_control``).

    Compare each adjusted p-value with alpha to keep the expected share of false
    discoveries among the features called drifted at most alpha.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise InvalidArgumentError("p_values must be one-dimensional")
    if p.size == 0:
        return p.copy()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise InvalidArgumentError("p-values must lie within 0..1")
    order = np.argsort(p)
    m = p.size
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = np.minimum(adjusted_sorted, 1.0)
    return adjusted


# -- input handling ----------------------------------------------------------------


def _numeric(values: Any, name: str) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DriftError(f"{name} must hold numbers: {exc}") from exc
    if array.ndim != 1:
        raise DriftError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise DriftError(f"{name} is empty")
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(array.size - finite.sum())
        raise DriftError(
            f"{name} holds {bad} NaN or infinite values; drop or impute them before testing"
        )
    return array


def _categories(values: Any, name: str) -> Any:
    """A pandas Series of category values (hash-based counting is much faster than sorting)."""
    import pandas as pd

    if isinstance(values, pd.Series):
        series = values
    else:
        try:  # a list as it is: np.asarray would turn ["a", nan] into strings
            series = pd.Series(values if isinstance(values, np.ndarray) else list(values))
        except (TypeError, ValueError) as exc:
            raise DriftError(f"{name} must be a one-dimensional sequence: {exc}") from exc
    if series.size == 0:
        raise DriftError(f"{name} is empty")
    missing = int(series.isna().sum())
    if missing:
        raise DriftError(
            f"{name} holds {missing} missing values (None/NaN); drop them or map them to a "
            "category before testing"
        )
    return series


def _category_counts(
    reference: Any, current: Any
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64], npt.NDArray[np.int64], dict[str, Any]]:
    """Categories (reference's by frequency, then unseen ones) and both samples' counts."""
    ref = _categories(reference, "reference").value_counts(sort=True)
    cur = _categories(current, "current").value_counts(sort=True)
    try:
        unseen = cur.index.difference(ref.index, sort=False)
        categories = ref.index.append(unseen)
        ref_counts = ref.reindex(categories, fill_value=0).to_numpy(dtype=np.int64)
        cur_counts = cur.reindex(categories, fill_value=0).to_numpy(dtype=np.int64)
    except TypeError as exc:
        raise DriftError(f"reference and current categories can't be compared: {exc}") from exc
    cats = np.asarray(categories.to_list(), dtype=object)
    unseen_values = cur.reindex(unseen).sort_values(ascending=False)
    missing = ref.index.difference(cur.index, sort=False)
    details: dict[str, Any] = {
        "categories": len(cats),
        "unseen_categories": [_plain(v) for v in unseen_values.index[:_MAX_LISTED_CATEGORIES]],
        "unseen_count": int(unseen_values.sum()),
        "unseen_share": float(unseen_values.sum() / cur_counts.sum()),
        "missing_categories": [_plain(v) for v in missing[:_MAX_LISTED_CATEGORIES]],
    }
    return cats, ref_counts, cur_counts, details


def _binned(
    reference: Any, current: Any, bins: int, categorical: bool
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], dict[str, Any]]:
    if categorical:
        categories, ref_counts, cur_counts, details = _category_counts(reference, current)
        if categories.size <= _MAX_LISTED_CATEGORIES:
            details["category_values"] = [_plain(v) for v in categories]
        return ref_counts, cur_counts, details
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise InvalidArgumentError(f"bins must be an integer of at least 2, got {bins!r}")
    a = _numeric(reference, "reference")
    b = _numeric(current, "current")
    quantiles = np.quantile(a, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = np.unique(quantiles)  # ties in the reference merge bins
    # Bin k holds edges[k-1] <= x < edges[k]; both ends are open.
    ref_counts = np.bincount(np.searchsorted(edges, a, side="right"), minlength=edges.size + 1)
    cur_counts = np.bincount(np.searchsorted(edges, b, side="right"), minlength=edges.size + 1)
    return ref_counts, cur_counts, {"bin_edges": edges.tolist(), "bins": int(edges.size + 1)}


def _proportions(counts: npt.NDArray[np.int64]) -> FloatArray:
    proportions: FloatArray = counts / counts.sum()
    return proportions


def _distance_result(
    method: str,
    value: float,
    threshold: float,
    ref_counts: npt.NDArray[np.int64],
    cur_counts: npt.NDArray[np.int64],
    details: dict[str, Any],
) -> TestResult:
    _check_threshold(threshold)
    if ref_counts.size <= _MAX_LISTED_CATEGORIES:
        details["reference_proportions"] = _proportions(ref_counts).tolist()
        details["current_proportions"] = _proportions(cur_counts).tolist()
    return TestResult(
        method=method,
        statistic=value,
        p_value=None,
        threshold=threshold,
        is_drifted=value >= threshold,
        score=distance_score(value, threshold),
        reference_size=int(ref_counts.sum()),
        current_size=int(cur_counts.sum()),
        details=details,
    )


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise InvalidArgumentError(
            f"threshold (the significance level) must be between 0 and 1, got {alpha!r}"
        )


def _check_threshold(threshold: float) -> float:
    if not (threshold > 0.0 and math.isfinite(threshold)):
        raise InvalidArgumentError(f"threshold must be a positive number, got {threshold!r}")
    return threshold


def _plain(value: Any) -> Any:
    """A numpy scalar as its Python value, for details that end up in JSON."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
