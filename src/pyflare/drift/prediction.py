"""Prediction drift (a model's outputs) and concept drift as a change of P(y | x).

Prediction drift compares what a model produced in a reference period with what
it produces now, without labels. Each kind of output becomes one or more columns
that :func:`pyflare.drift.features.compare_features` compares with its usual
rules (the report's ``drift_type`` is PREDICTION):

- ``"classification"``: the predicted labels, one categorical column
  ``prediction``: the class mix, compared with chi-squared.
- ``"regression"`` (also scores and probabilities): one numeric column
  ``prediction``, compared with the numeric rule (KS or normalised Wasserstein).
- ``"llm"``: outputs given as text or as mappings with ``text`` (or ``output`` /
  ``content``), optional ``finish_reason``, ``refused`` (bool) and
  ``output_tokens``. Columns: ``output_length`` (characters), ``refusal``
  (``"refused"``/``"answered"``, from ``refused`` or else the refusal phrases in
  :data:`REFUSAL_PATTERN`), ``finish_reason`` when every output has one, and
  ``output_tokens`` when every output has it.

Concept drift when labels are known (:func:`conditional_drift`): the input is
cut into bins (reference quantiles for a numeric input, categories otherwise) and
in each bin the distribution of the outcome in the reference is compared with the
current one (chi-squared for classes, KS for numbers). A change inside a bin is a
change of P(y | x), which a change of P(x) alone (feature drift) cannot produce.
Bins with fewer than ``min_bin_size`` rows on either side are reported as skips.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from pyflare.drift.result import DriftReport, DriftType, FeatureSkip, TestResult
from pyflare.drift.stats import _numeric
from pyflare.errors import DriftError

__all__ = ["REFUSAL_PATTERN", "conditional_drift", "prediction_columns", "prediction_drift"]

PredictionKind = Literal["classification", "regression", "llm"]

REFUSAL_PATTERN = re.compile(
    r"^\s*(?:i'?m sorry,? but|i am sorry,? but|sorry,? (?:but )?i can(?:'|no)t|"
    r"i can(?:'|no)t (?:help|assist|comply|provide|do that)|i(?:'m| am) (?:not able|unable) to|"
    r"i won'?t (?:be able to|help)|as an ai\b)",
    re.IGNORECASE,
)
"""Openings that mark an LLM output as a refusal when the output doesn't say so itself."""

_TEXT_KEYS = ("text", "output", "content")


def prediction_columns(outputs: Sequence[Any], kind: PredictionKind) -> dict[str, npt.NDArray[Any]]:
    """The columns prediction drift compares for ``outputs`` of this ``kind`` (see the module doc)."""
    if kind not in ("classification", "regression", "llm"):
        raise DriftError(f"kind must be 'classification', 'regression' or 'llm', not {kind!r}")
    values = list(outputs)
    if not values:
        raise DriftError("there are no outputs to compare")
    if kind == "classification":
        return {"prediction": _labels(values)}
    if kind == "regression":
        return {"prediction": _numbers(values)}
    return _llm_columns(values)


def prediction_drift(
    reference: Sequence[Any],
    current: Sequence[Any],
    *,
    kind: PredictionKind = "classification",
    method: str = "auto",
    alpha: float = 0.05,
    fdr: str | None = None,
) -> DriftReport:
    """Whether a model's outputs drifted: one report with ``drift_type`` PREDICTION.

    ``method`` and ``fdr`` go to :func:`~pyflare.drift.features.compare_features`
    for the numeric columns; categorical columns always use chi-squared.
    """
    ref = prediction_columns(reference, kind)
    cur = prediction_columns(current, kind)
    return compare_prediction_columns(ref, cur, method=method, alpha=alpha, fdr=fdr)


def compare_prediction_columns(
    reference: Mapping[str, npt.NDArray[Any]],
    current: Mapping[str, npt.NDArray[Any]],
    *,
    method: str = "auto",
    alpha: float = 0.05,
    fdr: str | None = None,
) -> DriftReport:
    """Compare columns made by :func:`prediction_columns`; the report's type is PREDICTION."""
    from pyflare.drift.features import compare_features

    columns = [name for name in reference if name in current]
    if not columns:
        raise DriftError("the reference and current outputs share no column to compare")
    categorical = [name for name in columns if reference[name].dtype.kind in "OUS"]
    report = compare_features(
        {name: reference[name] for name in columns},
        {name: current[name] for name in columns},
        method=method,  # type: ignore[arg-type]
        alpha=alpha,
        fdr=fdr,  # type: ignore[arg-type]
        categorical=categorical,
    )
    return replace(report, drift_type=DriftType.PREDICTION)


def conditional_drift(
    reference_x: Sequence[Any] | npt.ArrayLike,
    reference_y: Sequence[Any] | npt.ArrayLike,
    current_x: Sequence[Any] | npt.ArrayLike,
    current_y: Sequence[Any] | npt.ArrayLike,
    *,
    kind: Literal["classification", "regression"] = "classification",
    bins: int = 5,
    min_bin_size: int = 30,
    alpha: float = 0.05,
) -> DriftReport:
    """Concept drift: has P(y | x) changed? One result per bin of ``x``; ``drift_type`` CONCEPT.

    Numeric ``x`` is cut at the reference's quantiles into at most ``bins`` bins
    (named ``"x in [lo, hi)"``); other ``x`` are grouped by value (``"x = v"``).
    Each bin's test runs at ``alpha / number of bins tested`` (Bonferroni), so the
    report's false-alarm rate stays near ``alpha`` however many bins there are.
    Where P(y | x) varies inside a bin, a shift of ``x`` alone changes that
    bin's outcome mix too: use more bins when ``x`` itself drifts.
    """
    from pyflare.drift import stats

    if bins < 1 or min_bin_size < 1:
        raise DriftError("conditional_drift needs bins >= 1 and min_bin_size >= 1")
    if kind not in ("classification", "regression"):
        raise DriftError(f"kind must be 'classification' or 'regression', not {kind!r}")
    rx, cx = np.asarray(reference_x), np.asarray(current_x)
    to_y = _labels if kind == "classification" else _numbers
    ry, cy = to_y(list(np.asarray(reference_y))), to_y(list(np.asarray(current_y)))
    if rx.ndim != 1 or cx.ndim != 1 or len(rx) != len(ry) or len(cx) != len(cy):
        raise DriftError("x and y must be 1-D and of the same length on each side")
    if not len(rx) or not len(cx):
        raise DriftError("conditional_drift needs rows on both sides")
    groups = _bins(rx, cx, bins)
    skipped: list[FeatureSkip] = []
    tested: list[tuple[str, npt.NDArray[Any], npt.NDArray[Any]]] = []
    for name, in_ref, in_cur in groups:
        n_ref, n_cur = int(in_ref.sum()), int(in_cur.sum())
        if min(n_ref, n_cur) < min_bin_size:
            skipped.append(
                FeatureSkip(
                    name, f"too few rows ({n_ref} reference, {n_cur} current < {min_bin_size})"
                )
            )
        else:
            tested.append((name, ry[in_ref], cy[in_cur]))
    test = stats.chi2 if kind == "classification" else stats.ks
    level = alpha / max(len(tested), 1)
    results: dict[str, TestResult] = {}
    for name, y_ref, y_cur in tested:
        try:
            results[name] = test(y_ref, y_cur, threshold=level)
        except DriftError as exc:  # e.g. one class only in both: nothing to compare
            skipped.append(FeatureSkip(name, str(exc)))
    report = DriftReport.from_results(DriftType.CONCEPT, results, skipped)
    return replace(
        report,
        explanation=f"P(y | x) per bin, Bonferroni over {len(results)} bins; " + report.explanation,
    )


def _bins(
    rx: npt.NDArray[Any], cx: npt.NDArray[Any], bins: int
) -> list[tuple[str, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]]:
    if rx.dtype.kind in "biuf" and cx.dtype.kind in "biuf":
        rf, cf = rx.astype(np.float64), cx.astype(np.float64)
        if not (np.isfinite(rf).all() and np.isfinite(cf).all()):
            raise DriftError("x has NaN or infinite values; drop or impute them first")
        edges = np.unique(np.quantile(rf, np.linspace(0, 1, bins + 1)[1:-1]))
        r_idx, c_idx = (
            np.searchsorted(edges, rf, side="right"),
            np.searchsorted(edges, cf, side="right"),
        )
        bounds = [-math.inf, *edges.tolist(), math.inf]
        return [
            (f"x in [{bounds[i]:.4g}, {bounds[i + 1]:.4g})", r_idx == i, c_idx == i)
            for i in range(len(bounds) - 1)
        ]
    rs, cs = _labels(list(rx)), _labels(list(cx))
    return [(f"x = {v}", rs == v, cs == v) for v in sorted(set(rs.tolist()))]


def _labels(values: Sequence[Any]) -> npt.NDArray[Any]:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            raise DriftError(f"label {i} is missing (None or NaN); drop or label it first")
        out[i] = str(v)
    return out


def _numbers(values: Sequence[Any]) -> npt.NDArray[np.float64]:
    return _numeric(values, "predictions")


def _llm_columns(values: Sequence[Any]) -> dict[str, npt.NDArray[Any]]:
    records = [_llm_record(v, i) for i, v in enumerate(values)]
    columns: dict[str, npt.NDArray[Any]] = {
        "output_length": np.array([len(r["text"]) for r in records], dtype=np.float64),
        "refusal": np.array(
            ["refused" if r["refused"] else "answered" for r in records], dtype=object
        ),
    }
    if all(r.get("finish_reason") is not None for r in records):
        columns["finish_reason"] = np.array(
            [str(r["finish_reason"]) for r in records], dtype=object
        )
    if all(r.get("output_tokens") is not None for r in records):
        columns["output_tokens"] = _numbers([r["output_tokens"] for r in records])
    return columns


def _llm_record(value: Any, i: int) -> dict[str, Any]:
    if isinstance(value, str):
        return {"text": value, "refused": bool(REFUSAL_PATTERN.match(value))}
    if not isinstance(value, Mapping):
        raise DriftError(f"LLM output {i} must be text or a mapping, got {type(value).__name__}")
    text = next((value[k] for k in _TEXT_KEYS if value.get(k) is not None), "")
    if not isinstance(text, str):
        raise DriftError(f"LLM output {i}'s text must be a string, got {type(text).__name__}")
    refused = value.get("refused")
    return {
        "text": text,
        "refused": bool(REFUSAL_PATTERN.match(text)) if refused is None else bool(refused),
        "finish_reason": value.get("finish_reason"),
        "output_tokens": value.get("output_tokens"),
    }
