"""The span stores the contract suite runs against.

Every :class:`~pyflare.store.base.SpanStore` implementation must pass
``test_span_store.py`` unchanged. To add one, add a line to ``STORE_FACTORIES``:
a callable that takes an empty directory of its own and returns a fresh, empty store.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
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


# -- ClickHouse: the real engine in-process (chdb) through clickhouse-connect ------
# chdb runs one engine per process, so every ClickHouse store of the session shares
# one data directory, each in a database of its own. Each store has its own client
# and closes it, so no engine stays open between tests for other suites' paths.
_CHDB_ENGINE: dict[str, Path] = {}
_CHDB_DATABASES = itertools.count()


def _clickhouse_store(directory: Path) -> SpanStore:
    from pyflare_server.storage.clickhouse import ClickHouseSpanStore
    from pyflare_server.storage.factory import chdb_client

    engine = _CHDB_ENGINE.setdefault("path", Path(tempfile.mkdtemp(prefix="pyflare-chdb-")))
    # No TTL: the suite's spans are dated 2026-01-01, older than the spec's retention.
    return ClickHouseSpanStore(
        chdb_client(engine), database=f"contract_{next(_CHDB_DATABASES)}", retention=None
    )


@pytest.fixture(scope="session", autouse=True)
def _chdb_engine_directory() -> Iterator[None]:
    """Removes the shared chdb data directory after the session."""
    yield
    engine = _CHDB_ENGINE.pop("path", None)
    if engine is not None:
        shutil.rmtree(engine, ignore_errors=True)


STORE_FACTORIES["clickhouse-chdb"] = _clickhouse_store


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
