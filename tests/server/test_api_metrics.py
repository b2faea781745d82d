"""GET /api/v1/metrics and /api/v1/metrics/timeseries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.testclient import TestClient

from pyflare.records import METRIC_SCHEMA
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server import api
from pyflare_server.api.metrics import TARGET_BUCKETS, auto_step, parse_series

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
ISO0 = "2026-01-01T00:00:00Z"


def point(name: str, offset_s: int, value: float, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "metric_name": name,
        "service_name": "api",
        "model_id": "gpt-4o",
        "model_version": None,
        "environment": "prod",
        "timestamp": T0 + offset_s * S,
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
    point("latency", 0, 1.0),
    point("latency", 30, 3.0),
    point("latency", 90, 10.0),
    point("latency", 40, 7.0, service_name="worker"),
    point("tokens", 10, 5.0, value_type="counter", unit="{token}"),
]


def metric_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=METRIC_SCHEMA)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with DuckDBSpanStore() as store:
        store.write_metrics(metric_table(POINTS))
        with TestClient(Starlette(routes=api.routes(store))) as test_client:
            yield test_client


def problem(client: TestClient, url: str, **params: Any) -> str:
    response = client.get(url, params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["code"], body["instance"]) == ("invalid_argument", url)
    return str(body["detail"])


def test_the_metric_list(client: TestClient) -> None:
    response = client.get("/api/v1/metrics", params={"start_time": ISO0, "end_time": "2026-01-02"})
    assert response.status_code == 200
    metrics = response.json()["metrics"]
    assert [m["name"] for m in metrics] == ["latency", "tokens"]
    assert metrics[0] == {
        "name": "latency",
        "value_type": "gauge",
        "unit": "s",
        "services": ["api", "worker"],
        "points": 4,
        "last_seen": "2026-01-01T00:01:30.000000000Z",
        "last_seen_ns": T0 + 90 * S,
    }
    only = client.get(
        "/api/v1/metrics", params={"start_time": ISO0, "service": "worker", "limit": 5}
    )
    assert [m["name"] for m in only.json()["metrics"]] == ["latency"]
    # The default window is the last 24 hours: these 2026 points are not in it.
    assert client.get("/api/v1/metrics").json() == {"metrics": []}


def test_a_timeseries_grouped_by_service(client: TestClient) -> None:
    response = client.get(
        "/api/v1/metrics/timeseries",
        params={
            "name": "latency",
            "start_time": ISO0,
            "end_time": "2026-01-01T00:02:00Z",
            "step": "1m",
            "aggregation": "max",
            "group_by": "service_name",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["step_ns"], body["step_seconds"], body["group_by"]) == (
        60 * S,
        60.0,
        ["service_name"],
    )
    assert [s["labels"] for s in body["series"]] == [
        {"service_name": "api"},
        {"service_name": "worker"},
    ]
    api_points = body["series"][0]["points"]
    assert [(p["time"], p["value"], p["points"]) for p in api_points] == [
        ("2026-01-01T00:00:00.000000000Z", 3.0, 2),
        ("2026-01-01T00:01:00.000000000Z", 10.0, 1),
    ]
    worker = body["series"][1]["points"]
    assert [(p["value"], p["points"]) for p in worker] == [(7.0, 1), (None, 0)]


def test_filters_and_the_default_step(client: TestClient) -> None:
    body = client.get(
        "/api/v1/metrics/timeseries",
        params={
            "name": "latency",
            "start_time": ISO0,
            "end_time": "2026-01-01T01:00:00Z",
            "service": "worker",
            "environment": "prod",
        },
    ).json()
    assert body["step_ns"] == 15 * S  # an hour in at most 300 buckets
    (series,) = body["series"]
    assert series["labels"] == {}
    assert len(series["points"]) == 240
    assert sum(p["points"] for p in series["points"]) == 1


def test_auto_step() -> None:
    assert auto_step(60 * S) == S
    assert auto_step(3600 * S) == 15 * S
    assert auto_step(86400 * S) == 300 * S
    assert auto_step(300 * 604800 * S + 1) * 10_000 >= 300 * 604800 * S + 1
    assert TARGET_BUCKETS == 300


def test_parse_series_reads_repeated_and_comma_group_by() -> None:
    parsed = parse_series(
        QueryParams(
            "name=x&group_by=model_id,environment&group_by=service_name&start_time=0&end_time=60"
        ),
    )
    assert parsed["group_by"] == ("model_id", "environment", "service_name")
    assert (parsed["since_ns"], parsed["until_ns"], parsed["step_ns"]) == (0, 60, 1 * S)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({}, "name is required"),
        ({"name": " "}, "name must not be empty"),
        ({"name": "x" * 600}, "name is longer than 512"),
        ({"name": "latency", "aggregation": "median"}, "aggregation must be one of avg"),
        ({"name": "latency", "group_by": "host"}, "group_by 'host' is not one of"),
        ({"name": "latency", "group_by": "model_id,model_id"}, "group_by names 'model_id' twice"),
        ({"name": "latency", "step": "fast"}, "step='fast' is not a duration"),
        ({"name": "latency", "step": "0s"}, "step must be positive"),
        ({"name": "latency", "step": "1ms", "start_time": "1d"}, "use a step of at least"),
        ({"name": "latency", "start_time": "yesterday"}, "start_time='yesterday' is not a time"),
        ({"name": "latency", "start_time": ISO0, "end_time": ISO0}, "must be after start_time"),
        ({"name": "latency", "max_series": "0"}, "max_series must be an integer from 1"),
        ({"name": "latency", "service": ""}, "service must not be empty"),
        ({"name": "latency", "host": "h"}, "unknown parameter 'host'"),
    ],
)
def test_bad_timeseries_parameters(client: TestClient, params: dict[str, str], named: str) -> None:
    assert named in problem(client, "/api/v1/metrics/timeseries", **params)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": "0"}, "limit must be an integer from 1 to 1000"),
        ({"limit": "x"}, "limit must be an integer"),
        ({"model_id": ""}, "model_id must not be empty"),
        ({"start_time": ISO0, "end_time": "1970-01-01T00:00:00Z"}, "must be after start_time"),
        ({"name": "latency"}, "unknown parameter 'name'"),
    ],
)
def test_bad_list_parameters(client: TestClient, params: dict[str, str], named: str) -> None:
    assert named in problem(client, "/api/v1/metrics", **params)
    assert client.get("/api/v1/metrics", params={"start_time": ISO0}).status_code == 200


def test_a_closed_store_is_503_problem() -> None:
    store = DuckDBSpanStore()
    with TestClient(Starlette(routes=api.routes(store))) as client:
        store.close()
        for url in ("/api/v1/metrics", "/api/v1/metrics/timeseries?name=latency"):
            response = client.get(url)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert "closed" in response.json()["detail"]
