"""The span stores the contract suite runs against.

Every :class:`~pyflare.store.base.SpanStore` implementation must pass
``test_span_store.py`` unchanged. To add one, add a line to ``STORE_FACTORIES``:
a callable that takes an empty directory of its own and returns a fresh, empty store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyflare.store.base import SpanStore
from pyflare.store.duckdb import DuckDBSpanStore

StoreFactory = Callable[[], SpanStore]

STORE_FACTORIES: dict[str, Callable[[Path], SpanStore]] = {
    "duckdb-file": lambda directory: DuckDBSpanStore(directory / "spans.duckdb"),
    "duckdb-memory": lambda directory: DuckDBSpanStore(":memory:"),
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Makes fresh, empty stores of one implementation; closes them after the test."""
    opened: list[SpanStore] = []

    def make() -> SpanStore:
        directory = tmp_path / f"store{len(opened)}"
        directory.mkdir()
        store = STORE_FACTORIES[request.param](directory)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> SpanStore:
    """One fresh, empty store."""
    return store_factory()
