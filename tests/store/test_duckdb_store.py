"""What only the DuckDB store does: its file, schema versions, lock and sandbox."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext

from pyflare.errors import StoreError, StoreLockedError
from pyflare.records import DRIFT_RESULT_SCHEMA, METRIC_SCHEMA, from_readable_spans
from pyflare.store.base import TraceQuery
from pyflare.store.duckdb import DuckDBSpanStore, parse_store_url
from pyflare.store.schema import MIGRATIONS, SCHEMA_VERSION

T0 = 1_767_225_600_000_000_000


def spans(*ids: tuple[int, int], name: str = "op") -> list[ReadableSpan]:
    return [
        ReadableSpan(
            name=name,
            context=SpanContext(trace, span, is_remote=False),
            resource=Resource({"service.name": "svc"}),
            start_time=T0 + span,
            end_time=T0 + span + 1000,
        )
        for trace, span in ids
    ]


def schema_rows(path: Path) -> list[tuple[int, str, object]]:
    with duckdb.connect(str(path)) as con:
        rows: list[tuple[int, str, object]] = con.execute(
            "SELECT version, description, applied_at FROM pyflare_schema ORDER BY version"
        ).fetchall()
    return rows


def table_names(path: Path) -> set[str]:
    with duckdb.connect(str(path)) as con:
        return {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


# -- schema versions -----------------------------------------------------------------


def test_a_new_store_is_at_the_current_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "spans.duckdb"
    with DuckDBSpanStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    rows = schema_rows(path)
    assert [(version, description) for version, description, _ in rows] == [
        (version, description) for version, description, _ in MIGRATIONS
    ]


def test_reopening_applies_no_migration_again(tmp_path: Path) -> None:
    path = tmp_path / "spans.duckdb"
    with DuckDBSpanStore(path) as store:
        store.write(from_readable_spans(spans((1, 1))))
    before = schema_rows(path)
    with DuckDBSpanStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.count_traces(TraceQuery()) == 1
    assert schema_rows(path) == before


def test_a_store_from_a_newer_pyflare_is_refused_and_released(tmp_path: Path) -> None:
    path = tmp_path / "spans.duckdb"
    DuckDBSpanStore(path).close()
    with duckdb.connect(str(path)) as con:
        con.execute(
            "INSERT INTO pyflare_schema (version, description) VALUES (?, 'from the future')",
            [SCHEMA_VERSION + 1],
        )
    for read_only in (False, True):
        with pytest.raises(StoreError, match="upgrade PyFlare") as info:
            DuckDBSpanStore(path, read_only=read_only)
        assert str(path) in str(info.value)
        assert f"schema version {SCHEMA_VERSION + 1}" in str(info.value)
    # The refused store let go of the file: a connection with other settings works.
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT max(version) FROM pyflare_schema").fetchall() == [
            (SCHEMA_VERSION + 1,)
        ]


def _version_1_store(path: Path) -> None:
    """A store as PyFlare wrote it before the metrics and logs tables (schema version 1)."""
    DuckDBSpanStore(path).close()
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE metrics")
        con.execute("DROP TABLE logs")
        con.execute("DROP TABLE drift_results")
        con.execute("DROP TABLE drift_references")
        con.execute("DROP VIEW costs_hourly")
        con.execute("DROP TABLE costs")
        con.execute("DROP TABLE api_keys")
        con.execute("DROP TABLE trace_index")
        con.execute("DELETE FROM pyflare_schema WHERE version > 1")


def test_a_version_1_store_gains_the_metrics_and_logs_tables(tmp_path: Path) -> None:
    path = tmp_path / "spans.duckdb"
    _version_1_store(path)
    with pytest.raises(StoreError, match=r"schema version 1; .*Open it once read-write"):
        DuckDBSpanStore(path, read_only=True)
    with DuckDBSpanStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 6
        assert store.write(from_readable_spans(spans((1, 1)))) == 1
        assert store.write_metrics(METRIC_SCHEMA.empty_table()) == 0
        assert store.sql("SELECT count(*) AS n FROM logs").column("n")[0].as_py() == 0
    assert [version for version, _, _ in schema_rows(path)] == [1, 2, 3, 4, 5, 6]


def test_a_version_5_store_indexes_the_traces_it_has(tmp_path: Path) -> None:
    path = tmp_path / "spans.duckdb"
    with DuckDBSpanStore(path) as store:
        store.write(from_readable_spans(spans((1, 1), (1, 2), (2, 1))))
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE trace_index")
        con.execute("DELETE FROM pyflare_schema WHERE version > 5")
    with DuckDBSpanStore(path) as store:
        assert store.schema_version == 6
        listed = store.traces(TraceQuery())
        assert sorted(listed.column("trace_id").to_pylist()) == [f"{1:032x}", f"{2:032x}"]
        assert store.count_traces(TraceQuery()) == 2


def test_a_version_2_store_gains_the_drift_tables_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "spans.duckdb"
    with DuckDBSpanStore(path) as store:
        store.write(from_readable_spans(spans((1, 1))))
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE drift_results")
        con.execute("DROP TABLE drift_references")
        con.execute("DROP VIEW costs_hourly")
        con.execute("DROP TABLE costs")
        con.execute("DROP TABLE api_keys")
        con.execute("DROP TABLE trace_index")
        con.execute("DELETE FROM pyflare_schema WHERE version > 2")
    with DuckDBSpanStore(path) as store:
        assert store.schema_version == 6
        assert store.sql("SELECT count(*) AS n FROM traces").column("n")[0].as_py() == 1
        assert store.drift_results("m").num_rows == 0
        assert store.drift_reference("m", "feature") is None
    assert {"drift_results", "drift_references"} <= table_names(path)
    assert [version for version, _, _ in schema_rows(path)] == [1, 2, 3, 4, 5, 6]


def test_references_and_results_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "drift.duckdb"
    with DuckDBSpanStore(path) as store:
        store.write_drift_results(DRIFT_RESULT_SCHEMA.empty_table())
        meta = store.put_drift_reference("fraud", "feature", b"bytes", n_samples=3)
    with DuckDBSpanStore(path, read_only=True) as store:
        assert store.drift_reference("fraud", "feature") == (b"bytes", meta)
        assert store.drift_results("fraud").num_rows == 0


def test_a_conflicting_metrics_table_rolls_back_only_migration_2(tmp_path: Path) -> None:
    path = tmp_path / "spans.duckdb"
    _version_1_store(path)
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE metrics (x INTEGER)")
    with pytest.raises(StoreError, match=r"schema version 2 \(metrics and logs tables\)"):
        DuckDBSpanStore(path)
    assert table_names(path) == {"traces", "metrics", "pyflare_schema"}  # no logs table half-made
    assert [version for version, _, _ in schema_rows(path)] == [1]


def test_read_only_on_a_duckdb_file_that_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE sales (amount INTEGER)")
    with pytest.raises(StoreError, match="not a PyFlare store") as info:
        DuckDBSpanStore(path, read_only=True)
    assert str(path) in str(info.value)


def test_a_conflicting_traces_table_fails_the_migration_and_leaves_no_trace(
    tmp_path: Path,
) -> None:
    path = tmp_path / "analytics.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE traces (x INTEGER)")
    with pytest.raises(StoreError, match=r"migrating the store .* to schema version 1"):
        DuckDBSpanStore(path)
    assert table_names(path) == {"traces"}


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("just some text, long enough to have a header " * 200)
    with pytest.raises(StoreError, match=r"cannot open the DuckDB store .*notes\.duckdb"):
        DuckDBSpanStore(path)


def test_read_only_store_reads_but_does_not_write(tmp_path: Path) -> None:
    path = tmp_path / "spans.duckdb"
    with DuckDBSpanStore(path) as store:
        store.write(from_readable_spans(spans((1, 1), (1, 2))))
    with DuckDBSpanStore(path, read_only=True) as store:
        assert store.count_traces(TraceQuery()) == 1
        assert store.spans(f"{1:032x}").num_rows == 2
        with pytest.raises(StoreError):
            store.write(from_readable_spans(spans((2, 3))))


def test_read_only_does_not_create_directories(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        DuckDBSpanStore(tmp_path / "missing" / "spans.duckdb", read_only=True)
    assert not (tmp_path / "missing").exists()


# -- the file lock ---------------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import sys
    from pyflare.store.duckdb import DuckDBSpanStore

    store = DuckDBSpanStore(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
    store.close()
    """
)


def test_a_second_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    path = tmp_path / "spans.duckdb"
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "ready"
            for read_only in (False, True):
                with pytest.raises(StoreLockedError) as info:
                    DuckDBSpanStore(path, read_only=read_only)
                message = str(info.value)
                assert str(path) in message
                assert f"PID {holder.pid}" in message
                assert "stop that process" in message
                assert "duckdb:///" in message  # what to do instead
            holder.stdin.write("done\n")
            holder.stdin.flush()
            assert holder.wait(timeout=30) == 0
        finally:
            if holder.poll() is None:
                holder.kill()
    with DuckDBSpanStore(path) as store:  # released: this process can own it now
        assert store.write(from_readable_spans(spans((1, 1)))) == 1


# -- the store's directory ---------------------------------------------------------------


def test_the_store_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "spans.duckdb"
    with DuckDBSpanStore(path) as store:
        store.write(from_readable_spans(spans((1, 1))))
    assert path.is_file()


@pytest.mark.parametrize("below", ["spans.duckdb", "sub/spans.duckdb"])
def test_a_store_directory_that_cannot_be_created(tmp_path: Path, below: str) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file where a directory should be")
    with pytest.raises(StoreError, match="cannot create the store directory") as info:
        DuckDBSpanStore(blocker / below)
    message = str(info.value)
    assert str(blocker) in message
    assert "writable location" in message
    assert "PYFLARE_STORE" in message


# -- URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("duckdb:///rel.duckdb", "rel.duckdb"),
        ("duckdb:///.pyflare/pyflare.duckdb", ".pyflare/pyflare.duckdb"),
        ("duckdb:////abs/path/spans.duckdb", "/abs/path/spans.duckdb"),
        ("duckdb:///:memory:", ":memory:"),
        ("duckdb://rel.duckdb", "rel.duckdb"),
    ],
)
def test_parse_store_url(url: str, path: str) -> None:
    assert parse_store_url(url) == path


@pytest.mark.parametrize(
    "url",
    [
        "",
        "spans.duckdb",
        "/abs/spans.duckdb",
        "sqlite:///spans.db",
        "DUCKDB:///spans.duckdb",
        "duckdb:",
        "duckdb://",
        "duckdb:///",
        "duckdb:////tmp/",
    ],
)
def test_parse_store_url_rejects(url: str) -> None:
    with pytest.raises(StoreError, match=r"duckdb:///path/to/file\.duckdb"):
        parse_store_url(url)


# -- the sandbox ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM read_csv('{csv}')",
        "SELECT * FROM '{csv}'",
        "COPY (SELECT 1) TO '{out}'",
        "ATTACH '{out}.duckdb' AS other",
        "INSTALL httpfs",
    ],
)
def test_external_access_is_off_even_on_the_raw_connection(tmp_path: Path, statement: str) -> None:
    csv = tmp_path / "secrets.csv"
    csv.write_text("user,password\nalice,hunter2\n")
    out = tmp_path / "out.csv"
    with DuckDBSpanStore(tmp_path / "spans.duckdb") as store:
        with pytest.raises(duckdb.Error):
            store._con.sql(statement.format(csv=csv, out=out)).fetchall()
    assert not out.exists()


# -- writes ----------------------------------------------------------------------------------


def test_duplicates_within_a_batch_keep_the_first(tmp_path: Path) -> None:
    with DuckDBSpanStore(tmp_path / "spans.duckdb") as store:
        batch = from_readable_spans(
            [*spans((1, 1), name="first"), *spans((1, 2)), *spans((1, 1), name="second")]
        )
        assert store.write(batch) == 2
        names = store.spans(f"{1:032x}").column("operation_name").to_pylist()
        assert names == ["first", "op"]


def test_a_large_batch_with_duplicates_across_scan_chunks(tmp_path: Path) -> None:
    ids = [(n // 10 + 1, n + 1) for n in range(10_000)]
    batch = from_readable_spans(spans(*ids, *ids[:3], *ids[-3:]))
    with DuckDBSpanStore(tmp_path / "spans.duckdb") as store:
        assert store.write(batch) == 10_000
        assert store.write(batch) == 0
        assert store.count_traces(TraceQuery()) == 1_000


def test_the_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "spans.duckdb"
    with DuckDBSpanStore(path) as store:
        store.write(from_readable_spans(spans((1, 1), (1, 2), (2, 3))))
    with DuckDBSpanStore(path) as store:
        assert store.count_traces(TraceQuery()) == 2
        assert store.write(from_readable_spans(spans((1, 2)))) == 0


def test_repr_names_the_file(tmp_path: Path) -> None:
    with DuckDBSpanStore(tmp_path / "spans.duckdb") as store:
        assert "spans.duckdb" in repr(store)
