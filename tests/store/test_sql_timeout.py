"""SpanStore.sql(): ClickHouse SQL on DuckDB, and a timeout that stops only the query."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests._readable_spans import make_span

from pyflare.errors import QueryError, QueryTimeoutError
from pyflare.records import from_readable_spans
from pyflare.store.duckdb import DuckDBSpanStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBSpanStore]:
    with DuckDBSpanStore(tmp_path / "sql.duckdb") as opened:
        opened.write(from_readable_spans([make_span(1, i + 1, name=f"op-{i}") for i in range(3)]))
        yield opened


def test_clickhouse_sql_runs_on_duckdb(store: DuckDBSpanStore) -> None:
    table = store.sql(
        "SELECT operation_name, uniqExact(span_id) AS n FROM traces "
        "WHERE start_time > now() - INTERVAL 100 YEAR GROUP BY operation_name "
        "ORDER BY operation_name",
        dialect="clickhouse",
    )
    assert table.column("operation_name").to_pylist() == ["op-0", "op-1", "op-2"]
    assert table.column("n").to_pylist() == [1, 1, 1]


def test_a_long_query_is_stopped_and_writes_go_on(store: DuckDBSpanStore) -> None:
    huge = (
        "SELECT count(*) AS n FROM range(100000000000) a, traces t1, traces t2 "
        "WHERE a.range % 7 = 3"
    )
    # range() is a table function: the guard refuses it before anything runs.
    with pytest.raises(QueryError):
        store.sql(huge, timeout_s=0.5)
    cross = (
        "SELECT count(*) AS n FROM traces a, traces b, traces c, traces d, traces e, "
        "traces f, traces g, traces h, traces i, traces j, traces k, traces l, traces m, "
        "traces n2, traces o, traces p, traces q, traces r, traces s, traces t"
    )
    written: list[int] = []

    def write_meanwhile() -> None:
        written.append(store.write(from_readable_spans([make_span(2, 1, name="during")])))

    writer = threading.Timer(0.2, write_meanwhile)
    writer.start()
    with pytest.raises(QueryTimeoutError, match=r"ran longer than 1 s"):
        store.sql(cross, timeout_s=1.0)
    writer.join()
    assert written == [1]
    assert store.sql("SELECT count(*) AS n FROM traces").column("n").to_pylist() == [4]


def test_a_bad_dialect_is_a_clear_error(store: DuckDBSpanStore) -> None:
    with pytest.raises((QueryError, ValueError), match="dialect"):
        store.sql("SELECT 1", dialect="oracle")
