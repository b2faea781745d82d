"""The SpanStore contract for metric points and log records (append-only tables)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

from pyflare.errors import QueryError, StoreError
from pyflare.records import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from pyflare.store.base import PYFLARE_TABLES, SpanStore

T0 = 1_767_225_600_000_000_123  # ns must survive
INGESTED_US = 1_767_225_700_000_000

StoreFactory = Callable[[], SpanStore]


def metric(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "metric_name": "gen_ai.client.token.usage",
        "service_name": "svc",
        "model_id": "gpt-4o-mini",
        "model_version": None,
        "environment": "prod",
        "timestamp": T0,
        "start_time": T0 - 10_000_000_000,
        "value_type": "counter",
        "temporality": "cumulative",
        "value": 42.0,
        "histogram_count": None,
        "histogram_sum": None,
        "histogram_buckets": [],
        "quantiles": [],
        "unit": "{token}",
        "scope_name": "opentelemetry.instrumentation.openai_v2",
        "attributes": [("gen_ai.token.type", "input")],
        "resource": [("service.name", "svc"), ("host.name", "h-1")],
        "_ingested_at": INGESTED_US,
    }
    row.update(overrides)
    return row


def log(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "timestamp": T0,
        "observed_timestamp": T0 + 5,
        "trace_id": "abcdef0123456789abcdef0123456789",
        "span_id": "0123456789abcdef",
        "severity_number": 17,
        "severity_text": "ERROR",
        "body": "réponse ☠ failed",
        "event_name": None,
        "service_name": "svc",
        "scope_name": "app.logger",
        "attributes": [("exception.type", "ValueError")],
        "resource": [("service.name", "svc")],
        "_ingested_at": INGESTED_US,
    }
    row.update(overrides)
    return row


def metrics(*rows: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=METRIC_SCHEMA)


def logs(*rows: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=LOG_SCHEMA)


def stored(store: SpanStore, table: str, order: str) -> pa.Table:
    schema = METRIC_SCHEMA if table == "metrics" else LOG_SCHEMA
    return store.sql(f"SELECT * FROM {table} ORDER BY {order}").cast(schema)


def test_the_tables_are_queryable_by_users() -> None:
    assert {"traces", "metrics", "logs"} <= PYFLARE_TABLES


def test_every_metric_column_round_trips(store: SpanStore) -> None:
    written = metrics(
        metric(),
        metric(
            metric_name="gen_ai.client.operation.duration",
            model_id=None,
            environment=None,
            timestamp=T0 + 1,
            value_type="histogram",
            temporality="delta",
            value=0.75,
            histogram_count=4,
            histogram_sum=3.0,
            histogram_buckets=[
                {"upper_bound": 0.5, "count": 1},
                {"upper_bound": 1.0, "count": 2},
                {"upper_bound": math.inf, "count": 1},
            ],
            unit="s",
            attributes=[],
        ),
        metric(
            metric_name="rpc.latency",
            timestamp=T0 + 2,
            start_time=None,
            value_type="summary",
            temporality=None,
            value=None,
            histogram_count=0,
            histogram_sum=0.0,
            quantiles=[{"quantile": 0.5, "value": 1.5}, {"quantile": 0.99, "value": 9.0}],
            unit=None,
            scope_name=None,
            resource=[("service.name", "other ☃")],
        ),
    )
    assert store.write_metrics(written) == 3
    assert stored(store, "metrics", "timestamp").equals(written)
    histogram = stored(store, "metrics", "timestamp").to_pylist()[1]
    assert histogram["histogram_buckets"][-1] == {"upper_bound": math.inf, "count": 1}


def test_every_log_column_round_trips(store: SpanStore) -> None:
    written = logs(
        log(),
        log(
            timestamp=T0 + 1,
            observed_timestamp=None,
            trace_id=None,
            span_id=None,
            severity_number=0,
            severity_text=None,
            body=None,
            event_name="gen_ai.choice",
            scope_name=None,
            attributes=[],
            resource=[("service.name", "svc"), ("host.name", "h-2")],
        ),
    )
    assert store.write_logs(written) == 2
    assert stored(store, "logs", "timestamp").equals(written)


def test_metric_points_and_log_records_are_appended(store: SpanStore) -> None:
    """Unlike spans, points and records have no identity: the same row twice is two rows."""
    assert store.write_metrics(metrics(metric(), metric())) == 2
    assert store.write_metrics(metrics(metric())) == 1
    assert store.write_logs(logs(log())) == 1
    assert store.write_logs(logs(log())) == 1
    assert store.sql("SELECT count(*) AS n FROM metrics").column("n")[0].as_py() == 3
    assert store.sql("SELECT count(*) AS n FROM logs").column("n")[0].as_py() == 2
    assert store.sql("SELECT count(*) AS n FROM traces").column("n")[0].as_py() == 0


def test_empty_batches_store_nothing(store: SpanStore) -> None:
    assert store.write_metrics(METRIC_SCHEMA.empty_table()) == 0
    assert store.write_logs(LOG_SCHEMA.empty_table()) == 0


def test_columns_in_another_order_are_accepted(store: SpanStore) -> None:
    table = metrics(metric())
    assert store.write_metrics(table.select(list(reversed(table.column_names)))) == 1
    assert stored(store, "metrics", "timestamp").equals(table)


def test_users_can_query_metrics_and_logs(store: SpanStore) -> None:
    store.write_metrics(metrics(metric(value=1.0), metric(value=2.0, model_id="other")))
    store.write_logs(logs(log(), log(severity_number=9, severity_text="INFO")))
    table = store.sql(
        "SELECT model_id, sum(value) AS total FROM metrics WHERE value_type = ? "
        "GROUP BY 1 ORDER BY 1",
        ["counter"],
    )
    assert table.to_pylist() == [
        {"model_id": "gpt-4o-mini", "total": 1.0},
        {"model_id": "other", "total": 2.0},
    ]
    errors = store.sql("SELECT body FROM logs WHERE severity_number >= 17")
    assert errors.column("body").to_pylist() == ["réponse ☠ failed"]
    with pytest.raises(QueryError):
        store.sql("DELETE FROM logs")
    with pytest.raises(QueryError):
        store.sql("INSERT INTO metrics SELECT * FROM metrics")


@pytest.mark.parametrize("resources", [[{"h": "1"}] * 3, [{"h": "1"}, {"h": "2"}, {}]])
def test_each_point_keeps_its_resource(store: SpanStore, resources: list[dict[str, str]]) -> None:
    rows = [
        metric(timestamp=T0 + index, resource=list(resource.items()))
        for index, resource in enumerate(resources)
    ]
    store.write_metrics(metrics(*rows))
    table = store.sql("SELECT resource FROM metrics ORDER BY timestamp")
    assert [dict(row["resource"]) for row in table.to_pylist()] == resources


def _wrong_batches(good: pa.Table) -> list[Any]:
    return [
        pa.table({"metric_name": ["a"]}),
        good.set_column(
            good.schema.get_field_index("timestamp"),
            "timestamp",
            pa.array(["yesterday"], pa.string()),
        ),
        good.set_column(
            good.schema.get_field_index("service_name"),
            "service_name",
            pa.array([None], pa.string()),
        ),
        {"metric_name": ["a"]},
        SPAN_SCHEMA.empty_table(),
    ]


@pytest.mark.parametrize("signal", ["metrics", "logs"])
def test_a_batch_with_the_wrong_schema_is_a_store_error(store: SpanStore, signal: str) -> None:
    good, other = (metrics(metric()), logs(log()))[:: 1 if signal == "metrics" else -1]
    write = store.write_metrics if signal == "metrics" else store.write_logs
    for bad in [*_wrong_batches(good), other]:
        with pytest.raises(StoreError):
            write(bad)
    assert write(good) == 1


def test_a_closed_store_refuses_metrics_and_logs(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.close()
    with pytest.raises(StoreError):
        store.write_metrics(metrics(metric()))
    with pytest.raises(StoreError):
        store.write_logs(logs(log()))
    with pytest.raises(StoreError):
        store.write_logs(LOG_SCHEMA.empty_table())
