"""The vector store that ``server.vectors`` names.

| server.vectors | where embeddings live |
|---|---|
| unset, or ``duckdb`` | the span store's DuckDB file (when the span store is DuckDB) |
| ``duckdb:///path`` | a DuckDB file of their own |
| ``qdrant://host:6333``, ``qdrants://…`` | a Qdrant server |
| ``qdrant+local:///path`` | Qdrant's local mode (qdrant-client, no server) |

A ClickHouse span store keeps no vectors: with it, name a Qdrant (the scaled
mode's vector store) or a DuckDB file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyflare.errors import ConfigError
from pyflare_server.storage.urls import DuckDBURL, parse_vectors_url

if TYPE_CHECKING:
    from pyflare.store.base import SpanStore, VectorStore

__all__ = ["open_vector_store"]


def open_vector_store(
    url: str | None, *, dim: int, span_store: SpanStore | None = None
) -> VectorStore:
    """Open the vector store ``url`` names, for vectors of ``dim`` numbers.

    Raises:
        ConfigError: a URL that is not a vector store's, or "in the span store"
            when that store cannot hold vectors.
        StoreError: the backend can't be opened or holds vectors of another size.
        InvalidArgumentError: ``dim`` is not a positive vector size.
    """
    if url is None or url.strip().lower() == "duckdb":
        from pyflare.store.duckdb import DuckDBSpanStore

        if isinstance(span_store, DuckDBSpanStore):
            return span_store.vector_store(dim)
        raise ConfigError(
            "server.vectors is not set and the span store cannot hold vectors: set "
            "server.vectors to qdrant://host:6333, qdrant+local:///path/to/dir or "
            "duckdb:///path/to/vectors.duckdb"
        )
    parsed = parse_vectors_url(url)
    if isinstance(parsed, DuckDBURL):
        from pyflare.store.duckdb_vectors import DuckDBVectorStore

        return DuckDBVectorStore(parsed.path, dim=dim)
    from pyflare_server.storage.qdrant import QdrantVectorStore

    return QdrantVectorStore.open(parsed, dim=dim)
