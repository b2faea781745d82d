"""Stateful detectors: references, windows, state bytes, and windowed computation per model."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from pyflare.drift.detector import (
    EmbeddingDriftConfig,
    EmbeddingDriftDetector,
    FeatureDriftConfig,
    FeatureDriftDetector,
    PredictionDriftConfig,
    PredictionDriftDetector,
)
from pyflare.drift.result import DriftType
from pyflare.drift.windows import WindowedDrift
from pyflare.errors import DriftError

S = 1_000_000_000


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, object]:
    return {
        "age": rng.normal(40 + shift * 10, 10, n),
        "plan": rng.choice(["free", "pro"], n, p=[0.7, 0.3]).tolist(),
    }


# -- references and windows -------------------------------------------------------------


def test_the_reference_is_a_bounded_uniform_sample() -> None:
    detector = FeatureDriftDetector(FeatureDriftConfig(reference_sample_size=1000))
    values = np.arange(50_000, dtype=float)
    detector.set_reference({"v": values})
    assert detector.reference_size == 1000
    # batches through update_reference: still uniform over everything seen
    for batch in np.array_split(values + 50_000, 50):
        detector.update_reference({"v": batch})
    sample = detector._reference.columns["v"]
    assert len(sample) == 1000 and len(np.unique(sample)) == 1000
    assert detector._reference.seen == 100_000
    assert abs(float(np.mean(sample < 50_000)) - 0.5) < 0.06
    assert abs(float(sample.mean()) - 50_000) < 3000


def test_feature_detector_finds_a_planted_shift_and_not_a_resample() -> None:
    rng = np.random.default_rng(0)
    detector = FeatureDriftDetector()
    assert detector.drift_type is DriftType.FEATURE
    detector.set_reference(_frame(rng, 5000))
    shifted = detector.compute(_frame(rng, 2000, shift=0.2))
    assert shifted.drift_type is DriftType.FEATURE
    assert shifted.results["age"].is_drifted
    assert not shifted.results["plan"].is_drifted
    assert not detector.compute(_frame(rng, 2000)).is_drifted


def test_rows_and_data_frames_are_windows_too() -> None:
    import pandas as pd  # a dependency: never skipped

    rng = np.random.default_rng(1)
    detector = FeatureDriftDetector(FeatureDriftConfig(min_sample_size=10))
    detector.set_reference(pd.DataFrame(_frame(rng, 500)))
    frame = _frame(rng, 300)
    rows = [{"age": a, "plan": p} for a, p in zip(frame["age"], frame["plan"], strict=True)]  # type: ignore[call-overload]
    from_rows = detector.compute(rows)
    from_columns = detector.compute(frame)
    assert from_rows.results["age"].statistic == from_columns.results["age"].statistic
    with pytest.raises(DriftError, match="same features"):
        detector.compute([{"age": 1.0}, {"plan": "pro"}])


def test_too_small_windows_and_missing_references_are_explicit_errors() -> None:
    rng = np.random.default_rng(2)
    detector = FeatureDriftDetector(FeatureDriftConfig(min_sample_size=100))
    with pytest.raises(DriftError, match="no reference"):
        detector.compute(_frame(rng, 200))
    detector.set_reference(_frame(rng, 500))
    with pytest.raises(DriftError, match="insufficient data: the window has 99 rows"):
        detector.compute(_frame(rng, 99))
    with pytest.raises(DriftError, match="insufficient data: the window has 0 rows"):
        detector.compute([])
    with pytest.raises(DriftError, match="empty"):
        detector.set_reference({"age": []})
    with pytest.raises(DriftError, match="different lengths"):
        detector.compute({"age": [1.0] * 200, "plan": ["pro"] * 100})
    with pytest.raises(DriftError):
        detector.compute("not a table")


def test_missing_and_infinite_values_in_a_window_are_counted_or_skipped() -> None:
    rng = np.random.default_rng(3)
    detector = FeatureDriftDetector()
    detector.set_reference(_frame(rng, 500))
    window = _frame(rng, 500)
    window["age"][0] = math.nan  # type: ignore[index]
    result = detector.compute(window).results["age"]
    # missing values are dropped and counted, never folded into the statistic
    assert result.current_size == 499
    assert result.details["current_missing"] == 1
    window["age"][1] = math.inf  # type: ignore[index]
    report = detector.compute(window)
    assert "age" not in report.results
    assert [s.feature for s in report.skipped] == ["age"]


# -- state -------------------------------------------------------------------------------


def test_feature_state_round_trips_and_is_bounded() -> None:
    rng = np.random.default_rng(4)
    config = FeatureDriftConfig(reference_sample_size=2000, categorical=("plan",))
    detector = FeatureDriftDetector(config)
    detector.set_reference(_frame(rng, 20_000))
    blob = detector.state()
    assert len(blob) < 40_000  # 2000 floats + 2000 short strings, compressed
    restored = FeatureDriftDetector.from_state(blob)
    assert restored.config == config
    for name in ("age", "plan"):
        assert (
            restored._reference.columns[name].tolist() == detector._reference.columns[name].tolist()
        )
    window = _frame(rng, 1000, shift=0.1)
    assert restored.compute(window).to_dict() | {"computed_at_ns": 0} == detector.compute(
        window
    ).to_dict() | {"computed_at_ns": 0}
    # the reservoir's random state travels too: later updates pick the same rows
    more = _frame(rng, 3000)
    detector.update_reference(more)
    restored.update_reference(more)
    assert (
        restored._reference.columns["age"].tolist() == detector._reference.columns["age"].tolist()
    )


def _rewrite_header(blob: bytes, **changes: object) -> bytes:
    with np.load(io.BytesIO(blob)) as archive:
        arrays = {k: archive[k] for k in archive.files}
    header = json.loads(arrays["header"].tobytes()) | changes
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)  # type: ignore[arg-type]
    return out.getvalue()


def test_wrong_state_bytes_raise_drift_error() -> None:
    detector = FeatureDriftDetector()
    detector.set_reference({"x": np.arange(200.0)})
    blob = detector.state()
    for bad, match in [
        (b"", "not a readable"),
        (b"garbage" * 10, "not a readable"),
        (blob[: len(blob) // 2], "not a readable"),
        (_rewrite_header(blob, version=2), "version 2 is not supported"),
        (_rewrite_header(blob, format="other"), "not a PyFlare"),
        (_rewrite_header(blob, config={"nope": 1}), "config is malformed"),
        (_rewrite_header(blob, config={"reference_sample_size": 10}), "larger than"),
    ]:
        with pytest.raises(DriftError, match=match):
            FeatureDriftDetector().load_state(bad)
    with pytest.raises(DriftError, match="'feature' detector's, not 'embedding'"):
        EmbeddingDriftDetector().load_state(blob)
    # a failed load leaves the detector as it was
    detector.load_state(blob)
    assert detector.reference_size == 200


# -- embeddings and predictions ----------------------------------------------------------


def test_embedding_detector_centroid_cosine_and_state() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(0, 1, 16)
    ref = base + rng.normal(0, 1, (3000, 16))
    detector = EmbeddingDriftDetector(EmbeddingDriftConfig(reference_sample_size=500))
    assert detector.drift_type is DriftType.EMBEDDING
    detector.set_reference(ref)
    assert detector.reference_size == 500
    same = detector.compute(base + rng.normal(0, 1, (400, 16)))
    moved = detector.compute(-base + rng.normal(0, 1, (400, 16)))
    assert same.drift_type is DriftType.EMBEDDING
    assert not same.is_drifted and moved.is_drifted
    restored = EmbeddingDriftDetector.from_state(detector.state())
    assert np.array_equal(
        restored._reference.columns["embedding"], detector._reference.columns["embedding"]
    )
    with pytest.raises(DriftError, match="16 dimensions"):
        detector.compute(rng.normal(0, 1, (400, 8)))
    with pytest.raises(DriftError, match="NaN"):
        detector.compute(np.full((400, 16), np.nan))
    with pytest.raises(DriftError, match="2-D"):
        detector.compute(rng.normal(0, 1, 16))
    with pytest.raises(DriftError, match="insufficient"):
        detector.compute(rng.normal(0, 1, (5, 16)))


def test_embedding_detector_mmd() -> None:
    rng = np.random.default_rng(6)
    config = EmbeddingDriftConfig(metric="mmd", permutations=50, min_sample_size=50)
    detector = EmbeddingDriftDetector(config)
    detector.set_reference(rng.normal(0, 1, (300, 8)))
    assert detector.compute(rng.normal(0.5, 1, (200, 8))).is_drifted


def test_prediction_detector_on_classes_and_llm_outputs() -> None:
    rng = np.random.default_rng(7)
    detector = PredictionDriftDetector()
    assert detector.drift_type is DriftType.PREDICTION
    detector.set_reference(rng.choice(["a", "b"], 3000, p=[0.5, 0.5]).tolist())
    report = detector.compute(rng.choice(["a", "b"], 1000, p=[0.6, 0.4]).tolist())
    assert report.drift_type is DriftType.PREDICTION and report.is_drifted
    restored = PredictionDriftDetector.from_state(detector.state())
    assert (
        restored.compute(rng.choice(["a", "b"], 1000).tolist()).drift_type is DriftType.PREDICTION
    )

    llm = PredictionDriftDetector(PredictionDriftConfig(kind="llm", min_sample_size=50))
    llm.set_reference(
        [{"text": "x" * int(n), "finish_reason": "stop"} for n in rng.integers(20, 80, 1000)]
    )
    longer = llm.compute(
        [{"text": "x" * int(n), "finish_reason": "stop"} for n in rng.integers(40, 100, 300)]
    )
    assert longer.results["output_length"].is_drifted
    with pytest.raises(DriftError):
        llm.compute("a string is not a window")


# -- windowed computation ------------------------------------------------------------------


def _classes(rng: np.random.Generator, n: int, p: float) -> list[str]:
    return rng.choice(["a", "b"], n, p=[p, 1 - p]).tolist()


def _windowed(min_sample_size: int = 50, **kw: object) -> WindowedDrift:
    rng = np.random.default_rng(8)

    def make(model_id: str) -> PredictionDriftDetector | None:
        if model_id == "ignored":
            return None
        detector = PredictionDriftDetector(PredictionDriftConfig(min_sample_size=min_sample_size))
        detector.set_reference(_classes(rng, 2000, 0.5))
        return detector

    return WindowedDrift(make, **kw)  # type: ignore[arg-type]


def test_windows_close_per_model_with_one_report_each() -> None:
    rng = np.random.default_rng(9)
    windowed = _windowed()
    records = []
    for w in range(3):  # three 5-minute windows; model m2 drifts in the third
        for i, label in enumerate(_classes(rng, 300, 0.5)):
            records.append((w * 300 * S + i * S // 2, "m1", label))
        for i, label in enumerate(_classes(rng, 300, 0.5 if w < 2 else 0.8)):
            records.append((w * 300 * S + i * S // 2 + 1, "m2", label))
        records.append((w * 300 * S + 5, "ignored", "a"))
    records.sort(key=lambda r: r[0])
    reports = windowed.add_many(records)
    assert [(r.model_id, r.start_ns // S) for r in reports] == [
        ("m1", 0),
        ("m2", 0),
        ("m1", 300),
        ("m2", 300),
    ]
    reports += windowed.flush()
    assert len(reports) == 6
    assert all(r.report is not None and r.end_ns - r.start_ns == 300 * S for r in reports)
    drifted = [(r.model_id, r.start_ns // S) for r in reports if r.report and r.report.is_drifted]
    assert drifted == [("m2", 600)]
    assert all(r.n_records == r.n_sampled == 300 for r in reports)
    assert windowed.flush() == []


def test_small_windows_are_reported_as_skipped_and_late_records_are_counted() -> None:
    windowed = _windowed(min_sample_size=50, window_s=60)
    assert windowed.add_many((i * S, "m", "a") for i in range(10)) == []
    closed = windowed.add(61 * S, "m", "a")  # closes [0, 60)
    assert len(closed) == 1
    assert closed[0].report is None
    assert closed[0].skipped_reason is not None and "insufficient data" in closed[0].skipped_reason
    assert windowed.add(5 * S, "m", "b") == []  # its window has closed
    assert windowed.dropped_late == 1


def test_window_memory_is_bounded() -> None:
    rng = np.random.default_rng(10)
    windowed = _windowed(min_sample_size=10, max_window_rows=100, max_models=2)
    labels = _classes(rng, 5000, 0.5)
    windowed.add_many((i * S // 100, "m", label) for i, label in enumerate(labels))
    windowed.add_many([(1, "n", "a"), (2, "o", "a")])
    (report,) = [r for r in windowed.flush() if r.model_id == "m"]
    assert report.n_records == 5000 and report.n_sampled == 100
    assert windowed.dropped_models == 1
    with pytest.raises(DriftError):
        WindowedDrift({}, window_s=0)


def test_lateness_keeps_a_window_open() -> None:
    windowed = _windowed(min_sample_size=1, window_s=60, lateness_s=30)
    windowed.add(10 * S, "m", "a")
    assert windowed.add(70 * S, "m", "a") == []  # within the lateness
    assert windowed.add(50 * S, "m", "b") == []  # still accepted
    (closed,) = windowed.add(95 * S, "m", "a")
    assert closed.start_ns == 0 and closed.n_records == 2
    assert windowed.dropped_late == 0


def test_column_types_from_rows() -> None:
    from pyflare.drift.detector import _table

    cols = _table(
        [{"n": 1, "m": None, "flag": True, "s": "x"}, {"n": 2.5, "m": 3, "flag": False, "s": None}],
        (),
    )
    assert cols["n"].dtype == np.float64 and cols["n"].tolist() == [1.0, 2.5]
    assert cols["m"].dtype == np.float64 and math.isnan(cols["m"][0])
    assert cols["flag"].tolist() == ["True", "False"]
    assert cols["s"].tolist() == ["x", None]
    assert _table({"n": [1, 2]}, ("n",))["n"].tolist() == ["1", "2"]
