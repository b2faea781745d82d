"""Feature drift over many columns at once: ``compare_features(reference, current) -> DriftReport``.

The automatic choice of test (``method="auto"``), per column, from the
reference's non-missing values:

- **categorical** columns (strings, booleans, pandas categoricals, the names in
  ``categorical``) and **discrete numeric** ones (at most 5 distinct reference
  values): ``chi2`` when the reference has at most 10,000 values, else
  ``jensen_shannon`` over category frequencies;
- other **numeric** columns: ``ks`` when the reference has at most 10,000 values,
  else ``wasserstein`` normalised by the reference's standard deviation.

Up to 10,000 values (where ``ks_2samp`` is exact too) a p-value test has the
power to see small shifts (a 0.1 sigma mean shift at n = 10,000) while false
alarms stay at alpha. Beyond it, p-value tests call practically negligible
differences significant, so a distance with a fixed threshold (0.1: a tenth of
a standard deviation, or JS distance 0.1) decides instead. The rule is
Evidently's with its 1,000 cut-off raised to 10,000; sizing it on the reference
keeps a feature's method stable from window to window.

Missing values (NaN, None, pandas NA) are dropped and counted in the result's
details. A column is skipped, with the reason in the report, when it is absent
on one side, empty or all missing, holds infinities, has types the two sides
don't share (numeric against strings) or that no test takes (dates, mixed
values), is one same constant on both sides, or when its test refuses the data.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from pyflare.drift import stats
from pyflare.drift.result import DriftReport, DriftType, FeatureSkip, TestResult, p_value_score
from pyflare.errors import DriftError, InvalidArgumentError

__all__ = ["AUTO_MAX_DISCRETE_VALUES", "AUTO_MAX_P_VALUE_SIZE", "Method", "compare_features"]

Method = Literal["auto", "ks", "chi2", "psi", "jensen_shannon", "wasserstein", "hellinger"]

AUTO_MAX_P_VALUE_SIZE = 10_000
"""``method="auto"`` uses p-value tests up to this many reference values, distances above."""
AUTO_MAX_DISCRETE_VALUES = 5
"""``method="auto"`` treats numeric columns with at most this many distinct values as categorical."""

_METHODS = ("ks", "chi2", "psi", "jensen_shannon", "wasserstein", "hellinger")
_NUMERIC_ONLY = ("ks", "wasserstein")
_FDR = {"bh": "benjamini_hochberg", "benjamini_hochberg": "benjamini_hochberg"}


def compare_features(
    reference: Any,
    current: Any,
    *,
    method: Method | Mapping[str, Method] = "auto",
    alpha: float = 0.05,
    fdr: Literal["bh", "benjamini_hochberg"] | None = None,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    bins: int = 10,
    min_size: int = 1,
) -> DriftReport:
    """Compare each column of ``current`` with the same column of ``reference``.

    ``reference`` and ``current`` are pandas DataFrames, pyarrow Tables or
    mappings of column name to values. ``method`` is one test for every column,
    a mapping of column to test, or ``"auto"`` (the rule in the module
    docstring). ``alpha`` is the significance level of the p-value tests
    (``ks``, ``chi2``); ``thresholds`` overrides the distance tests' defaults
    (``{"psi": 0.2}``). ``fdr="bh"`` adjusts the p-values for the number of
    features tested (Benjamini-Hochberg; the raw p-value stays in ``p_value``,
    the adjusted one is in ``details["p_value_adjusted"]`` and decides).
    ``columns`` limits the comparison (default: the reference's columns);
    ``categorical`` names columns to treat as categories whatever their type;
    columns with fewer than ``min_size`` non-missing values on either side are
    skipped. Raises ``DriftError`` when no column can be compared.
    """
    if not 0.0 < alpha < 1.0:
        raise InvalidArgumentError(f"alpha must be between 0 and 1 (exclusive), got {alpha!r}")
    if fdr is not None and fdr not in _FDR:
        raise InvalidArgumentError(f"fdr must be None or 'bh', got {fdr!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise InvalidArgumentError(f"min_size must be a positive integer, got {min_size!r}")
    for given in [method] if isinstance(method, str) else list(method.values()):
        if given != "auto" and given not in _METHODS:
            raise InvalidArgumentError(
                f"unknown drift method {given!r}; choose 'auto' or one of {', '.join(_METHODS)}"
            )
    ref_table = _table(reference, "reference")
    cur_table = _table(current, "current")
    names = list(ref_table) if columns is None else [str(c) for c in columns]
    options = _Options(alpha, dict(thresholds or {}), bins, min_size, set(categorical or ()))

    results: dict[str, TestResult] = {}
    skipped: list[FeatureSkip] = []
    for name in names:
        chosen = method if isinstance(method, str) else method.get(name, "auto")
        outcome = _compare_column(name, ref_table, cur_table, chosen, options)
        if isinstance(outcome, str):
            skipped.append(FeatureSkip(name, outcome))
        else:
            results[name] = outcome
    if columns is None:
        skipped += [FeatureSkip(n, "not in the reference") for n in cur_table if n not in ref_table]
    if fdr is not None:
        results = _benjamini_hochberg(results)
    return DriftReport.from_results(
        DriftType.FEATURE, results, skipped, fdr=None if fdr is None else _FDR[fdr]
    )


@dataclass(frozen=True)
class _Options:
    alpha: float
    thresholds: dict[str, float]
    bins: int
    min_size: int
    categorical: set[str]


@dataclass(frozen=True)
class _Column:
    kind: Literal["numeric", "categorical"]
    values: Any  # float64 array (numeric) or object array (categorical), missing values dropped
    missing: int


def _compare_column(
    name: str, ref_table: dict[str, Any], cur_table: dict[str, Any], method: str, opts: _Options
) -> TestResult | str:
    """The column's test result, or why it was skipped."""
    if name not in ref_table or name not in cur_table:
        return f"not in the {'reference' if name not in ref_table else 'current'} data"
    force = name in opts.categorical
    ref = _column(ref_table[name], force)
    cur = _column(cur_table[name], force)
    if isinstance(ref, str):
        return f"reference {ref}"
    if isinstance(cur, str):
        return f"current {cur}"
    for side, col in (("reference", ref), ("current", cur)):
        if col.values.size == 0:
            return f"{side} has no values" + (f" ({col.missing} missing)" if col.missing else "")
        if col.values.size < opts.min_size:
            return f"{side} has only {col.values.size} values (min_size={opts.min_size})"
    if ref.kind != cur.kind:
        return f"reference is {ref.kind} but current is {cur.kind}"
    distinct = _distinct(ref.values)
    if distinct.size == 1 and np.array_equal(_distinct(cur.values), distinct):
        return f"constant ({distinct[0]!r}) in both reference and current: nothing to test"

    as_categories = ref.kind == "categorical"
    if method == "auto":
        discrete = not as_categories and distinct.size <= AUTO_MAX_DISCRETE_VALUES
        small = ref.values.size <= AUTO_MAX_P_VALUE_SIZE
        if as_categories or discrete:
            method = "chi2" if small else "jensen_shannon"
            as_categories = True
        else:
            method = "ks" if small else "wasserstein"
        kind = "discrete numeric" if discrete else ref.kind
        size = "<=" if small else ">"
        choice = f"auto: {kind}, reference n {size} {AUTO_MAX_P_VALUE_SIZE}"
    elif method in _NUMERIC_ONLY and as_categories:
        return f"{method} needs numeric values; the column is categorical"
    else:
        choice = "given"
        as_categories = as_categories or method == "chi2"
    try:
        result = _run(method, ref.values, cur.values, as_categories, opts)
    except DriftError as exc:
        return f"{method}: {exc}"
    details = {
        **result.details,
        "choice": choice,
        "reference_missing": ref.missing,
        "current_missing": cur.missing,
    }
    return replace(result, details=details)


def _run(method: str, ref: Any, cur: Any, as_categories: bool, opts: _Options) -> TestResult:
    if method == "ks":
        return stats.ks(ref, cur, threshold=opts.alpha)
    if method == "chi2":
        return stats.chi2(ref, cur, threshold=opts.alpha)
    threshold = opts.thresholds.get(method, stats.DEFAULT_THRESHOLDS[method])
    if method == "wasserstein":
        return stats.wasserstein(ref, cur, threshold=threshold)
    binned = {
        "psi": stats.psi,
        "jensen_shannon": stats.jensen_shannon,
        "hellinger": stats.hellinger,
    }
    return binned[method](ref, cur, threshold=threshold, bins=opts.bins, categorical=as_categories)


def _benjamini_hochberg(results: dict[str, TestResult]) -> dict[str, TestResult]:
    """Decide the p-value tests on BH-adjusted p-values; distance tests are left as they are."""
    p_values = {name: r.p_value for name, r in results.items() if r.p_value is not None}
    tested = list(p_values)
    adjusted = stats.benjamini_hochberg(list(p_values.values()))
    out = dict(results)
    for name, q in zip(tested, adjusted.tolist(), strict=True):
        r = results[name]
        out[name] = replace(
            r,
            is_drifted=q < r.threshold,
            score=p_value_score(q, r.threshold),
            details={**r.details, "p_value_adjusted": q},
        )
    return out


# -- input handling ----------------------------------------------------------------


def _table(data: Any, side: str) -> dict[str, Any]:
    """Column name -> values, for a DataFrame, a pyarrow Table or a mapping."""
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(data, pd.DataFrame):
        return {str(name): data[name] for name in data.columns}
    pa = sys.modules.get("pyarrow")
    if pa is not None and isinstance(data, pa.Table):
        return {name: data.column(name) for name in data.column_names}
    if isinstance(data, Mapping):
        return {str(name): values for name, values in data.items()}
    raise DriftError(
        f"{side} must be a pandas DataFrame, a pyarrow Table or a mapping of column name to "
        f"values, got {type(data).__name__}"
    )


def _column(values: Any, force_categorical: bool) -> _Column | str:
    """The column's non-missing values and kind, or what makes it unusable."""
    import pandas as pd
    from pandas.api import types

    pa = sys.modules.get("pyarrow")
    try:
        if pa is not None and isinstance(values, (pa.Array, pa.ChunkedArray)):
            series = values.to_pandas()
        elif isinstance(values, pd.Series):
            series = values
        elif isinstance(values, np.ndarray):
            if values.ndim != 1:
                return f"values are not one-dimensional (shape {values.shape})"
            series = pd.Series(values)
        else:
            series = pd.Series(list(values))
    except (TypeError, ValueError) as exc:
        return f"values can't be read as a column: {exc}"
    missing_mask = series.isna().to_numpy()
    missing = int(missing_mask.sum())
    present = series[~missing_mask]
    dtype = series.dtype
    if types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype):
        return f"holds {dtype} values, which no drift test takes (convert them to numbers)"
    if isinstance(dtype, pd.CategoricalDtype) or types.is_bool_dtype(dtype):
        kind = "categorical"
    elif types.is_numeric_dtype(dtype):
        kind = "numeric"
    else:
        inferred = types.infer_dtype(present, skipna=True)
        if inferred in ("string", "boolean", "categorical"):
            kind = "categorical"
        elif inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            kind = "numeric"
        elif inferred == "empty":
            kind = "numeric" if force_categorical is False else "categorical"
        else:
            return f"holds values of mixed or unsupported types ({inferred})"
    if force_categorical or kind == "categorical":
        return _Column("categorical", present.to_numpy(dtype=object), missing)
    numbers = present.to_numpy(dtype=np.float64)
    infinite = int(np.isinf(numbers).sum())
    if infinite:
        return f"holds {infinite} infinite values"
    return _Column("numeric", numbers, missing)


def _distinct(values: Any) -> Any:
    import pandas as pd

    return pd.unique(pd.Series(values)) if values.dtype == object else np.unique(values)
