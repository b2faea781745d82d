"""Where spans live: the SpanStore seam and its implementations."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyflare.store.base import SpanStore

__all__ = ["open_store"]


def open_store(url: str, *, read_only: bool = False) -> SpanStore:
    """Open the store a URL names (``duckdb:///path``; DuckDB is loaded only now)."""
    from pyflare.store.duckdb import DuckDBSpanStore, parse_store_url

    return DuckDBSpanStore(parse_store_url(url), read_only=read_only)
