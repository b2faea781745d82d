"""The VectorStore contract: every implementation gives the same answers.

Backends: DuckDB in the span store's file, DuckDB in memory, Qdrant local mode
in memory and in a directory (``qdrant-client``, the same client API as a
server). Collections here stay far below 20k points.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyflare.errors import InvalidArgumentError, StoreError
from pyflare.store.base import VectorStore
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare.store.duckdb_vectors import DuckDBVectorStore
from pyflare.store.vectors import (
    INFERENCE_EMBEDDINGS,
    REFERENCE_EMBEDDINGS,
    VectorFilter,
    reference_points,
)
from pyflare_server.storage.qdrant import QdrantVectorStore
from pyflare_server.storage.urls import parse_vectors_url

DIM = 8
INF, REF = INFERENCE_EMBEDDINGS, REFERENCE_EMBEDDINGS


def _duckdb_in_span_store(directory: Path) -> tuple[VectorStore, Callable[[], None]]:
    spans = DuckDBSpanStore(directory / "spans.duckdb")
    return spans.vector_store(DIM), spans.close


def _duckdb_memory(directory: Path) -> tuple[VectorStore, Callable[[], None]]:
    return DuckDBVectorStore(":memory:", dim=DIM), lambda: None


def _qdrant_memory(directory: Path) -> tuple[VectorStore, Callable[[], None]]:
    url = parse_vectors_url("qdrant+local:///:memory:")
    return QdrantVectorStore.open(url, dim=DIM), lambda: None


def _qdrant_path(directory: Path) -> tuple[VectorStore, Callable[[], None]]:
    url = parse_vectors_url(f"qdrant+local:///{directory / 'qdrant'}")
    return QdrantVectorStore.open(url, dim=DIM), lambda: None


VECTOR_FACTORIES: dict[str, Callable[[Path], tuple[VectorStore, Callable[[], None]]]] = {
    "duckdb-span-file": _duckdb_in_span_store,
    "duckdb-memory": _duckdb_memory,
    "qdrant-local-memory": _qdrant_memory,
    "qdrant-local-path": _qdrant_path,
}


@pytest.fixture(params=sorted(VECTOR_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    vectors, release = VECTOR_FACTORIES[request.param](tmp_path)
    yield vectors
    vectors.close()
    release()


def _vectors(n: int, seed: int = 0) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.random.default_rng(seed).normal(size=(n, DIM))


def _unit(matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)


def _inference(n: int, seed: int = 0) -> tuple[list[str], Any, list[dict[str, Any]]]:
    ids = [f"trace{i:03d}:span" for i in range(n)]
    payloads = [
        {
            "trace_id": f"trace{i:03d}",
            "model_id": f"model-{i % 3}",
            "timestamp": 1_700_000_000_000_000_000 + i * 1_000_000_000,
            "embedding_type": "input" if i % 2 else "output",
            "input_hash": f"h{i}",
        }
        for i in range(n)
    ]
    return ids, _vectors(n, seed), payloads


def test_is_a_vector_store(store: VectorStore) -> None:
    assert isinstance(store, VectorStore)
    assert store.dim == DIM


def test_upsert_then_get_gives_back_unit_vectors_and_payloads(store: VectorStore) -> None:
    ids, vectors, payloads = _inference(6)
    payloads[0]["note"] = "an extra key"
    del payloads[1]["input_hash"]
    payloads[2]["timestamp"] = 1_700_000_000_123_456_789
    assert store.upsert(INF, ids, vectors, payloads) == 6

    got = store.get(INF, [ids[2], "missing", ids[0], ids[1]])

    assert got.ids == [ids[2], ids[0], ids[1]]
    np.testing.assert_allclose(got.vectors, _unit(vectors[[2, 0, 1]]), atol=1e-6)
    assert got.vectors.dtype == np.float32
    assert got.payloads[0]["timestamp"] == 1_700_000_000_123_456_000  # kept to the microsecond
    assert got.payloads[1] == payloads[0]
    assert got.payloads[2] == payloads[1]
    assert "input_hash" not in got.payloads[2]


def test_upsert_replaces_a_point_and_the_last_row_of_an_id_wins(store: VectorStore) -> None:
    ids, vectors, payloads = _inference(4)
    store.upsert(INF, ids, vectors, payloads)
    new = _vectors(2, seed=9)
    written = store.upsert(
        INF,
        [ids[0], ids[0]],
        new,
        [{"model_id": "first"}, {"model_id": "replaced", "trace_id": "t"}],
    )

    assert written == 1
    assert store.count(INF) == 4
    got = store.get(INF, [ids[0]])
    assert got.payloads == [{"model_id": "replaced", "trace_id": "t"}]
    np.testing.assert_allclose(got.vectors[0], _unit(new[1]), atol=1e-6)


def test_empty_upsert_writes_nothing(store: VectorStore) -> None:
    assert store.upsert(INF, [], np.empty((0, DIM)), []) == 0
    assert store.count(INF) == 0
    assert len(store.get(INF, [])) == 0


def test_search_ranks_by_cosine_similarity(store: VectorStore) -> None:
    ids, vectors, payloads = _inference(60)
    store.upsert(INF, ids, vectors, payloads)
    query = _vectors(1, seed=5)[0]

    hits = store.search(INF, query, limit=7)

    expected = _unit(vectors) @ _unit(query)
    order = np.argsort(-expected)[:7]
    assert [hit.id for hit in hits] == [ids[i] for i in order]
    np.testing.assert_allclose([hit.score for hit in hits], expected[order], atol=1e-5)
    assert hits[0].payload == payloads[order[0]]


def test_a_stored_vector_is_its_own_best_match(store: VectorStore) -> None:
    ids, vectors, payloads = _inference(20)
    store.upsert(INF, ids, vectors, payloads)

    hit = store.search(INF, vectors[11] * 3.5, limit=1)[0]

    assert hit.id == ids[11]
    assert hit.score == pytest.approx(1.0, abs=1e-5)


def test_search_with_fewer_points_than_the_limit_returns_them_all(store: VectorStore) -> None:
    ids, vectors, payloads = _inference(3)
    store.upsert(INF, ids, vectors, payloads)

    assert len(store.search(INF, vectors[0], limit=10)) == 3
    assert store.search(REF, vectors[0], limit=10) == []
    assert store.search_batch(REF, vectors[:2], limit=10) == [[], []]
    nobody = VectorFilter({"model_id": "nobody"})
    assert store.search_batch(INF, vectors[:2], limit=10, where=nobody) == [[], []]


def test_filtered_search_keeps_matching_points(store: VectorStore) -> None:
    ids, vectors, payloads = _inference(30)
    store.upsert(INF, ids, vectors, payloads)
    where = VectorFilter({"model_id": "model-1", "embedding_type": "input"})

    hits = store.search(INF, vectors[0], limit=30, where=where)

    matching = [
        i
        for i, p in enumerate(payloads)
        if p["model_id"] == "model-1" and p["embedding_type"] == "input"
    ]
    assert sorted(hit.id for hit in hits) == sorted(ids[i] for i in matching)
    assert all(hit.payload["model_id"] == "model-1" for hit in hits)


def test_time_range_is_half_open_and_exact_below_a_microsecond(store: VectorStore) -> None:
    ids, vectors, payloads = _inference(10)
    store.upsert(INF, ids, vectors, payloads)
    base = 1_700_000_000_000_000_000

    # Points at base + i seconds, i = 0..9: [base + 2 s, base + 5 s) holds i = 2, 3, 4.
    where = VectorFilter(since_ns=base + 2_000_000_000, until_ns=base + 5_000_000_000)
    assert store.count(INF, where=where) == 3
    hits = store.search(INF, vectors[0], limit=10, where=where)
    assert sorted(hit.id for hit in hits) == ids[2:5]
    # One nanosecond past a point leaves it out; one before the next point's time takes it in.
    assert store.count(INF, where=VectorFilter(since_ns=base + 2_000_000_001)) == 7
    assert store.count(INF, where=VectorFilter(until_ns=base + 5_000_000_001)) == 6
    assert store.count(INF, where=VectorFilter(until_ns=base)) == 0


def test_integer_fields_filter_the_reference_collection(store: VectorStore) -> None:
    ids, payloads = reference_points(
        "clf", _vectors(5), dim=DIM, dataset_version="v1", created_at_ns=1_000_000
    )
    store.upsert(REF, ids, _vectors(5), payloads)

    assert store.count(REF, where=VectorFilter({"sample_index": 3})) == 1
    assert store.get(REF, ["clf/v1/3"]).payloads == [
        {"model_id": "clf", "dataset_version": "v1", "created_at": 1_000_000, "sample_index": 3}
    ]


def test_search_batch_equals_one_search_per_query(store: VectorStore) -> None:
    ids, vectors, payloads = _inference(40)
    store.upsert(INF, ids, vectors, payloads)
    queries = _vectors(4, seed=7)
    where = VectorFilter({"model_id": "model-2"})

    batch = store.search_batch(INF, queries, limit=5, where=where)

    assert len(batch) == 4
    for query, hits in zip(queries, batch, strict=True):
        single = store.search(INF, query, limit=5, where=where)
        assert [hit.id for hit in hits] == [hit.id for hit in single]
        np.testing.assert_allclose(
            [hit.score for hit in hits], [hit.score for hit in single], atol=1e-6
        )


def test_reference_sampling_draws_distinct_points_of_one_model(store: VectorStore) -> None:
    reference = _vectors(50, seed=3)
    for model in ("a", "b"):
        ids, payloads = reference_points(
            model, reference, dim=DIM, dataset_version="2024-06", created_at_ns=0
        )
        store.upsert(REF, ids, reference, payloads)
    where = VectorFilter({"model_id": "a"})

    drawn = [store.sample(REF, 10, where=where) for _ in range(4)]

    for sample in drawn:
        assert len(sample) == 10
        assert len(set(sample.ids)) == 10
        assert all(p["model_id"] == "a" for p in sample.payloads)
        rows = [p["sample_index"] for p in sample.payloads]
        np.testing.assert_allclose(sample.vectors, _unit(reference[rows]), atol=1e-6)
    # Random draws: four samples of 10 out of 50 are not all the same points.
    assert len({point for sample in drawn for point in sample.ids}) > 10


def test_sample_returns_every_point_when_fewer_match(store: VectorStore) -> None:
    ids, vectors, payloads = _inference(9)
    store.upsert(INF, ids, vectors, payloads)

    sample = store.sample(INF, 100, where=VectorFilter({"model_id": "model-0"}))

    assert sorted(sample.ids) == [ids[0], ids[3], ids[6]]
    assert sample.vectors.shape == (3, DIM)
    assert len(store.sample(REF, 5)) == 0
    assert store.sample(REF, 5).vectors.shape == (0, DIM)


def test_count_and_delete(store: VectorStore) -> None:
    ids, vectors, payloads = _inference(12)
    store.upsert(INF, ids, vectors, payloads)

    assert store.count(INF) == 12
    assert store.count(INF, where=VectorFilter({"model_id": "model-0"})) == 4
    assert store.delete(INF, ids=[ids[0], "unknown", ids[0]]) == 1
    assert store.delete(INF, where=VectorFilter({"model_id": "model-1"})) == 4
    assert store.count(INF) == 7
    assert store.get(INF, [ids[0], ids[1]]).ids == []
    assert store.delete(INF, where=VectorFilter({"model_id": "nobody"})) == 0
    assert store.delete(INF, where=VectorFilter()) == 7
    assert store.count(INF) == 0


def test_collections_are_separate(store: VectorStore) -> None:
    ids, vectors, payloads = _inference(3)
    store.upsert(INF, ids, vectors, payloads)
    assert store.count(REF) == 0
    assert store.get(REF, ids).ids == []


BAD_UPSERTS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown collection", {"collection": "embeddings"}, "unknown vector collection"),
    ("wrong size", {"vectors": np.ones((2, DIM + 1))}, f"shape (n, {DIM})"),
    ("one vector, not rows", {"vectors": np.ones(DIM)}, "shape"),
    ("NaN", {"vectors": np.array([[np.nan] * DIM, [1.0] * DIM])}, "row 0 has NaN"),
    ("infinity", {"vectors": np.array([[1.0] * DIM, [np.inf] * DIM])}, "row 1 has NaN or infinite"),
    ("zero vector", {"vectors": np.array([[1.0] * DIM, [0.0] * DIM])}, "row 1 is all zeros"),
    ("text vectors", {"vectors": [["a"] * DIM, ["b"] * DIM]}, "array of numbers"),
    ("ragged vectors", {"vectors": [[1.0] * DIM, [1.0]]}, "array of numbers"),
    ("fewer ids", {"ids": ["a"]}, "1 ids, 2 vectors and 2 payloads"),
    ("empty id", {"ids": ["a", ""]}, "id 1 ('') must be a non-empty string"),
    ("int id", {"ids": ["a", 7]}, "id 1 (7)"),
    ("ids as one string", {"ids": "ab"}, "not one string"),
    (
        "no model_id",
        {"payloads": [{"model_id": "m"}, {"trace_id": "t"}]},
        "payload 1 has no model_id",
    ),
    (
        "int keyword",
        {"payloads": [{"model_id": "m"}, {"model_id": 3}]},
        "model_id=3 must be a string",
    ),
    (
        "text timestamp",
        {"payloads": [{"model_id": "m", "timestamp": "2024-01-01"}, {"model_id": "m"}]},
        "timestamp='2024-01-01'",
    ),
    (
        "float timestamp",
        {"payloads": [{"model_id": "m", "timestamp": 1.5}, {"model_id": "m"}]},
        "UTC nanoseconds",
    ),
    (
        "reserved key",
        {"payloads": [{"model_id": "m", "point_id": "x"}, {"model_id": "m"}]},
        "point_id",
    ),
    (
        "non-text extra",
        {"payloads": [{"model_id": "m", "score": 0.5}, {"model_id": "m"}]},
        "score=0.5",
    ),
    (
        "payload not a mapping",
        {"payloads": [{"model_id": "m"}, ["model_id"]]},
        "payload 1 must be a mapping",
    ),
    ("one payload mapping", {"payloads": {"model_id": "m"}}, "sequence of mappings"),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [(change, message) for _, change, message in BAD_UPSERTS],
    ids=[name for name, _, _ in BAD_UPSERTS],
)
def test_bad_upserts_are_refused_whole_and_the_store_goes_on(
    store: VectorStore, change: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {
        "collection": INF,
        "ids": ["a", "b"],
        "vectors": np.ones((2, DIM)),
        "payloads": [{"model_id": "m"}, {"model_id": "m"}],
    }
    arguments.update(change)

    with pytest.raises(InvalidArgumentError) as raised:
        store.upsert(
            arguments["collection"], arguments["ids"], arguments["vectors"], arguments["payloads"]
        )

    assert message in str(raised.value)
    assert store.count(INF) == 0
    assert store.upsert(INF, ["ok"], np.ones((1, DIM)), [{"model_id": "m"}]) == 1


BAD_READS: list[tuple[str, Callable[[VectorStore], object], str]] = [
    (
        "search unknown collection",
        lambda s: s.search("nope", np.ones(DIM)),
        "unknown vector collection",
    ),
    ("search wrong size", lambda s: s.search(INF, np.ones(DIM - 1)), f"shape (n, {DIM})"),
    (
        "search several vectors",
        lambda s: s.search(INF, np.ones((2, DIM))),
        "search_batch takes several",
    ),
    ("search zero vector", lambda s: s.search(INF, np.zeros(DIM)), "all zeros"),
    ("search text", lambda s: s.search(INF, "cat"), "numbers"),
    ("limit 0", lambda s: s.search(INF, np.ones(DIM), limit=0), "limit=0"),
    ("limit too big", lambda s: s.search(INF, np.ones(DIM), limit=10_001), "limit=10001"),
    ("limit bool", lambda s: s.search(INF, np.ones(DIM), limit=True), "limit=True"),
    ("batch of none", lambda s: s.search_batch(INF, np.empty((0, DIM))), "at least one"),
    ("batch one vector", lambda s: s.search_batch(INF, np.ones(DIM)), "shape"),
    (
        "filter unknown field",
        lambda s: s.count(INF, where=VectorFilter({"user": "u"})),
        "cannot filter inference_embeddings on 'user'",
    ),
    (
        "filter on a time field",
        lambda s: s.count(INF, where=VectorFilter({"timestamp": 1})),
        "since_ns/until_ns",
    ),
    (
        "filter int keyword",
        lambda s: s.count(INF, where=VectorFilter({"model_id": 1})),
        "must be a string",
    ),
    (
        "filter text integer",
        lambda s: s.count(REF, where=VectorFilter({"sample_index": "1"})),
        "must be an int",
    ),
    (
        "filter text time",
        lambda s: s.count(INF, where=VectorFilter(since_ns="today")),
        "since_ns='today'",
    ),
    ("where not a filter", lambda s: s.count(INF, where={"model_id": "m"}), "VectorFilter"),
    ("sample 0", lambda s: s.sample(REF, 0), "n=0"),
    ("get one string", lambda s: s.get(INF, "abc"), "not one string"),
    ("delete neither", lambda s: s.delete(INF), "ids or where"),
    ("delete both", lambda s: s.delete(INF, ids=["a"], where=VectorFilter()), "ids or where"),
]


@pytest.mark.parametrize(
    ("call", "message"),
    [(call, message) for _, call, message in BAD_READS],
    ids=[name for name, _, _ in BAD_READS],
)
def test_bad_queries_say_what_is_wrong(
    store: VectorStore, call: Callable[[VectorStore], object], message: str
) -> None:
    ids, vectors, payloads = _inference(3)
    store.upsert(INF, ids, vectors, payloads)

    with pytest.raises(InvalidArgumentError) as raised:
        call(store)

    assert message in str(raised.value)
    assert store.count(INF) == 3


def test_a_closed_store_refuses_calls(store: VectorStore) -> None:
    ids, vectors, payloads = _inference(2)
    store.upsert(INF, ids, vectors, payloads)
    store.close()
    store.close()

    with pytest.raises(StoreError, match="closed"):
        store.count(INF)
    with pytest.raises(StoreError, match="closed"):
        store.upsert(INF, ids, vectors, payloads)
