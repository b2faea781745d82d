"""What a drift test returns: one comparison (``TestResult``) and many at once (``DriftReport``).

Every test also gives a ``score`` in 0..1 so that results of different methods can
be compared and combined (the spec's ``DriftScore.score``). The scores are anchored
at the decision threshold: **0.5 is the threshold of every method**, so
``score > 0.5`` means drifted and ``score < 0.5`` means not drifted, whatever the
method. Two mappings cover all methods:

- p-value tests (``p_value_score``): ``score = L / (L + La)`` with ``L = -log10(p)``
  and ``La = -log10(alpha)``; p = 1 gives 0, p = alpha gives 0.5, p -> 0 gives 1.
- distances and divergences (``distance_score``): ``score = d / (d + t)`` for a
  distance ``d >= 0`` and threshold ``t > 0``; d = 0 gives 0, d = t gives 0.5,
  d -> inf gives 1.

A report's score is its worst (highest) feature score, its threshold is 0.5 and it
is drifted when any compared feature is.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pyflare.errors import DriftError, InvalidArgumentError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SCORE_THRESHOLD",
    "DriftReport",
    "DriftType",
    "FeatureSkip",
    "TestResult",
    "distance_score",
    "p_value_score",
]

SCORE_THRESHOLD = 0.5
"""Where every method's threshold lands on the common 0..1 score scale."""


class DriftType(StrEnum):
    """What kind of distribution a drift result is about (the spec's DriftType)."""

    FEATURE = "feature"
    EMBEDDING = "embedding"
    CONCEPT = "concept"
    PREDICTION = "prediction"


def p_value_score(p_value: float, alpha: float) -> float:
    """A p-value on the common score scale: 0 at p = 1, 0.5 at p = alpha, 1 as p -> 0."""
    if not 0.0 < alpha < 1.0:
        raise InvalidArgumentError(f"alpha must be between 0 and 1 (exclusive), got {alpha!r}")
    if math.isnan(p_value):
        raise InvalidArgumentError("the p-value is NaN")
    p = min(max(p_value, 0.0), 1.0)
    if p == 0.0:
        return 1.0
    evidence = -math.log10(p)
    return evidence / (evidence + -math.log10(alpha))


def distance_score(distance: float, threshold: float) -> float:
    """A distance on the common score scale: 0 at 0, 0.5 at the threshold, 1 as it grows."""
    if not threshold > 0.0 or math.isinf(threshold):
        raise InvalidArgumentError(f"threshold must be a positive number, got {threshold!r}")
    if math.isnan(distance):
        raise InvalidArgumentError("the distance is NaN")
    d = max(distance, 0.0)
    if math.isinf(d):
        return 1.0
    return d / (d + threshold)


@dataclass(frozen=True)
class TestResult:
    """One two-sample comparison: a statistic, its p-value where the method has one, the decision."""

    __test__ = False  # not a pytest test class, whatever its name

    method: str
    """``"ks"``, ``"psi"``, ``"chi2"``, ``"jensen_shannon"``, ``"wasserstein"``, ``"hellinger"``, ..."""
    statistic: float
    """The method's own statistic (KS D, PSI value, chi-squared, distance)."""
    p_value: float | None
    """None where the method has no p-value."""
    threshold: float
    """Significance level for p-value tests, the distance threshold otherwise."""
    is_drifted: bool
    score: float
    """0..1 on the common scale; 0.5 is the threshold (see the module docstring)."""
    reference_size: int
    current_size: int
    details: Mapping[str, Any] = field(default_factory=dict)
    """Method-specific facts: bin edges, unseen categories, the p-value mode, ..."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise InvalidArgumentError(f"score must be within 0..1, got {self.score!r}")


@dataclass(frozen=True)
class FeatureSkip:
    """A feature that was not compared, and why."""

    feature: str
    reason: str


@dataclass(frozen=True)
class DriftReport:
    """Many features compared at once (the spec's DriftResult / DriftScore)."""

    drift_type: DriftType
    results: Mapping[str, TestResult]
    skipped: Sequence[FeatureSkip]
    score: float
    """The highest feature score (0..1)."""
    threshold: float
    """0.5: every method's threshold on the common score scale."""
    is_drifted: bool
    """Whether any compared feature drifted (after false-discovery control when applied)."""
    explanation: str
    computed_at_ns: int
    fdr: str | None = None
    """``"benjamini_hochberg"`` when p-values were adjusted for multiple features."""

    @classmethod
    def from_results(
        cls,
        drift_type: DriftType,
        results: Mapping[str, TestResult],
        skipped: Sequence[FeatureSkip] = (),
        *,
        fdr: str | None = None,
        computed_at_ns: int | None = None,
    ) -> DriftReport:
        """Combine per-feature results: worst score, drifted when any feature is.

        Raises ``DriftError`` when nothing was compared (every feature skipped), so
        that an empty comparison never reads as "no drift".
        """
        if not results:
            reasons = "; ".join(f"{s.feature}: {s.reason}" for s in skipped)
            raise DriftError("no feature could be compared" + (f" ({reasons})" if reasons else ""))
        drifted = [name for name, r in results.items() if r.is_drifted]
        score = max(r.score for r in results.values())
        return cls(
            drift_type=DriftType(drift_type),
            results=dict(results),
            skipped=tuple(skipped),
            score=score,
            threshold=SCORE_THRESHOLD,
            is_drifted=bool(drifted),
            explanation=_explain(results, drifted, skipped, fdr),
            computed_at_ns=time.time_ns() if computed_at_ns is None else computed_at_ns,
            fdr=fdr,
        )

    def feature_breakdown(self) -> dict[str, float]:
        """Feature -> score (the spec's ``DriftScore.feature_breakdown``); skipped features are absent."""
        return {name: r.score for name, r in self.results.items()}

    @property
    def drifted_features(self) -> list[str]:
        """The compared features that drifted, in report order."""
        return [name for name, r in self.results.items() if r.is_drifted]

    def to_frame(self) -> pd.DataFrame:
        """One row per feature, skipped ones included (with ``skipped_reason``), indexed by feature."""
        import pandas as pd

        rows: list[dict[str, Any]] = [
            {
                "feature": name,
                "method": r.method,
                "statistic": r.statistic,
                "p_value": r.p_value,
                "threshold": r.threshold,
                "score": r.score,
                "is_drifted": r.is_drifted,
                "reference_size": r.reference_size,
                "current_size": r.current_size,
                "skipped_reason": None,
            }
            for name, r in self.results.items()
        ]
        rows += [
            {
                "feature": s.feature,
                "method": None,
                "statistic": None,
                "p_value": None,
                "threshold": None,
                "score": None,
                "is_drifted": None,
                "reference_size": None,
                "current_size": None,
                "skipped_reason": s.reason,
            }
            for s in self.skipped
        ]
        frame = pd.DataFrame(rows, columns=list(_FRAME_COLUMNS))
        return frame.set_index("feature")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the spec's DriftScore fields plus per-feature results and skips."""
        return {
            "drift_type": self.drift_type.value,
            "score": self.score,
            "threshold": self.threshold,
            "is_drifted": self.is_drifted,
            "explanation": self.explanation,
            "computed_at_ns": self.computed_at_ns,
            "fdr": self.fdr,
            "feature_breakdown": self.feature_breakdown(),
            "features": {
                name: {
                    "method": r.method,
                    "statistic": _jsonable(r.statistic),
                    "p_value": _jsonable(r.p_value),
                    "threshold": r.threshold,
                    "score": r.score,
                    "is_drifted": r.is_drifted,
                    "reference_size": r.reference_size,
                    "current_size": r.current_size,
                    "details": _jsonable(r.details),
                }
                for name, r in self.results.items()
            },
            "skipped": [{"feature": s.feature, "reason": s.reason} for s in self.skipped],
        }

    def _repr_html_(self) -> str:
        import importlib

        # The notebook view lives with the report helpers; loaded only when a notebook asks.
        report_html = importlib.import_module("pyflare.drift.report").report_html
        return str(report_html(self))


_FRAME_COLUMNS = (
    "feature",
    "method",
    "statistic",
    "p_value",
    "threshold",
    "score",
    "is_drifted",
    "reference_size",
    "current_size",
    "skipped_reason",
)


def _explain(
    results: Mapping[str, TestResult],
    drifted: Sequence[str],
    skipped: Sequence[FeatureSkip],
    fdr: str | None,
) -> str:
    parts = [f"{len(drifted)} of {len(results)} compared features drifted"]
    if drifted:
        parts[0] += ": " + ", ".join(_describe(name, results[name]) for name in drifted[:10])
        if len(drifted) > 10:
            parts[0] += f", and {len(drifted) - 10} more"
    if fdr:
        parts.append(f"p-values adjusted with {fdr.replace('_', '-')}")
    if skipped:
        parts.append(f"{len(skipped)} skipped ({', '.join(s.feature for s in skipped[:10])})")
    return "; ".join(parts)


def _describe(name: str, result: TestResult) -> str:
    if result.p_value is not None:
        return f"{name} ({result.method} p={result.p_value:.3g})"
    return f"{name} ({result.method}={result.statistic:.3g} >= {result.threshold:g})"


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays unwrapped, non-finite floats as None."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return _jsonable(tolist())
    return str(value)
