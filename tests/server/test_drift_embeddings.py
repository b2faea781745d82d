"""Embedding drift in the drift processor: pyflare.embedding span attributes, a real DuckDB store."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from _drift_spans import feed, processor, window_spans

from pyflare import semconv as sc
from pyflare.drift import EmbeddingDriftConfig, EmbeddingDriftDetector
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.pipeline._drift_inputs import embedding_vector

DIMS = 16


def spans(
    attributes: Sequence[Mapping[str, Any]], *, window: int, model: str | None = "search"
) -> pa.Table:
    with_model = [{**({sc.MODEL_ID: model} if model else {}), **a} for a in attributes]
    return window_spans(with_model, window=window)


def vectors(n: int, *, shift: float = 0.0, seed: int, dims: int = DIMS) -> list[dict[str, Any]]:
    """``n`` spans' embeddings: standard normal, the mean moved by ``shift`` in every dimension."""
    rows = np.random.default_rng(seed).normal(shift, 1.0, (n, dims))
    return [{sc.EMBEDDING: tuple(float(x) for x in row)} for row in rows]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBSpanStore]:
    with DuckDBSpanStore(tmp_path / "drift.duckdb") as opened:
        yield opened


def results(store: DuckDBSpanStore, model: str = "search") -> list[dict[str, Any]]:
    rows = store.drift_results(model, drift_type="embedding").to_pylist()
    return sorted(rows, key=lambda r: r["window_start"])


def test_a_planted_mean_shift_is_embedding_drift(store: DuckDBSpanStore) -> None:
    drift = processor(store)
    feed(
        drift,
        spans(vectors(200, seed=1), window=0),  # becomes the reference
        spans(vectors(200, seed=2), window=1),
        spans(vectors(200, seed=3), window=2),
        spans(vectors(200, shift=0.5, seed=4), window=3),
    )
    assert drift.flush() == 1
    reference = store.drift_reference("search", "embedding")
    assert reference is not None and reference[1]["n_samples"] == 200
    *calm, shifted = results(store)
    assert len(calm) == 2
    assert shifted["is_drifted"] and shifted["drift_type"] == "embedding"
    assert shifted["score"] > 0.5 and shifted["score"] > max(r["score"] for r in calm)
    assert shifted["method"] == "mmd"
    assert shifted["n_reference"] == 200 and shifted["n_current"] == 200
    details = json.loads(shifted["details"])
    assert details["drift_type"] == "embedding"
    counters = drift.counters
    assert (counters.spans, counters.results, counters.references_frozen) == (800, 3, 1)
    assert counters.errors == 0 and counters.skipped_embeddings == 0


def test_calm_windows_score_lower_than_a_shift(store: DuckDBSpanStore) -> None:
    drift = processor(store)
    calm = [spans(vectors(200, seed=10 + w), window=w) for w in range(6)]
    feed(drift, *calm, spans(vectors(200, shift=0.3, seed=99), window=6))
    drift.flush()
    *quiet, shifted = results(store)
    assert len(quiet) == 5
    scores = sorted(r["score"] for r in quiet)
    assert scores[len(scores) // 2] < 0.5  # the median calm window is below the threshold
    assert shifted["score"] > scores[-1]


def test_bad_vectors_are_counted_and_left_out(store: DuckDBSpanStore) -> None:
    bad = [
        {sc.EMBEDDING: "not a vector"},
        {sc.EMBEDDING: (0.1, float("nan"), 0.3)},  # NaN is null in the row
        {sc.EMBEDDING: (True, False)},
        {sc.EMBEDDING: "[]"},
        {sc.EMBEDDING: "[1e39, 0.0]"},  # not finite in float32
    ]
    drift = processor(store)
    batch = spans([*vectors(200, seed=1), *bad, *vectors(3, seed=2, dims=8)], window=0)
    feed(drift, batch)
    assert drift.counters.skipped_embeddings == 5  # read, not yet compared
    feed(drift, spans(vectors(200, seed=3), window=1))
    assert drift.counters.skipped_embeddings == 5 + 3  # another dimension than the window's
    reference = store.drift_reference("search", "embedding")
    assert reference is not None and reference[1]["n_samples"] == 200
    assert drift.flush() == 1
    assert drift.counters.errors == 0


def test_embedding_vectors_are_read_from_their_json() -> None:
    vector = embedding_vector("[0.5, 1, -2.25]")
    assert vector is not None and vector.dtype == np.float32
    assert vector.tolist() == [0.5, 1.0, -2.25]
    for invalid in (None, "", "[", "{}", "[[1.0]]", '["a"]', "[1.0, null]", "[true]", "0.5"):
        assert embedding_vector(invalid) is None, invalid


def test_an_uploaded_reference_is_used(store: DuckDBSpanStore) -> None:
    def upload(shift: float) -> None:
        detector = EmbeddingDriftDetector(EmbeddingDriftConfig(metric="mmd", min_sample_size=50))
        detector.set_reference(np.random.default_rng(7).normal(shift, 1.0, (300, DIMS)))
        store.put_drift_reference("search", "embedding", detector.state(), n_samples=300)

    upload(shift=0.5)
    drift = processor(store)
    feed(drift, spans(vectors(200, seed=1), window=0))
    drift.flush()
    (first,) = results(store)
    assert first["is_drifted"] and first["n_reference"] == 300
    upload(shift=0.0)
    feed(drift, spans(vectors(200, seed=2), window=1))
    drift.flush()
    second = results(store)[1]
    assert second["score"] < first["score"]
    assert drift.counters.references_loaded == 2 and drift.counters.references_frozen == 0


def test_a_reference_of_another_dimension_skips_the_window(store: DuckDBSpanStore) -> None:
    detector = EmbeddingDriftDetector()
    detector.set_reference(np.random.default_rng(7).normal(0.0, 1.0, (300, 8)))
    store.put_drift_reference("search", "embedding", detector.state(), n_samples=300)
    drift = processor(store)
    feed(drift, spans(vectors(200, seed=1), window=0))
    assert drift.flush() == 0
    assert drift.counters.skipped_windows == 1 and drift.counters.errors == 0
    assert results(store) == []


def test_features_and_an_embedding_on_one_span_are_one_span(store: DuckDBSpanStore) -> None:
    drift = processor(store)
    rng = np.random.default_rng(5)
    both = [{**v, "pyflare.feature.length": float(rng.normal(50, 5))} for v in vectors(60, seed=5)]
    no_model = spans(vectors(10, seed=6), window=0, model=None)
    feed(drift, spans(both, window=0), no_model, spans(both, window=1))
    drift.flush()
    assert drift.counters.spans == 120
    assert len(results(store)) == 1
    assert len(store.drift_results("search", drift_type="feature").to_pylist()) == 1


def test_batches_without_embeddings_are_untouched(store: DuckDBSpanStore) -> None:
    drift = processor(store)
    batch = spans([{"http.route": "/x", "pyflare.embedding_model": "e5"}] * 500, window=0)
    feed(drift, batch, batch.slice(100, 10))
    assert drift.counters.spans == 0 and drift.counters.skipped_embeddings == 0
    assert drift.flush() == 0
