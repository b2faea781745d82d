"""The Qdrant vector store beyond the contract: the spec's collections, ids, batches, failures.

Qdrant runs in qdrant-client's local mode (the same client API as a server).
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from pyflare.errors import ConfigError, InvalidArgumentError, StoreError
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare.store.duckdb_vectors import DuckDBVectorStore
from pyflare.store.vectors import INFERENCE_EMBEDDINGS, REFERENCE_EMBEDDINGS
from pyflare_server.storage.qdrant import QdrantVectorStore, collection_config
from pyflare_server.storage.urls import DuckDBURL, QdrantURL, parse_vectors_url
from pyflare_server.storage.vectors import open_vector_store

INF, REF = INFERENCE_EMBEDDINGS, REFERENCE_EMBEDDINGS


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _store(client: QdrantClient, dim: int = 16, **options: int) -> QdrantVectorStore:
    return QdrantVectorStore(
        client, dim=dim, where="qdrant+local:///:memory:", local=True, **options
    )


def test_collections_follow_the_spec() -> None:
    client = QdrantClient(location=":memory:")
    with _store(client, dim=1536):
        for name in (INF, REF):
            config = client.get_collection(name).config
            assert config.params.vectors == models.VectorParams(
                size=1536, distance=models.Distance.COSINE
            )
            assert config.hnsw_config.m == 16
            assert config.hnsw_config.ef_construct == 100
        assert client.get_collection(INF).config.optimizer_config.indexing_threshold == 20_000


def test_payload_indexes_are_the_specs_payload_schema() -> None:
    keyword, integer, datetime = (
        models.PayloadSchemaType.KEYWORD,
        models.PayloadSchemaType.INTEGER,
        models.PayloadSchemaType.DATETIME,
    )
    assert collection_config(INF, 8)["payload_indexes"] == {
        "trace_id": keyword,
        "model_id": keyword,
        "timestamp": datetime,
        "embedding_type": keyword,
        "input_hash": keyword,
    }
    assert collection_config(REF, 8)["payload_indexes"] == {
        "model_id": keyword,
        "dataset_version": keyword,
        "created_at": datetime,
        "sample_index": integer,
    }
    assert collection_config(REF, 8)["optimizers_config"] is None


def test_points_are_stored_as_qdrant_expects() -> None:
    client = QdrantClient(location=":memory:")
    with _store(client, dim=2) as store:
        store.upsert(
            INF,
            ["trace-1:span-1"],
            [[3.0, 4.0]],
            [{"model_id": "m", "timestamp": 1_700_000_000_123_456_789}],
        )
        (record,) = client.scroll(INF, with_vectors=True)[0]

    assert record.payload == {
        "model_id": "m",
        "timestamp": "2023-11-14T22:13:20.123456Z",
        "point_id": "trace-1:span-1",
    }
    assert str(record.id) == str(record.id).lower()
    assert record.vector == pytest.approx([0.6, 0.8])


def test_ids_map_to_stable_distinct_uuids() -> None:
    from pyflare_server.storage._qdrant_schema import point_uuid

    assert point_uuid("a") == point_uuid("a")
    assert len({point_uuid(f"p{i}") for i in range(1000)}) == 1000


def test_upserts_go_in_batches() -> None:
    with _store(QdrantClient(location=":memory:"), dim=4, batch_size=7) as store:
        ids = [f"p{i}" for i in range(50)]
        vectors = np.random.default_rng(1).normal(size=(50, 4))

        assert store.upsert(INF, ids, vectors, [{"model_id": "m"}] * 50) == 50

        assert store.count(INF) == 50
        assert store.get(INF, ids).ids == ids


def test_a_local_directory_keeps_its_points_and_their_size(tmp_path: Path) -> None:
    url = parse_vectors_url(f"qdrant+local:///{tmp_path / 'q'}")
    with QdrantVectorStore.open(url, dim=4) as store:
        store.upsert(REF, ["r0", "r1"], np.eye(2, 4) + 0.1, [{"model_id": "m"}] * 2)
    with QdrantVectorStore.open(url, dim=4) as store:
        assert store.count(REF) == 2

    with pytest.raises(StoreError, match="holds 4-dimensional Cosine vectors, not 8-dimensional"):
        QdrantVectorStore.open(url, dim=8)
    # The refused open let go of the directory.
    with QdrantVectorStore.open(url, dim=4) as store:
        assert store.count(REF) == 2


def test_a_directory_in_use_is_a_store_error(tmp_path: Path) -> None:
    url = parse_vectors_url(f"qdrant+local:///{tmp_path / 'q'}")
    with (
        QdrantVectorStore.open(url, dim=4),
        pytest.raises(StoreError, match="already accessed by another client"),
    ):
        QdrantVectorStore.open(url, dim=4)


def test_a_collection_with_another_distance_is_refused() -> None:
    client = QdrantClient(location=":memory:")
    client.create_collection(
        INF, vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT)
    )
    with pytest.raises(StoreError, match="4-dimensional Dot vectors, not 4-dimensional Cosine"):
        _store(client, dim=4)


def test_a_collection_with_named_vectors_is_refused() -> None:
    client = QdrantClient(location=":memory:")
    client.create_collection(
        REF,
        vectors_config={"text": models.VectorParams(size=4, distance=models.Distance.COSINE)},
    )
    with pytest.raises(StoreError, match="named vectors"):
        _store(client, dim=4)


def test_an_unreachable_server_is_a_store_error_naming_it() -> None:
    port = _free_port()
    url = QdrantURL(host="127.0.0.1", port=port, api_key="hunter2")

    with pytest.raises(StoreError) as raised:
        QdrantVectorStore.open(url, dim=4, timeout_s=2)

    assert f"Qdrant at qdrant://:***@127.0.0.1:{port}: cannot read the server version" in str(
        raised.value
    )
    assert "hunter2" not in str(raised.value)


def test_open_takes_only_qdrant_urls() -> None:
    with pytest.raises(InvalidArgumentError, match="not a Qdrant URL"):
        QdrantVectorStore.open(DuckDBURL(path=":memory:"), dim=4)
    with pytest.raises(InvalidArgumentError, match="vector size"):
        QdrantVectorStore.open(parse_vectors_url("qdrant+local:///:memory:"), dim=0)
    with pytest.raises(InvalidArgumentError, match="batch_size=0"):
        _store(QdrantClient(location=":memory:"), batch_size=0)


# -- server.vectors -> a store ---------------------------------------------------------


def test_unset_or_duckdb_means_the_span_stores_file(tmp_path: Path) -> None:
    with DuckDBSpanStore(tmp_path / "pyflare.duckdb") as spans:
        for url in (None, "duckdb", " DuckDB "):
            vectors = open_vector_store(url, dim=4, span_store=spans)
            assert isinstance(vectors, DuckDBVectorStore)
            assert vectors.path == spans.path


def test_without_a_store_that_holds_vectors_a_url_is_required() -> None:
    with pytest.raises(ConfigError, match=r"set server\.vectors to qdrant://"):
        open_vector_store(None, dim=4)


def test_urls_open_their_backends(tmp_path: Path) -> None:
    duck = open_vector_store(f"duckdb:///{tmp_path / 'v.duckdb'}", dim=4)
    qdrant = open_vector_store("qdrant+local:///:memory:", dim=4)
    try:
        assert isinstance(duck, DuckDBVectorStore)
        assert isinstance(qdrant, QdrantVectorStore)
        assert duck.dim == qdrant.dim == 4
    finally:
        duck.close()
        qdrant.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("clickhouse://ch/pyflare", "a clickhouse URL can't be used here"),
        ("qdrant://q:6333/collections", "has no meaning"),
        ("vectors.duckdb", "not a URL"),
    ],
)
def test_bad_vector_urls_name_the_setting(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"server\.vectors") as raised:
        open_vector_store(url, dim=4)
    assert message in str(raised.value)
