"""The drift processor: span batches in, drift results and references in a real DuckDB store."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from _drift_spans import T0, WINDOW_NS, feed, processor, window_spans

from pyflare.drift import FeatureDriftDetector, PredictionDriftConfig, PredictionDriftDetector
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.pipeline.drift import DriftProcessor, drift_processor
from pyflare_server.pipeline.processors import Processor
from pyflare_server.receiver.decode import Signal
from pyflare_server.settings import DriftSettings


def spans(
    attributes: Sequence[Mapping[str, Any]], *, window: int, model: str | None = "fraud"
) -> pa.Table:
    """One span per attribute set of model ``model``, spread over the window ``window``."""
    with_model = [{**({"pyflare.model.id": model} if model else {}), **a} for a in attributes]
    return window_spans(with_model, window=window)


def features(n: int, *, mean: float, seed: int, label_p: float = 0.1) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    amounts = rng.normal(mean, 10.0, n)
    countries = rng.choice(["US", "DE", "FR"], n)
    fraud = rng.random(n) < label_p
    return [
        {
            "pyflare.feature.amount": float(amount),
            "pyflare.feature.country": str(country),
            "pyflare.prediction.label": "fraud" if is_fraud else "ok",
            "pyflare.prediction.score": 0.9 if is_fraud else 0.1,
            "http.route": "/score",
        }
        for amount, country, is_fraud in zip(amounts, countries, fraud, strict=True)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBSpanStore]:
    with DuckDBSpanStore(tmp_path / "drift.duckdb") as opened:
        yield opened


def results(store: DuckDBSpanStore, drift_type: str = "feature") -> list[dict[str, Any]]:
    rows = store.drift_results("fraud", drift_type=drift_type).to_pylist()
    return sorted(rows, key=lambda r: r["window_start"])


def test_it_is_a_pipeline_processor(store: DuckDBSpanStore) -> None:
    assert isinstance(processor(store), Processor)
    assert processor(store).name == "drift"


def test_a_planted_shift_is_a_drifted_result_after_an_automatic_reference(
    store: DuckDBSpanStore,
) -> None:
    drift = processor(store)
    feed(
        drift,
        spans(features(200, mean=100, seed=1), window=0),  # becomes the reference
        spans(features(200, mean=100, seed=2), window=1),  # the same distribution
        spans(features(200, mean=140, seed=3), window=2),  # amount shifted
        spans(features(1, mean=100, seed=4), window=3),  # closes window 2
    )
    reference = store.drift_reference("fraud", "feature")
    assert reference is not None and reference[1]["n_samples"] == 200
    assert drift.counters.references_frozen == 2  # features and predictions
    rows = results(store)
    assert [r["window_start"].value for r in rows] == [T0 + WINDOW_NS, T0 + 2 * WINDOW_NS]
    calm, shifted = rows
    assert not calm["is_drifted"] and calm["score"] < 0.5
    assert shifted["is_drifted"] and shifted["score"] > 0.5
    scores = dict(shifted["feature_scores"])
    assert scores["amount"] > 0.5 > scores["country"]
    assert shifted["window_end"].value == T0 + 3 * WINDOW_NS
    assert shifted["n_current"] == 200 and shifted["n_reference"] == 200
    assert shifted["threshold"] == 0.5
    assert "amount" in shifted["explanation"]
    details = json.loads(shifted["details"])
    assert details["drift_type"] == "feature" and set(details["features"]) == {"amount", "country"}
    # the prediction mix did not change
    predictions = results(store, "prediction")
    assert len(predictions) == 2 and not any(r["is_drifted"] for r in predictions)
    assert predictions[0]["method"] == "chi2"
    assert drift.counters.errors == 0 and drift.counters.results == 4


def test_a_changed_prediction_mix_is_prediction_drift(store: DuckDBSpanStore) -> None:
    drift = processor(store)
    feed(
        drift,
        spans(features(300, mean=100, seed=1, label_p=0.1), window=0),
        spans(features(300, mean=100, seed=2, label_p=0.5), window=1),
    )
    assert drift.flush() == 2
    (prediction,) = results(store, "prediction")
    assert prediction["is_drifted"] and prediction["drift_type"] == "prediction"
    (feature,) = results(store)
    assert not feature["is_drifted"]


def test_an_uploaded_reference_is_used_and_a_newer_one_replaces_it(
    store: DuckDBSpanStore,
) -> None:
    def upload(mean: float) -> None:
        detector = FeatureDriftDetector()
        detector.set_reference({"amount": np.random.default_rng(9).normal(mean, 10.0, 500)})
        store.put_drift_reference("fraud", "feature", detector.state(), n_samples=500)

    upload(mean=140)
    drift = processor(store)
    feed(drift, spans(features(200, mean=100, seed=1), window=0))
    drift.flush()
    (first,) = results(store)
    assert first["is_drifted"]  # against the uploaded reference, not frozen from the window
    assert dict(first["feature_scores"]).keys() == {"amount"}  # country is not in the reference
    assert json.loads(first["details"])["skipped"] == [
        {"feature": "country", "reason": "not in the reference"}
    ]
    upload(mean=100)
    feed(drift, spans(features(200, mean=100, seed=2), window=1))
    drift.flush()
    assert [r["is_drifted"] for r in results(store)] == [True, False]
    assert drift.counters.references_loaded == 2
    assert drift.counters.references_frozen == 1  # predictions only


def test_an_uploaded_prediction_reference_decides_the_kind(store: DuckDBSpanStore) -> None:
    detector = PredictionDriftDetector(PredictionDriftConfig(kind="regression"))
    detector.set_reference(list(np.random.default_rng(3).uniform(0.0, 0.2, 400)))
    store.put_drift_reference("fraud", "prediction", detector.state(), n_samples=400)
    drift = processor(store)
    feed(drift, spans(features(200, mean=100, seed=1, label_p=0.5), window=0))
    drift.flush()
    (prediction,) = results(store, "prediction")
    assert prediction["is_drifted"]  # scores of 0.9 never seen in the reference
    assert prediction["method"] != "chi2"


def test_a_restarted_processor_reads_the_frozen_reference(store: DuckDBSpanStore) -> None:
    first = processor(store)
    feed(first, spans(features(200, mean=100, seed=1), window=0))
    first.flush()
    assert store.drift_reference("fraud", "feature") is not None
    again = processor(store)
    feed(again, spans(features(200, mean=140, seed=2), window=1))
    again.flush()
    assert again.counters.references_loaded == 2 and again.counters.references_frozen == 0
    assert [r["is_drifted"] for r in results(store)] == [True]


def test_without_auto_reference_windows_are_skipped(store: DuckDBSpanStore) -> None:
    drift = processor(store, auto_reference=False)
    feed(drift, spans(features(200, mean=100, seed=1), window=0))
    assert drift.flush() == 0
    assert drift.counters.skipped_windows == 2 and drift.counters.references_frozen == 0
    assert store.drift_reference("fraud", "feature") is None
    assert store.models_with_drift() == []


def test_small_windows_are_skipped_and_never_become_the_reference(
    store: DuckDBSpanStore,
) -> None:
    drift = processor(store)
    feed(
        drift,
        spans(features(20, mean=100, seed=1), window=0),
        spans(features(200, mean=100, seed=2), window=1),
        spans(features(20, mean=140, seed=3), window=2),
    )
    drift.flush()
    reference = store.drift_reference("fraud", "feature")
    assert reference is not None and reference[1]["n_samples"] == 200
    assert results(store) == []  # the last window is too small to compare
    assert drift.counters.skipped_windows == 6


def test_batches_without_drift_attributes_are_untouched(store: DuckDBSpanStore) -> None:
    drift = processor(store)
    plain = spans([{"http.route": "/x"}] * 10, window=0)
    no_model = spans(features(10, mean=100, seed=1), window=0, model=None)
    feed(drift, plain, no_model, plain.slice(3, 4), plain.slice(0, 0))
    metrics = pa.table({"x": [1]})
    assert drift.process(Signal.METRICS, metrics) is metrics
    assert drift.counters.spans == 0 and drift.flush() == 0


def test_only_the_spans_with_drift_attributes_and_a_model_are_read(
    store: DuckDBSpanStore,
) -> None:
    drift = processor(store)
    mixed = pa.concat_tables(
        [
            spans([{"http.route": "/x"}] * 5, window=0),
            spans(features(7, mean=100, seed=1), window=0),
            spans(features(3, mean=100, seed=1), window=0, model=None),
        ]
    )
    feed(drift, mixed.slice(2), mixed.slice(0, 3))
    assert drift.counters.spans == 7


def test_batches_without_drift_attributes_pass_through(store: DuckDBSpanStore) -> None:
    drift = processor(store)
    batch = spans([{"pyflare.model.id": "chat", "http.route": "/x", "a": "1"}] * 1000, window=0)
    for _ in range(3):
        assert drift.process(Signal.TRACES, batch) is batch
    assert drift.counters.spans == 0
    assert drift.flush() == 0


def test_errors_are_counted_and_the_batch_goes_on(store: DuckDBSpanStore) -> None:
    drift = processor(store)
    feed(drift, spans(features(200, mean=100, seed=1), window=0))
    feed(drift, spans(features(200, mean=140, seed=2), window=1))
    store.close()
    batch = spans(features(200, mean=140, seed=3), window=2)
    assert drift.process(Signal.TRACES, batch) is batch  # closing window 1 fails to write
    assert drift.counters.errors >= 1 and drift.counters.results == 0


def test_an_unreadable_reference_is_counted_and_replaced(store: DuckDBSpanStore) -> None:
    store.put_drift_reference("fraud", "feature", b"not a state", n_samples=1)
    drift = processor(store)
    feed(drift, spans(features(200, mean=100, seed=1), window=0))
    drift.flush()
    assert drift.counters.errors == 1
    reference = store.drift_reference("fraud", "feature")
    assert reference is not None and reference[1]["n_samples"] == 200


def test_late_spans_are_counted(store: DuckDBSpanStore) -> None:
    drift = processor(store)
    feed(
        drift,
        spans(features(200, mean=100, seed=1), window=1),
        spans(features(5, mean=100, seed=1), window=0),
    )
    assert drift.counters.dropped_late == 10  # features and predictions


def test_the_factory_follows_the_settings(store: DuckDBSpanStore) -> None:
    assert drift_processor(DriftSettings(enabled=False), store) is None
    made = drift_processor(DriftSettings(window_s=120, min_sample_size=10), store)
    assert isinstance(made, DriftProcessor)
    assert (made.window_s, made.min_sample_size, made.auto_reference) == (120, 10, True)


def test_bad_options_are_drift_errors(store: DuckDBSpanStore) -> None:
    from pyflare.errors import DriftError

    with pytest.raises(DriftError, match="min_sample_size"):
        processor(store, min_sample_size=0)
    with pytest.raises(DriftError, match="window_s > 0"):
        processor(store, window_s=0)
