"""The DuckDB vector store beyond the contract: where its tables live, their size, reopening."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyflare.errors import InvalidArgumentError, QueryError, StoreError
from pyflare.store.base import TraceQuery
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare.store.duckdb_vectors import DuckDBVectorStore
from pyflare.store.vectors import INFERENCE_EMBEDDINGS, REFERENCE_EMBEDDINGS

INF = INFERENCE_EMBEDDINGS


def _put(store: DuckDBVectorStore, n: int = 3) -> None:
    vectors = np.arange(1, n * store.dim + 1, dtype=float).reshape(n, store.dim)
    store.upsert(INF, [f"p{i}" for i in range(n)], vectors, [{"model_id": "m"}] * n)


def test_vectors_live_in_the_span_store_file_and_outlast_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "pyflare.duckdb"
    with DuckDBSpanStore(path) as spans:
        _put(spans.vector_store(4))
    with DuckDBSpanStore(path) as spans:
        vectors = spans.vector_store(4)
        assert vectors.count(INF) == 3
        assert vectors.get(INF, ["p1"]).ids == ["p1"]


def test_user_sql_cannot_read_the_vector_tables(tmp_path: Path) -> None:
    with DuckDBSpanStore(tmp_path / "pyflare.duckdb") as spans:
        _put(spans.vector_store(4))
        for table in (INFERENCE_EMBEDDINGS, REFERENCE_EMBEDDINGS):
            with pytest.raises(QueryError, match="not one of PyFlare's tables"):
                spans.sql(f"SELECT * FROM {table}")


def test_another_size_is_refused_and_the_span_store_goes_on(tmp_path: Path) -> None:
    with DuckDBSpanStore(tmp_path / "pyflare.duckdb") as spans:
        _put(spans.vector_store(4))

        with pytest.raises(StoreError, match=r"FLOAT\[4\], not FLOAT\[8\]"):
            spans.vector_store(8)

        assert spans.vector_store(4).count(INF) == 3
        assert spans.sql("SELECT count(*) AS n FROM traces").column("n")[0].as_py() == 0


def test_closing_the_vector_store_leaves_the_span_store_open(tmp_path: Path) -> None:
    with DuckDBSpanStore(tmp_path / "pyflare.duckdb") as spans:
        vectors = spans.vector_store(4)
        vectors.close()
        assert spans.vector_store(4).count(INF) == 0
        assert spans.count_traces(TraceQuery()) == 0


def test_closing_the_span_store_ends_its_vector_store(tmp_path: Path) -> None:
    spans = DuckDBSpanStore(tmp_path / "pyflare.duckdb")
    vectors = spans.vector_store(4)
    spans.close()

    with pytest.raises(StoreError, match="vector store"):
        vectors.count(INF)
    with pytest.raises(StoreError, match="closed"):
        spans.vector_store(4)


def test_a_read_only_span_store_reads_existing_vectors(tmp_path: Path) -> None:
    path = tmp_path / "pyflare.duckdb"
    with DuckDBSpanStore(path) as spans:
        _put(spans.vector_store(4))
    with DuckDBSpanStore(path, read_only=True) as spans:
        vectors = spans.vector_store(4)
        assert vectors.count(INF) == 3
        with pytest.raises(StoreError, match="read-only"):
            _put(vectors)


def test_a_file_of_its_own_keeps_its_vectors_and_their_size(tmp_path: Path) -> None:
    path = tmp_path / "vectors" / "embeddings.duckdb"
    with DuckDBVectorStore(path, dim=4) as vectors:
        _put(vectors, 5)
    with DuckDBVectorStore(path, dim=4) as vectors:
        assert vectors.count(INF) == 5
        assert repr(vectors) == f"DuckDBVectorStore({str(path)!r}, dim=4)"
    with pytest.raises(StoreError, match=r"another size; open it with that dim"):
        DuckDBVectorStore(path, dim=5)
    # The refused open released the file.
    with DuckDBVectorStore(path, dim=4) as vectors:
        assert vectors.count(INF) == 5


def test_the_span_store_file_opened_twice_in_one_process_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "pyflare.duckdb"
    with DuckDBSpanStore(path):
        with pytest.raises(StoreError, match=r"already open in this process.*vector_store\(dim\)"):
            DuckDBVectorStore(path, dim=4)


def test_an_unusable_location_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    with pytest.raises(StoreError, match="cannot create the directory"):
        DuckDBVectorStore(blocker / "vectors.duckdb", dim=4)


@pytest.mark.parametrize("dim", [0, -3, 1.5, True, "384", 70_000])
def test_a_bad_size_is_refused(dim: object) -> None:
    with pytest.raises(InvalidArgumentError, match="vector size must be an integer"):
        DuckDBVectorStore(":memory:", dim=dim)
