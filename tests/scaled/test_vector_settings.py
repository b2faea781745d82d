"""server.vectors and server.vector_size: checked at load, and what open_vector_store makes of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyflare.errors import ConfigError
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare.store.duckdb_vectors import DuckDBVectorStore
from pyflare_server.settings import ServerSettings
from pyflare_server.storage.qdrant import QdrantVectorStore
from pyflare_server.storage.vectors import open_vector_store


def _load(**env: str) -> ServerSettings:
    return ServerSettings.load(env=env)


def test_defaults_keep_vectors_in_the_span_store_at_openais_size() -> None:
    settings = _load()
    assert settings.server.vectors is None
    assert settings.server.vector_size == 1536


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("duckdb", "duckdb"),
        (" DuckDB ", "duckdb"),
        ("duckdb:///vectors.duckdb", "duckdb:///vectors.duckdb"),
        ("qdrant://qdrant:6333", "qdrant://qdrant:6333"),
        ("qdrants://:key@qdrant.example.com", "qdrants://:key@qdrant.example.com"),
        ("qdrant+local:///.pyflare/qdrant ", "qdrant+local:///.pyflare/qdrant"),
    ],
)
def test_vector_urls_are_accepted(value: str, stored: str) -> None:
    assert _load(PYFLARE_SERVER__VECTORS=value).server.vectors == stored


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("clickhouse://ch:8123/pyflare", "a clickhouse URL can't be used here"),
        ("kafka://k:9092", "a kafka URL can't be used here"),
        ("qdrant://q:6333/collections", "the path '/collections' has no meaning"),
        ("qdrant", "not a URL"),
        ("qdrant://:@q", "no user name"),
    ],
)
def test_bad_vector_urls_name_the_key_and_the_source(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(PYFLARE_SERVER__VECTORS=value)
    text = str(raised.value)
    assert text.startswith("server.vectors: ")
    assert message in text
    assert "PYFLARE_SERVER__VECTORS" in text
    assert "qdrant://host:6333" in text


@pytest.mark.parametrize("size", ["0", "-1", "65537", "big"])
def test_a_bad_vector_size_is_refused(size: str) -> None:
    with pytest.raises(ConfigError, match=r"server\.vector_size"):
        _load(PYFLARE_SERVER__VECTOR_SIZE=size)


def test_settings_open_the_store_they_name(tmp_path: Path) -> None:
    settings = _load(PYFLARE_SERVER__VECTOR_SIZE="384")
    with DuckDBSpanStore(tmp_path / "pyflare.duckdb") as spans:
        in_span_store = open_vector_store(
            settings.server.vectors, dim=settings.server.vector_size, span_store=spans
        )
        assert isinstance(in_span_store, DuckDBVectorStore)
        assert in_span_store.dim == 384

    settings = _load(
        PYFLARE_SERVER__VECTORS="qdrant+local:///:memory:", PYFLARE_SERVER__VECTOR_SIZE="384"
    )
    with open_vector_store(settings.server.vectors, dim=settings.server.vector_size) as qdrant:
        assert isinstance(qdrant, QdrantVectorStore)
        assert qdrant.dim == 384
