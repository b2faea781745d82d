"""The SpanStore contract for reading metrics: metric_names and metric_series."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pytest

from pyflare.errors import QueryError
from pyflare.records import METRIC_SCHEMA
from pyflare.store.base import MAX_METRIC_BUCKETS, METRIC_AGGREGATIONS, SpanStore

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z


def point(name: str, offset_s: float, value: float | None, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "metric_name": name,
        "service_name": "api",
        "model_id": "gpt-4o",
        "model_version": None,
        "environment": "prod",
        "timestamp": T0 + int(offset_s * S),
        "start_time": None,
        "value_type": "gauge",
        "temporality": None,
        "value": value,
        "histogram_count": None,
        "histogram_sum": None,
        "histogram_buckets": [],
        "quantiles": [],
        "unit": "s",
        "scope_name": None,
        "attributes": [],
        "resource": [],
        "_ingested_at": T0 // 1000,
    }
    row.update(overrides)
    return row


POINTS = [
    # latency: api/gpt-4o 1, 2, 3 in [0, 60) s, 10 in [60, 120); worker/llama 5 at 30 s.
    point("latency", 0, 1.0),
    point("latency", 10, 3.0),
    point("latency", 20, 2.0),
    point("latency", 70, 10.0),
    point("latency", 30, 5.0, service_name="worker", model_id=None, environment=None),
    point("latency", 200, 99.0),  # after the range of the series tests
    point("tokens", 5, 100.0, value_type="counter", unit="{token}"),
    point("tokens", 6, None, value_type="counter", unit="{token}", service_name="batch"),
    point("old", -3600, 1.0, unit=None),
]


@pytest.fixture
def filled(store: SpanStore) -> SpanStore:
    store.write_metrics(pa.Table.from_pylist(POINTS, schema=METRIC_SCHEMA))
    return store


def series(store: SpanStore, name: str = "latency", **arguments: Any) -> list[dict[str, Any]]:
    arguments = {"since_ns": T0, "until_ns": T0 + 180 * S, "step_ns": 60 * S, **arguments}
    table = store.metric_series(name, **arguments)
    assert table.column("bucket").type == pa.timestamp("ns")
    assert table.column("value").type == pa.float64()
    assert table.column("points").type == pa.int64()
    rows = table.to_pylist()
    for row in rows:
        row["bucket"] = (row["bucket"].value - T0) // S  # seconds after T0
    return rows


# -- metric_names -----------------------------------------------------------------


def test_metric_names_list_every_metric_sorted(filled: SpanStore) -> None:
    table = filled.metric_names()
    assert table.column_names == [
        "metric_name",
        "value_type",
        "unit",
        "services",
        "points",
        "last_seen",
    ]
    rows = table.to_pylist()
    assert [r["metric_name"] for r in rows] == ["latency", "old", "tokens"]
    latency, old, tokens = rows
    assert (latency["points"], latency["services"], latency["unit"]) == (6, ["api", "worker"], "s")
    assert latency["last_seen"].value == T0 + 200 * S
    assert (old["unit"], old["value_type"]) == (None, "gauge")
    assert (tokens["value_type"], tokens["services"], tokens["points"]) == (
        "counter",
        ["api", "batch"],
        2,
    )


def test_metric_names_filters(filled: SpanStore) -> None:
    def names(**arguments: Any) -> list[str]:
        return [str(n) for n in filled.metric_names(**arguments).column("metric_name").to_pylist()]

    assert names(since_ns=T0) == ["latency", "tokens"]
    assert names(until_ns=T0) == ["old"]
    assert names(since_ns=T0 + 6 * S, until_ns=T0 + 7 * S) == ["tokens"]
    assert names(service="worker") == ["latency"]
    assert names(model_id="gpt-4o", service="batch") == ["tokens"]
    assert names(service="nobody") == []
    assert names(limit=1) == ["latency"]
    assert names(limit=0) == []
    with pytest.raises(QueryError, match="limit"):
        filled.metric_names(limit=-1)


def test_metric_names_of_an_empty_store(store: SpanStore) -> None:
    assert store.metric_names().num_rows == 0


# -- metric_series ----------------------------------------------------------------


def test_one_series_with_every_bucket(filled: SpanStore) -> None:
    rows = series(filled, group_by=(), filters={"service_name": "api"})
    assert rows == [
        {"bucket": 0, "value": 2.0, "points": 3},
        {"bucket": 60, "value": 10.0, "points": 1},
        {"bucket": 120, "value": None, "points": 0},
    ]


def test_group_by_gives_one_series_per_value_nulls_first(filled: SpanStore) -> None:
    rows = series(filled, group_by=["model_id"], aggregation="max")
    assert [(r["model_id"], r["bucket"], r["value"], r["points"]) for r in rows] == [
        (None, 0, 5.0, 1),
        (None, 60, None, 0),
        (None, 120, None, 0),
        ("gpt-4o", 0, 3.0, 3),
        ("gpt-4o", 60, 10.0, 1),
        ("gpt-4o", 120, None, 0),
    ]
    two = series(filled, group_by=["service_name", "environment"], step_ns=180 * S)
    assert [(r["service_name"], r["environment"], r["points"]) for r in two] == [
        ("api", "prod", 4),
        ("worker", None, 1),
    ]
    assert series(filled, group_by=["service_name"], max_series=1, step_ns=180 * S) == [
        {"bucket": 0, "service_name": "api", "value": 4.0, "points": 4}
    ]


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ("avg", 2.75),
        ("sum", 11.0),
        ("min", 1.0),
        ("max", 5.0),
        ("count", 4.0),
        ("p50", 2.5),
        ("p90", 4.4),
        ("p95", 4.7),
        ("p99", 4.94),
        ("last", 5.0),
    ],
)
def test_every_aggregation(filled: SpanStore, aggregation: str, expected: float) -> None:
    # latency points in [0, 60) s: 1, 3, 2 (api) and 5 (worker, at 30 s: the latest).
    rows = series(filled, aggregation=aggregation, until_ns=T0 + 60 * S)
    assert len(rows) == 1
    assert rows[0]["points"] == 4
    assert math.isclose(rows[0]["value"], expected)


def test_every_documented_aggregation_is_tested() -> None:
    assert set(METRIC_AGGREGATIONS) == {
        "avg", "sum", "min", "max", "count", "p50", "p90", "p95", "p99", "last",
    }  # fmt: skip


def test_points_without_a_value_count_but_do_not_aggregate(filled: SpanStore) -> None:
    rows = series(filled, "tokens", group_by=["service_name"], step_ns=180 * S)
    assert [(r["service_name"], r["value"], r["points"]) for r in rows] == [
        ("api", 100.0, 1),
        ("batch", None, 1),
    ]
    counted = series(filled, "tokens", aggregation="count", step_ns=180 * S)
    assert [(r["value"], r["points"]) for r in counted] == [(1.0, 2)]


def test_a_partial_last_bucket_and_the_range_bounds(filled: SpanStore) -> None:
    # [10 s, 70 s) in 50 s steps: buckets at 10 (points at 10, 20, 30 s) and 60; 70 s is out.
    rows = series(filled, since_ns=T0 + 10 * S, until_ns=T0 + 70 * S, step_ns=50 * S)
    assert [(r["bucket"], r["points"]) for r in rows] == [(10, 3), (60, 0)]


def test_no_points_no_series(filled: SpanStore) -> None:
    assert series(filled, "unknown.metric") == []
    assert series(filled, filters={"environment": "staging"}) == []
    assert series(filled, since_ns=T0 + 1000 * S, until_ns=T0 + 2000 * S) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"aggregation": "median"}, "aggregation 'median' is not one of avg"),
        ({"group_by": ["host"]}, "group_by 'host' is not one of service_name"),
        ({"group_by": ["model_id", "model_id"]}, "names a column twice"),
        ({"filters": {"metric_name": "x"}}, "filter 'metric_name' is not one of"),
        ({"filters": {"service_name": 3}}, "filter service_name must be a string"),
        ({"until_ns": T0}, "must be after since_ns"),
        ({"step_ns": 0}, "step_ns must be positive"),
        ({"step_ns": 1.5}, "step_ns must be an integer"),
        ({"max_series": 0}, "max_series must be a positive integer"),
        ({"step_ns": 1}, f"more than {MAX_METRIC_BUCKETS}"),
    ],
)
def test_bad_series_arguments(filled: SpanStore, arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        series(filled, **arguments)
    with pytest.raises(QueryError, match="metric name"):
        filled.metric_series("", since_ns=T0, until_ns=T0 + S, step_ns=S)
    assert series(filled, step_ns=180 * S)[0]["points"] == 5  # the store goes on
