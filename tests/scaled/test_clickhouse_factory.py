"""open_server_store(url): DuckDB, ClickHouse over HTTP and chdb, and clear errors."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from _readable_spans import make_span
from pyflare.errors import ConfigError, StoreError
from pyflare.records import from_readable_spans
from pyflare.store.base import SpanStore, TraceQuery
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.storage.clickhouse import ClickHouseSpanStore
from pyflare_server.storage.factory import open_server_store


def test_a_chdb_url_opens_a_clickhouse_store_in_its_database(tmp_path: Path) -> None:
    store = open_server_store(f"chdb:///{tmp_path / 'ch'}?database=team_a")
    try:
        assert isinstance(store, ClickHouseSpanStore)
        assert isinstance(store, SpanStore)
        assert store.database == "team_a"
        # Dated now: the URL's store keeps the spec's retention (30 days of spans).
        store.write(from_readable_spans([make_span(1, 1, start=time.time_ns())]))
        assert store.count_traces(TraceQuery()) == 1
        assert "team_a" in repr(store)
    finally:
        store.close()
    # The data outlives the store: a new one on the same URL sees it.
    again = open_server_store(f"chdb:///{tmp_path / 'ch'}?database=team_a")
    try:
        assert again.count_traces(TraceQuery()) == 1
    finally:
        again.close()


@pytest.mark.parametrize("form", ["duckdb:///{path}", "{path}"])
def test_a_duckdb_url_or_path_opens_the_duckdb_store(tmp_path: Path, form: str) -> None:
    store = open_server_store(form.format(path=tmp_path / "spans.duckdb"))
    try:
        assert isinstance(store, DuckDBSpanStore)
    finally:
        store.close()


def test_a_second_chdb_directory_in_one_process_is_refused(tmp_path: Path) -> None:
    first = open_server_store(f"chdb:///{tmp_path / 'one'}")
    try:
        with pytest.raises(StoreError, match="one engine per process"):
            open_server_store(f"chdb:///{tmp_path / 'two'}")
        assert first.count_traces(TraceQuery()) == 0  # the open one is unharmed
    finally:
        first.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/db", "unknown scheme 'http'"),
        ("kafka://broker:9092", "can't be used here"),
        ("clickhouse://user:pw@:8123/pyflare", "names no host"),
        ("clickhouse://user:pw@host:http/pyflare", "not a number"),
        ("clickhouse://user:pw@host:8123/a/b", "one database name"),
        ("clickhouse://user:pw@host:8123/bad-name", "not an identifier"),
        ("chdb:///", "names no data directory"),
        ("chdb:///:memory:", "keeps its data in a directory"),
        ("chdb:///dir?colour=red", "unknown option"),
    ],
)
def test_bad_urls_are_config_errors_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        open_server_store(url)
    assert "pw@" not in str(info.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_is_a_store_error_naming_it_without_the_password() -> None:
    port = _closed_port()
    with pytest.raises(
        StoreError,
        match=f"cannot reach ClickHouse at clickhouse://ops:\\*\\*\\*@127.0.0.1:{port}/pyflare",
    ) as info:
        open_server_store(f"clickhouse://ops:s3cret@127.0.0.1:{port}/pyflare")
    assert "s3cret" not in str(info.value)
