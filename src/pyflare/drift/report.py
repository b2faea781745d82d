"""The notebook view of drift: compare two tables, and draw the report as HTML.

``compare(reference, current)`` runs :func:`pyflare.drift.features.compare_features`
and, by default, keeps a small summary of each compared feature's two
distributions (a histogram of a few dozen numbers, or the most frequent
categories) in the feature's ``details["distribution"]``, so the report draws its
distributions in a notebook without holding on to the data.

``report_html(report)`` is the HTML behind ``DriftReport._repr_html_``: one
self-contained fragment (inline CSS and SVG, no scripts, every piece of text
escaped) with the verdict, then one row per feature: method, statistic, p-value,
threshold, a bar of the score against the threshold, the decision, and
the two distributions side by side; then the skipped features with their reasons.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from pyflare.drift.result import SCORE_THRESHOLD, DriftReport, TestResult

__all__ = ["compare", "distribution_summary", "report_html"]

DISTRIBUTION_KEY = "distribution"
"""The key of a feature's ``details`` that holds its distribution summary."""

HISTOGRAM_BINS = 24
TOP_CATEGORIES = 8
OTHER_CATEGORY = "(other)"
CATEGORICAL_METHODS = frozenset({"chi2"})
# Numeric histograms span the pooled 0.5th..99.5th percentiles: one far outlier
# must not squash the rest into a single bin. Values outside land in the end bins.
HISTOGRAM_TAILS = (0.005, 0.995)

_BAR_WIDTH = 120
_BAR_HEIGHT = 12
_PLOT_WIDTH = 168
_PLOT_HEIGHT = 44
_REFERENCE_COLOUR = "#9aa5b1"
_CURRENT_COLOUR = "#2f6fdf"
_DRIFT_COLOUR = "#c73a3a"
_OK_COLOUR = "#3a8f5c"


def compare(
    reference: Any, current: Any, *, distributions: bool = True, **kwargs: Any
) -> DriftReport:
    """Compare two tables feature by feature; a report that draws itself in notebooks.

    ``reference`` and ``current`` are pandas DataFrames, dicts of arrays or pyarrow
    tables; every other keyword goes to :func:`~pyflare.drift.features.compare_features`
    (``method``, ``alpha``, ``fdr``, ``columns``, ``categorical``). With
    ``distributions`` (the default) each compared feature's ``details`` also get a
    ``"distribution"`` summary (see :func:`distribution_summary`) for the HTML view;
    ``report.to_frame()`` gives the table, ``report_html(report)`` the HTML.
    """
    # Imported here: drawing a report (``_repr_html_``) needs none of the statistics.
    from pyflare.drift.features import compare_features

    report = compare_features(reference, current, **kwargs)
    if not distributions:
        return report
    results: dict[str, TestResult] = {}
    for name, result in report.results.items():
        summary = distribution_summary(
            _column(reference, name), _column(current, name), categorical=_is_categorical(result)
        )
        if summary is not None:
            result = replace(result, details={**result.details, DISTRIBUTION_KEY: summary})
        results[name] = result
    return replace(report, results=results)


def distribution_summary(
    reference: Any, current: Any, *, categorical: bool | None = None
) -> dict[str, Any] | None:
    """A JSON-ready summary of two samples of one feature, for drawing them side by side.

    Numeric: ``{"kind": "numeric", "edges": [...], "reference": [...], "current": [...]}``
    with the share of each sample in each of ``HISTOGRAM_BINS`` bins over the pooled
    0.5th..99.5th percentiles (values beyond go to the end bins; NaN and inf are left
    out). Categorical: ``{"kind": "categorical", "categories": [...], "reference":
    [...], "current": [...]}`` with the shares of the ``TOP_CATEGORIES`` categories
    largest in either sample, the rest summed as ``"(other)"``. ``categorical=None``
    decides by dtype (numbers are numeric, everything else categorical). None when
    either sample is missing or has nothing to count.
    """
    if reference is None or current is None:
        return None
    ref, cur = np.asarray(reference), np.asarray(current)
    if ref.ndim != 1 or cur.ndim != 1:
        return None
    numeric = ref.dtype.kind in "iuf" and cur.dtype.kind in "iuf"
    if categorical or (categorical is None and not numeric):
        return _categorical_summary(ref, cur)
    if not numeric:
        return None
    return _numeric_summary(ref, cur)


def _numeric_summary(ref: np.ndarray, cur: np.ndarray) -> dict[str, Any] | None:
    ref = ref[np.isfinite(ref)].astype(np.float64, copy=False)
    cur = cur[np.isfinite(cur)].astype(np.float64, copy=False)
    if ref.size == 0 or cur.size == 0:
        return None
    pooled = np.concatenate([ref, cur])
    low, high = (float(value) for value in np.quantile(pooled, HISTOGRAM_TAILS))
    if not low < high:
        low, high = float(pooled.min()), float(pooled.max())
    if not low < high:  # one value everywhere: a single bin around it
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    shares = []
    for sample in (ref, cur):
        counts, _ = np.histogram(np.clip(sample, low, high), bins=edges)
        shares.append((counts / sample.size).tolist())
    return {
        "kind": "numeric",
        "edges": edges.tolist(),
        "reference": shares[0],
        "current": shares[1],
    }


def _categorical_summary(ref: np.ndarray, cur: np.ndarray) -> dict[str, Any] | None:
    ref_shares, cur_shares = _shares(ref), _shares(cur)
    if not ref_shares or not cur_shares:
        return None
    every = set(ref_shares) | set(cur_shares)
    ranked = sorted(every, key=lambda c: (-max(ref_shares.get(c, 0.0), cur_shares.get(c, 0.0)), c))
    keep = ranked if len(ranked) <= TOP_CATEGORIES + 1 else ranked[:TOP_CATEGORIES]
    categories = list(keep)
    reference = [ref_shares.get(c, 0.0) for c in keep]
    current = [cur_shares.get(c, 0.0) for c in keep]
    if len(keep) < len(ranked):
        categories.append(OTHER_CATEGORY)
        reference.append(max(0.0, 1.0 - sum(reference)))
        current.append(max(0.0, 1.0 - sum(current)))
    return {
        "kind": "categorical",
        "categories": categories,
        "reference": reference,
        "current": current,
    }


def _shares(values: np.ndarray) -> dict[str, float]:
    """Share of each category (as text) among the values that aren't missing."""
    if values.dtype.kind == "f":
        values = values[~np.isnan(values)]
    elif values.dtype.kind == "O":
        values = np.array([v for v in values if v is not None and v == v], dtype=object)
    if values.size == 0:
        return {}
    labels, counts = np.unique(values.astype(str), return_counts=True)
    total = float(counts.sum())
    return {str(label): int(count) / total for label, count in zip(labels, counts, strict=True)}


def _column(data: Any, name: str) -> np.ndarray | None:
    """One column of a DataFrame, pyarrow table or dict of arrays, as numpy; None if absent."""
    if data is None:
        return None
    try:
        values = data[name]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if hasattr(values, "to_numpy"):  # pandas Series, pyarrow ChunkedArray
        values = values.to_numpy()
    return np.asarray(values)


def _is_categorical(result: TestResult) -> bool | None:
    """True when the test compared categories (chi2, or a binned test over categories
    such as ``compare_features`` runs on discrete numbers); else None: decide by dtype."""
    if result.method in CATEGORICAL_METHODS or "categories" in result.details:
        return True
    return None


# -- HTML ------------------------------------------------------------------------------------

_STYLE = """
.pyflare-drift{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;font-size:13px;color:#1f2933}
.pyflare-drift h3{margin:0 0 4px 0;font-size:15px}
.pyflare-drift .verdict{margin:0 0 8px 0}
.pyflare-drift .drifted{color:#c73a3a;font-weight:600}
.pyflare-drift .stable{color:#3a8f5c;font-weight:600}
.pyflare-drift table{border-collapse:collapse;margin:4px 0 10px 0}
.pyflare-drift th,.pyflare-drift td{padding:3px 8px;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:middle}
.pyflare-drift th{font-weight:600;background:#f5f7fa}
.pyflare-drift td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pyflare-drift .details{color:#616e7c;font-size:11px}
.pyflare-drift .legend{color:#616e7c;font-size:11px;margin:0 0 6px 0}
.pyflare-drift .swatch{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px;vertical-align:middle}
"""


def report_html(report: DriftReport, reference: Any = None, current: Any = None) -> str:
    """The report as one self-contained HTML fragment (inline CSS and SVG, no scripts).

    Given the ``reference`` and ``current`` data the report was computed on, each
    feature's row shows their distributions; without them, the summaries
    :func:`compare` stored in ``details["distribution"]`` are drawn, if any.
    Each row's bar is the feature's score on the common 0..1 scale, where 0.5 (the
    mark) is the threshold of every method (see :mod:`pyflare.drift.result`).
    """
    results = sorted(
        report.results.items(), key=lambda item: (not item[1].is_drifted, -item[1].score, item[0])
    )
    drifted = sum(result.is_drifted for _, result in results)
    verdict = "".join(
        [
            '<span class="drifted">Drift detected</span>'
            if report.is_drifted
            else '<span class="stable">No drift detected</span>',
            f" &middot; score {_number(report.score)} (threshold {_number(report.threshold)})",
            f" &middot; {drifted} of {len(results)} features drifted",
            f", {len(report.skipped)} skipped" if report.skipped else "",
            f" &middot; false-discovery control: {_text(report.fdr)}" if report.fdr else "",
            f" &middot; computed {_text(_timestamp(report.computed_at_ns))}",
        ]
    )
    parts = [
        '<div class="pyflare-drift">',
        f"<style>{_STYLE}</style>",
        f"<h3>{_text(str(report.drift_type).capitalize())} drift report</h3>",
        f'<p class="verdict">{verdict}</p>',
    ]
    if report.explanation:
        parts.append(f'<p class="details">{_text(report.explanation)}</p>')
    if results:
        parts += [
            '<p class="legend">distributions:'
            f'<span class="swatch" style="background:{_REFERENCE_COLOUR}"></span>reference'
            f'<span class="swatch" style="background:{_CURRENT_COLOUR}"></span>current</p>',
            "<table>",
            "<thead><tr><th>feature</th><th>method</th><th>statistic</th><th>p-value</th>"
            "<th>threshold</th><th>score (mark: threshold)</th><th>drifted</th>"
            "<th>n (ref / cur)</th><th>distributions</th></tr></thead>",
            "<tbody>",
        ]
        for name, result in results:
            parts.append(_row(name, result, _summary(name, result, reference, current)))
        parts += ["</tbody>", "</table>"]
    if report.skipped:
        parts += [
            "<table>",
            "<thead><tr><th>skipped feature</th><th>reason</th></tr></thead>",
            "<tbody>",
        ]
        parts += [
            f"<tr><td>{_text(skip.feature)}</td><td>{_text(skip.reason)}</td></tr>"
            for skip in report.skipped
        ]
        parts += ["</tbody>", "</table>"]
    parts.append("</div>")
    return "\n".join(parts)


def _summary(
    name: str, result: TestResult, reference: Any, current: Any
) -> Mapping[str, Any] | None:
    if reference is not None and current is not None:
        return distribution_summary(
            _column(reference, name), _column(current, name), categorical=_is_categorical(result)
        )
    stored = result.details.get(DISTRIBUTION_KEY)
    return stored if isinstance(stored, Mapping) else None


def _row(name: str, result: TestResult, summary: Mapping[str, Any] | None) -> str:
    flag = (
        '<span class="drifted">yes</span>'
        if result.is_drifted
        else '<span class="stable">no</span>'
    )
    details = _details(result.details)
    name_cell = _text(name) + (f'<div class="details">{details}</div>' if details else "")
    cells = [
        f"<td>{name_cell}</td>",
        f"<td>{_text(result.method)}</td>",
        f'<td class="num">{_number(result.statistic)}</td>',
        f'<td class="num">{_number(result.p_value)}</td>',
        f'<td class="num">{_number(result.threshold)}</td>',
        f"<td>{_score_bar(result)}</td>",
        f"<td>{flag}</td>",
        f'<td class="num">{result.reference_size:,} / {result.current_size:,}</td>',
        f"<td>{_plot(summary) if summary is not None else ''}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def _score_bar(result: TestResult) -> str:
    """The score on its 0..1 scale, the mark at 0.5: every method's threshold."""
    colour = _DRIFT_COLOUR if result.is_drifted else _OK_COLOUR
    score = min(max(result.score, 0.0), 1.0)
    mark = _BAR_WIDTH * SCORE_THRESHOLD
    return (
        f'<svg width="{_BAR_WIDTH + 40}" height="{_BAR_HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f"<title>score {score:.3f}, threshold {SCORE_THRESHOLD:g}</title>"
        f'<rect x="0" y="0" width="{_BAR_WIDTH}" height="{_BAR_HEIGHT}" fill="#e4e7eb"/>'
        f'<rect x="0" y="0" width="{_BAR_WIDTH * score:.1f}" height="{_BAR_HEIGHT}" '
        f'fill="{colour}"/>'
        f'<line x1="{mark:g}" y1="0" x2="{mark:g}" y2="{_BAR_HEIGHT}" stroke="#1f2933" '
        f'stroke-width="1.5"/>'
        f'<text x="{_BAR_WIDTH + 4}" y="{_BAR_HEIGHT - 2}" font-size="10" '
        f'fill="#1f2933">{score:.3f}</text></svg>'
    )


def _plot(summary: Mapping[str, Any]) -> str:
    reference, current = summary.get("reference"), summary.get("current")
    if not isinstance(reference, Sequence) or not isinstance(current, Sequence):
        return ""
    if len(reference) != len(current) or not reference:
        return ""
    if summary.get("kind") == "categorical":
        return _category_bars(summary.get("categories", []), reference, current)
    return _histogram(summary.get("edges", []), reference, current)


def _histogram(edges: Sequence[float], reference: Sequence[float], current: Sequence[float]) -> str:
    """Reference as grey bars, current as a blue step line, on one scale."""
    bins = len(reference)
    top = max(max(reference), max(current)) or 1.0
    width = _PLOT_WIDTH / bins
    height = _PLOT_HEIGHT - 2

    def y(share: float) -> float:
        return _PLOT_HEIGHT - height * share / top

    bars = "".join(
        f'<rect x="{i * width:.1f}" y="{y(share):.1f}" width="{max(width - 0.5, 0.5):.1f}" '
        f'height="{_PLOT_HEIGHT - y(share):.1f}" fill="{_REFERENCE_COLOUR}"/>'
        for i, share in enumerate(reference)
    )
    points = []
    for i, share in enumerate(current):
        points += [f"{i * width:.1f},{y(share):.1f}", f"{(i + 1) * width:.1f},{y(share):.1f}"]
    title = (
        f"{_number(edges[0])} to {_number(edges[-1])}" if len(edges) == bins + 1 else "histogram"
    )
    return (
        f'<svg width="{_PLOT_WIDTH}" height="{_PLOT_HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{_text(title)}</title>{bars}'
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{_CURRENT_COLOUR}" '
        f'stroke-width="1.5"/></svg>'
    )


def _category_bars(
    categories: Sequence[Any], reference: Sequence[float], current: Sequence[float]
) -> str:
    """A pair of bars per category (reference grey, current blue), a tooltip naming it."""
    count = len(reference)
    top = max(max(reference), max(current)) or 1.0
    slot = _PLOT_WIDTH / count
    bar = max(slot / 2 - 1, 1.0)
    height = _PLOT_HEIGHT - 2
    shapes = []
    for i in range(count):
        label = str(categories[i]) if i < len(categories) else f"#{i}"
        tip = f"{label}: reference {reference[i]:.1%}, current {current[i]:.1%}"
        for offset, share, colour in (
            (0.0, reference[i], _REFERENCE_COLOUR),
            (bar, current[i], _CURRENT_COLOUR),
        ):
            h = height * share / top
            shapes.append(
                f'<rect x="{i * slot + offset:.1f}" y="{_PLOT_HEIGHT - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{_text(tip)}</title></rect>'
            )
    return (
        f'<svg width="{_PLOT_WIDTH}" height="{_PLOT_HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(shapes)}</svg>'
    )


def _details(details: Mapping[str, Any]) -> str:
    """The small entries of a result's details, as escaped text (long lists are left out)."""
    shown = []
    for key, value in details.items():
        if key == DISTRIBUTION_KEY:
            continue
        if isinstance(value, Mapping) or (
            isinstance(value, Sequence | np.ndarray)
            and not isinstance(value, str)
            and len(value) > 8
        ):
            continue  # bins, proportions: in to_dict(), too long for a table cell
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        if len(text) > 80:
            text = text[:77] + "..."
        shown.append(f"{_text(str(key))}: {_text(text)}")
    return "; ".join(shown)


def _number(value: float | None) -> str:
    if value is None:
        return "&ndash;"
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "&infin;" if value > 0 else "-&infin;"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.3e}"
    return f"{value:.4g}"


def _timestamp(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)
