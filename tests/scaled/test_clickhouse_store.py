"""The ClickHouse store beyond the contract: schema, merges, TTL, rollup, OTel view, SQL.

The real ClickHouse engine runs in this process (chdb) behind the same
``clickhouse_connect`` client the server uses. chdb keeps one engine per
process: each test's stores share the module's data directory, one database
each, and close their clients when done.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import SpanKind, StatusCode

from _readable_spans import MS, T0, make_span
from pyflare.errors import QueryError, StoreError
from pyflare.records import COST_SCHEMA, from_readable_spans
from pyflare.store.base import TraceQuery
from pyflare_server.storage._clickhouse_schema import SCHEMA_VERSION, Retention
from pyflare_server.storage.clickhouse import ClickHouseSpanStore
from pyflare_server.storage.factory import chdb_client

_DATABASES = itertools.count()
HOUR = 3_600_000 * MS

Opener = Callable[..., ClickHouseSpanStore]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def open_store(engine: Path) -> Iterator[Opener]:
    """Opens stores on the module's engine (a fresh database unless named); closes them."""
    opened: list[ClickHouseSpanStore] = []

    def make(
        database: str | None = None, retention: Retention | None = None
    ) -> ClickHouseSpanStore:
        name = database or f"scaled_{next(_DATABASES)}_{time.time_ns()}"
        store = ClickHouseSpanStore(chdb_client(engine), database=name, retention=retention)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def raw(store: ClickHouseSpanStore, sql: str, **settings: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` run directly on the store's database (what Grafana would send)."""
    client = store._client
    return [tuple(row) for row in client.query(sql, settings=settings).result_rows]


def spans(*items: Any) -> pa.Table:
    return from_readable_spans(items, ingested_at_ns=T0 + HOUR)


# -- schema ----------------------------------------------------------------------


def test_the_specs_tables_are_created_with_their_engines_indexes_and_ttls(
    open_store: Opener,
) -> None:
    store = open_store(retention=Retention())
    traces = raw(store, "SHOW CREATE TABLE traces")[0][0]
    assert "ENGINE = ReplacingMergeTree(_version)" in traces
    assert "ORDER BY (service_name, model_id, start_time, trace_id, span_id)" in traces
    assert "PARTITION BY toYYYYMM(_partition_date)" in traces
    assert "TTL _partition_date + toIntervalDay(30)" in traces
    for index in ("idx_trace_id", "idx_model_id", "idx_status"):
        assert f"INDEX {index}" in traces
    assert (
        "TTL _partition_date + toIntervalDay(90)" in raw(store, "SHOW CREATE TABLE metrics")[0][0]
    )
    assert "TTL _partition_date + toIntervalDay(365)" in raw(store, "SHOW CREATE TABLE costs")[0][0]
    rollup = raw(store, "SHOW CREATE TABLE costs_hourly_mv")[0][0]
    assert "SummingMergeTree" in rollup and "cost_changes" in rollup
    names = {row[0] for row in raw(store, "SHOW TABLES")}
    assert {"traces", "metrics", "logs", "costs", "costs_hourly", "costs_hourly_mv", "alerts",
            "drift_results", "drift_references", "api_keys", "otel_traces"} <= names  # fmt: skip
    versions = sorted(row[0] for row in raw(store, "SELECT version FROM pyflare_schema FINAL"))
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_reopening_a_database_keeps_its_data_and_migrates_nothing(open_store: Opener) -> None:
    first = open_store()
    first.write(spans(make_span(1, 1)))
    second = open_store(first.database)
    assert second.count_traces(TraceQuery()) == 1
    assert raw(second, "SELECT count() FROM pyflare_schema")[0][0] == SCHEMA_VERSION


def test_a_database_from_a_newer_pyflare_is_refused(open_store: Opener, engine: Path) -> None:
    store = open_store()
    raw(store, "INSERT INTO pyflare_schema (version, description) VALUES (999, 'future')")
    with pytest.raises(StoreError, match="schema version 999, newer than this PyFlare"):
        ClickHouseSpanStore(chdb_client(engine), database=store.database)


@pytest.mark.parametrize("name", ["", "pyflare; DROP DATABASE x", "1abc", "a-b", 7])
def test_a_bad_database_name_is_refused(engine: Path, name: Any) -> None:
    client = chdb_client(engine)
    try:
        with pytest.raises(StoreError, match="database name"):
            ClickHouseSpanStore(client, database=name)
    finally:
        client.close()


# -- deduplication and merges ---------------------------------------------------


def test_a_span_inserted_twice_behind_the_stores_back_counts_once(open_store: Opener) -> None:
    store = open_store()
    batch = spans(make_span(1, 1), make_span(1, 2, parent=1, start=T0 + MS))
    assert store.write(batch) == 2
    # Two workers racing past the existence check both insert: the engine collapses them.
    store._client.insert_arrow("traces", batch)
    assert raw(store, "SELECT count() FROM traces", final=0)[0][0] == 4
    assert store.count_traces(TraceQuery()) == 1
    assert store.traces(TraceQuery()).column("span_count").to_pylist() == [2]
    assert store.spans(f"{1:032x}").num_rows == 2
    assert store.sql("SELECT count() AS n FROM traces").column("n").to_pylist() == [2]
    raw(store, "OPTIMIZE TABLE traces FINAL")
    assert raw(store, "SELECT count() FROM traces", final=0)[0][0] == 2


def test_a_repriced_span_wins_over_a_late_redelivery(open_store: Opener) -> None:
    store = open_store()
    original = spans(make_span(1, 1, attributes={"gen_ai.request.model": "gpt-4o"}))
    store.write(original)
    repriced = original.set_column(
        original.schema.get_field_index("cost_micros"), "cost_micros", pa.array([42], pa.int64())
    )
    assert store.update_span_costs(repriced) == 1
    store._client.insert_arrow("traces", original)  # the first delivery again, late
    assert store.spans(f"{1:032x}").column("cost_micros").to_pylist() == [42]
    raw(store, "OPTIMIZE TABLE traces FINAL")
    assert raw(store, "SELECT cost_micros FROM traces", final=0) == [(42,)]
    stages = [row for row in raw(store, "SHOW TABLES") if row[0].startswith("_pyflare_stage")]
    assert stages == []


def test_the_ttl_drops_spans_older_than_the_retention(open_store: Opener) -> None:
    store = open_store(retention=Retention(traces=30))
    now = time.time_ns()
    store.write(spans(make_span(1, 1, start=T0 - 400 * 24 * HOUR), make_span(2, 2, start=now)))
    raw(store, "OPTIMIZE TABLE traces FINAL")
    assert store.sql("SELECT trace_id FROM traces").column("trace_id").to_pylist() == [f"{2:032x}"]


# -- costs rollup -----------------------------------------------------------------


def cost_row(span: int, *, at: int, cost: int | None, model: str = "gpt-4o") -> dict[str, Any]:
    return {
        "trace_id": f"{span:032x}", "span_id": f"{span:016x}", "timestamp": T0 + at,
        "service_name": "chat", "model_id": model, "model_version": None, "provider": "openai",
        "price_model": model, "price_source": None, "input_tokens": 10, "output_tokens": 5,
        "total_tokens": 15, "cached_input_tokens": None, "reasoning_tokens": None,
        "tokens_estimated": span % 2 == 0, "input_cost_micros": None,
        "output_cost_micros": None, "total_cost_micros": cost, "user_id": "alice",
        "session_id": None, "feature_id": None, "team": "core", "environment": "prod",
        "dimensions": [],
    }  # fmt: skip


def test_the_hourly_rollup_follows_replaced_costs(open_store: Opener) -> None:
    store = open_store()
    rows = [cost_row(1, at=0, cost=100), cost_row(2, at=MS, cost=None),
            cost_row(3, at=HOUR + 5, cost=7)]  # fmt: skip
    store.write_costs(pa.Table.from_pylist(rows, schema=COST_SCHEMA))
    # Span 2 priced later, span 3 repriced, span 1 redelivered unchanged.
    again = [
        cost_row(1, at=0, cost=100),
        cost_row(2, at=MS, cost=30),
        cost_row(3, at=HOUR + 5, cost=9),
    ]
    store.write_costs(pa.Table.from_pylist(again, schema=COST_SCHEMA))
    rollup = store.sql(
        "SELECT hour, requests, total_cost_micros, unpriced_requests, estimated_token_requests "
        "FROM costs_hourly ORDER BY hour"
    ).to_pylist()
    assert [(r["requests"], r["total_cost_micros"], r["unpriced_requests"]) for r in rollup] == [
        (2, 130, 0),
        (1, 9, 0),
    ]
    assert [r["estimated_token_requests"] for r in rollup] == [1, 0]
    summary = store.cost_summary(None, None, group_by=["hour"]).to_pylist()
    assert [(s["requests"], s["cost_micros"]) for s in summary] == [(2, 130), (1, 9)]


def test_an_unpriced_hour_rolls_up_to_null_cost(open_store: Opener) -> None:
    store = open_store()
    store.write_costs(pa.Table.from_pylist([cost_row(1, at=0, cost=None)], schema=COST_SCHEMA))
    (hour,) = store.sql(
        "SELECT requests, total_cost_micros, unpriced_requests FROM costs_hourly"
    ).to_pylist()
    assert hour == {"requests": 1, "total_cost_micros": None, "unpriced_requests": 1}


# -- the OpenTelemetry Collector's view ------------------------------------------


def test_otel_traces_has_the_collector_exporters_columns(open_store: Opener) -> None:
    store = open_store()
    store.write(
        spans(
            make_span(1, 1, name="handle", service="api", kind=SpanKind.SERVER,
                      duration=5 * MS, resource={"host.name": "h-1"},
                      events=[Event("retry", {"attempt": 2}, timestamp=T0 + 7)]),
            make_span(1, 2, parent=1, name="chat", service="api", kind=SpanKind.CLIENT,
                      start=T0 + MS, status=StatusCode.ERROR, message="boom",
                      attributes={"gen_ai.request.model": "gpt-4o", "user.id": "alice"}),
        )
    )  # fmt: skip
    columns = [row[0] for row in raw(store, "DESCRIBE TABLE otel_traces")]
    assert columns[:15] == [
        "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
        "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes",
        "Duration", "StatusCode", "StatusMessage",
    ]  # fmt: skip
    assert {"Events.Timestamp", "Events.Name", "Events.Attributes", "Links.TraceId"} <= set(columns)
    rows = raw(
        store,
        "SELECT SpanId, ParentSpanId, SpanName, SpanKind, StatusCode, StatusMessage, Duration, "
        "ResourceAttributes['host.name'], SpanAttributes['user.id'], `Events.Name` "
        "FROM otel_traces WHERE TraceId = '00000000000000000000000000000001' ORDER BY Timestamp",
    )
    assert rows == [
        ("0000000000000001", "", "handle", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET", "",
         5 * MS, "h-1", "", ["retry"]),
        ("0000000000000002", "0000000000000001", "chat", "SPAN_KIND_CLIENT", "STATUS_CODE_ERROR",
         "boom", MS, "", "alice", []),
    ]  # fmt: skip


# -- user SQL ----------------------------------------------------------------------


def test_clickhouse_sql_takes_typed_parameters(open_store: Opener) -> None:
    store = open_store()
    store.write(spans(make_span(1, 1, service="api"), make_span(2, 2, service="worker")))
    table = store.sql(
        f"SELECT service_name, count() AS n FROM {store.database}.traces "
        "WHERE service_name = {svc:String} GROUP BY service_name",
        {"svc": "api"},
        dialect="clickhouse",
    )
    assert table.to_pylist() == [{"service_name": "api", "n": 1}]
    assert store.sql(
        "SELECT toStartOfHour(start_time) AS h, uniqExact(trace_id) AS traces FROM traces GROUP BY h",
        dialect="clickhouse",
    ).column("traces").to_pylist() == [2]


@pytest.mark.parametrize(
    ("statement", "params", "message"),
    [
        ("SELECT * FROM system.tables", None, "system catalogs"),
        ("SELECT * FROM url('http://169.254.169.254/', 'CSV')", None, "not allowed"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", None, "not allowed"),
        ("SELECT * FROM remote('other:9000', db.t)", None, "not allowed"),
        ("SELECT getSetting('max_memory_usage')", None, "not allowed"),
        ("SELECT * FROM api_keys", None, "not one of PyFlare's tables"),
        ("SELECT * FROM pyflare_schema", None, "not one of PyFlare's tables"),
        ("SELECT * FROM otel_traces", None, "not one of PyFlare's tables"),
        ("INSERT INTO traces SELECT * FROM traces", None, "only SELECT"),
        ("SELECT 1; DROP TABLE traces", None, "only one statement"),
        ("ALTER TABLE traces DELETE WHERE 1", None, "only SELECT"),
        ("SELECT * FROM traces WHERE span_id = {s:String}", None, "parameters"),
        ("SELECT * FROM traces WHERE span_id = {s:String}", ["x"], "dict"),
        ("SELECT * FROM traces WHERE span_id = {s:String}", {"t": "x"}, "parameters"),
    ],
)
def test_bad_clickhouse_sql_is_refused_and_nothing_changes(
    open_store: Opener, statement: str, params: Any, message: str
) -> None:
    store = open_store()
    store.write(spans(make_span(1, 1)))
    with pytest.raises(QueryError, match=message):
        store.sql(statement, params, dialect="clickhouse")
    assert store.count_traces(TraceQuery()) == 1
    assert store.write(spans(make_span(2, 2))) == 1  # the session is not left read-only


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (None, "no values were given"),
        (["a", "b"], "takes parameters"),
        ([object()], "parameter 1 has a object value"),
        ("api", "a list or a dict"),
    ],
)
def test_bad_duckdb_parameters_are_named(open_store: Opener, params: Any, message: str) -> None:
    store = open_store()
    with pytest.raises(QueryError, match=message):
        store.sql("SELECT count(*) AS n FROM traces WHERE service_name = ?", params)


def test_a_query_over_its_time_limit_is_stopped(open_store: Opener) -> None:
    store = open_store()
    store.write(spans(*(make_span(1, n, start=T0 + n) for n in range(1, 301))))
    with pytest.raises(QueryError, match=r"ran longer than 0\.001 s"):
        store.sql(
            "SELECT sum(cityHash64(a.span_id, b.span_id, c.span_id)) AS h "
            "FROM traces AS a, traces AS b, traces AS c",
            dialect="clickhouse",
            timeout_s=0.001,
        )
    assert store.count_traces(TraceQuery()) == 1  # the store goes on
    with pytest.raises(QueryError, match="timeout_s must be a positive number"):
        store.sql("SELECT 1 AS one FROM traces", timeout_s=0)
