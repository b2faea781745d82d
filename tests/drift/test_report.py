"""The notebook view: compare() and report_html()."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from pyflare.drift.report import compare, distribution_summary, report_html
from pyflare.drift.result import (
    DriftReport,
    DriftType,
    FeatureSkip,
    TestResult,
    distance_score,
    p_value_score,
)

EVIL = '<script>alert("x")</script>'


class _Tags(HTMLParser):
    """Counts tags and checks that every opened element is closed, in order."""

    VOID = frozenset({"br", "hr", "img", "meta", "input", "col"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.counts: dict[str, int] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(markup: str) -> _Tags:
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def _ks(p: float, statistic: float = 0.2, alpha: float = 0.05) -> TestResult:
    return TestResult(
        method="ks",
        statistic=statistic,
        p_value=p,
        threshold=alpha,
        is_drifted=p < alpha,
        score=p_value_score(p, alpha),
        reference_size=1000,
        current_size=800,
    )


def _psi(value: float, threshold: float = 0.2) -> TestResult:
    return TestResult(
        method="psi",
        statistic=value,
        p_value=None,
        threshold=threshold,
        is_drifted=value >= threshold,
        score=distance_score(value, threshold),
        reference_size=1000,
        current_size=800,
        details={"bins": 10, "unseen": ["<b>new</b>"]},
    )


def _report(results: dict[str, TestResult], skipped: tuple[FeatureSkip, ...] = ()) -> DriftReport:
    return DriftReport.from_results(DriftType.FEATURE, results, skipped, computed_at_ns=0)


def test_structure_one_row_per_feature_and_balanced_markup() -> None:
    report = _report({"age": _ks(1e-6, statistic=0.31), "income": _psi(0.05)})

    markup = report_html(report)

    tags = _parse(markup)
    assert tags.counts.get("script", 0) == 0
    assert markup.startswith('<div class="pyflare-drift">')
    body = markup.split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("<tr>") == 2
    assert "Drift detected" in markup
    assert "1 of 2 features drifted" in markup
    assert "1970-01-01 00:00:00 UTC" in markup
    # Drifted rows come first, whatever the report's order.
    assert body.index("age") < body.index("income")


def test_numbers_are_shown() -> None:
    report = _report({"age": _ks(1.234e-7, statistic=0.3125), "income": _psi(0.0432, 0.2)})

    text = "".join(_parse(report_html(report)).text)

    assert "ks" in text
    assert "psi" in text
    assert "0.3125" in text  # KS statistic
    assert "1.234e-07" in text  # p-value
    assert "0.05" in text  # alpha
    assert "0.0432" in text  # PSI value
    assert "0.2" in text  # PSI threshold
    assert f"{p_value_score(1.234e-7, 0.05):.3f}" in text  # the score next to its bar
    assert "1,000 / 800" in text
    assert "\u2013" in text  # PSI has no p-value: a dash, not a made-up number


def test_score_bar_marks_the_threshold_and_colours_the_decision() -> None:
    report = _report({"drifted": _ks(1e-9), "stable": _ks(0.8)})

    markup = report_html(report)

    rows = markup.split("<tbody>")[1].split("</tr>")
    drifted_row, stable_row = rows[0], rows[1]
    assert "#c73a3a" in drifted_row
    assert "#3a8f5c" in stable_row
    # The threshold mark sits at half the bar: every method's threshold is score 0.5.
    assert '<line x1="60" y1="0" x2="60"' in drifted_row
    fill = re.search(r'<rect x="0" y="0" width="([\d.]+)" height="12" fill="#3a8f5c"', stable_row)
    assert fill is not None
    assert float(fill.group(1)) == pytest.approx(120 * p_value_score(0.8, 0.05), abs=0.1)


def test_text_is_escaped() -> None:
    report = _report(
        {EVIL: _psi(0.5)},
        (FeatureSkip(feature='<img src=x onerror="boom">', reason="constant <column> & empty"),),
    )

    markup = report_html(report)

    tags = _parse(markup)
    assert EVIL not in markup
    assert html.escape(EVIL) in markup
    assert "<img" not in markup
    assert "constant &lt;column&gt; &amp; empty" in markup
    assert "&lt;b&gt;new&lt;/b&gt;" in markup  # details are escaped too
    assert tags.counts.get("script", 0) == 0
    assert tags.counts.get("img", 0) == 0
    assert EVIL in "".join(tags.text)  # ...and read back as the very same text


def test_skipped_features_are_listed_with_reasons() -> None:
    report = _report(
        {"age": _ks(0.3)},
        (
            FeatureSkip(feature="id", reason="constant in both samples"),
            FeatureSkip(feature="notes", reason="all values missing in current"),
        ),
    )

    markup = report_html(report)

    assert "No drift detected" in markup
    assert "2 skipped" in markup
    skipped = markup.split("skipped feature")[1]
    assert "id</td><td>constant in both samples" in skipped
    assert "notes</td><td>all values missing in current" in skipped


def test_distributions_drawn_from_given_data() -> None:
    rng = np.random.default_rng(1)
    reference = {"x": rng.normal(0, 1, 2000), "colour": rng.choice(["red", EVIL], 2000)}
    current = {"x": rng.normal(1, 1, 1500), "colour": rng.choice(["red", "blue"], 1500)}
    report = _report({"x": _ks(1e-12), "colour": _psi(0.4)})

    without = report_html(report)
    with_data = report_html(report, reference, current)

    assert "<polyline" not in without
    rows = with_data.split("<tbody>")[1].split("</tr>")
    x_row = next(row for row in rows if "<td>x" in row)
    colour_row = next(row for row in rows if "<td>colour" in row)
    assert x_row.count("<svg") == 2  # score bar + histogram
    assert "<polyline" in x_row
    assert colour_row.count("<title>") >= 2 * 3  # a tooltip per bar, three categories
    assert "blue: reference 0.0%" in colour_row
    assert html.escape(EVIL) in colour_row
    _parse(with_data)


def test_numeric_summary_shares_and_range() -> None:
    reference = np.concatenate([np.linspace(0, 1, 999), [np.nan, np.inf]])
    current = np.concatenate([np.linspace(0, 1, 500), [1e9]])  # one far outlier

    summary = distribution_summary(reference, current)

    assert summary is not None
    assert summary["kind"] == "numeric"
    assert len(summary["edges"]) == len(summary["reference"]) + 1
    assert sum(summary["reference"]) == pytest.approx(1.0)  # NaN and inf left out
    assert sum(summary["current"]) == pytest.approx(1.0)  # the outlier is in the last bin
    assert summary["edges"][-1] < 10  # ...not stretching the range


def test_categorical_summary_keeps_top_categories_and_sums_the_rest() -> None:
    reference = np.array([f"c{i}" for i in range(20)] * 5 + ["c0"] * 100, dtype=object)
    current = np.array(["c0"] * 50 + ["new"] * 50 + [None], dtype=object)

    summary = distribution_summary(reference, current)

    assert summary is not None
    assert summary["kind"] == "categorical"
    assert summary["categories"][:2] == ["c0", "new"]
    assert summary["categories"][-1] == "(other)"
    assert len(summary["categories"]) == 9
    assert sum(summary["reference"]) == pytest.approx(1.0)
    assert sum(summary["current"]) == pytest.approx(1.0)  # None is left out
    assert summary["current"][1] == pytest.approx(0.5)


def test_summary_of_nothing_is_none() -> None:
    assert distribution_summary(None, [1.0]) is None
    assert distribution_summary([np.nan], [1.0, 2.0]) is None
    assert distribution_summary(np.zeros((2, 2)), np.zeros((2, 2))) is None


def _accounts(rng: np.random.Generator, n: int, shift: float, pro: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "shifted": rng.normal(shift, 1, n),
            "same": rng.normal(0, 1, n),
            "plan": rng.choice(["free", "pro"], n, p=[1 - pro, pro]),
            "seats": rng.integers(1, 4, n),
            "constant": np.ones(n),
        }
    )


def test_compare_returns_the_feature_report_with_distributions() -> None:
    rng = np.random.default_rng(7)
    reference = _accounts(rng, 3000, shift=0.0, pro=0.2)
    current = _accounts(rng, 3000, shift=1.0, pro=0.6)

    report = compare(reference, current)

    assert report.drift_type == DriftType.FEATURE
    assert report.results["shifted"].is_drifted
    assert not report.results["same"].is_drifted
    assert report.results["plan"].is_drifted
    assert "constant" in {skip.feature for skip in report.skipped}
    numeric = report.results["shifted"].details["distribution"]
    assert numeric["kind"] == "numeric"
    categorical = report.results["plan"].details["distribution"]
    assert categorical["kind"] == "categorical"
    assert sorted(categorical["categories"]) == ["free", "pro"]
    # A discrete number compared as categories is drawn as categories too.
    seats = report.results["seats"].details["distribution"]
    assert seats["kind"] == "categorical"
    assert sorted(seats["categories"]) == ["1", "2", "3"]
    # The notebook view draws the stored summaries without the data.
    markup = report._repr_html_()
    assert markup.count("<polyline") == 2
    assert "pro: reference" in markup
    assert "constant" in markup.split("skipped feature")[1]
    _parse(markup)
    # The stored summaries are plain JSON.
    assert report.to_dict()["features"]["plan"]["details"]["distribution"] == categorical
    frame = report.to_frame()
    assert set(frame.index) == {"shifted", "same", "plan", "seats", "constant"}


def test_compare_without_distributions_is_compare_features() -> None:
    from pyflare.drift.features import compare_features

    rng = np.random.default_rng(3)
    reference = {"a": rng.normal(0, 1, 500)}
    current = {"a": rng.normal(0, 1, 500)}

    plain = compare(reference, current, distributions=False, alpha=0.01)
    direct = compare_features(reference, current, alpha=0.01)

    assert plain.results["a"] == direct.results["a"]
    assert "distribution" not in plain.results["a"].details
