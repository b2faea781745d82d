"""GET /api/v1/costs, …/breakdown, …/forecast and …/budgets, on a real DuckDB store."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from pyflare.cost.budgets import budgets_from_config
from pyflare.records import COST_SCHEMA
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.api import costs

HOUR = 3600 * 1_000_000_000
DAY = 24 * HOUR
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
WINDOW = {"start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-03T00:00:00Z"}


def row(span: int, at: int, cost: int | None, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "trace_id": f"{span:032x}",
        "span_id": f"{span:016x}",
        "timestamp": T0 + at,
        "service_name": "chat",
        "model_id": "gpt-4o",
        "provider": "openai",
        "input_tokens": 100,
        "output_tokens": 20,
        "total_tokens": 120,
        "tokens_estimated": False,
        "total_cost_micros": cost,
        "user_id": "alice",
        "feature_id": "search",
        "team": "core",
        "environment": "prod",
        "dimensions": [],
    }
    values.update(overrides)
    return values


def write(store: DuckDBSpanStore, *rows: dict[str, Any]) -> None:
    store.write_costs(pa.Table.from_pylist(list(rows), schema=COST_SCHEMA))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBSpanStore]:
    with DuckDBSpanStore(tmp_path / "costs.duckdb") as opened:
        write(
            opened,
            row(1, 0, 1_500_000),
            row(2, HOUR, 250_001, user_id="bob", model_id="claude-sonnet-4", provider="anthropic"),
            row(3, HOUR + 1, None, model_id="brand-new-model", provider=None, user_id="bob"),
            row(4, DAY + 5, 3, feature_id="chat", tokens_estimated=True),
            row(5, 3 * DAY, 999),  # outside WINDOW
        )
        yield opened


@pytest.fixture
def client(store: DuckDBSpanStore) -> Iterator[TestClient]:
    rules = budgets_from_config(
        [
            {"name": "bob-daily", "dimension": "user", "value": "bob", "limit_usd": 1},
            {"name": "everything", "limit_micros": 10},
        ]
    )
    with TestClient(Starlette(routes=costs.routes(store, rules))) as test_client:
        yield test_client


def error(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "instance", "code"}
    assert body["status"] == status
    return str(body["detail"])


def test_summary_is_the_spec_cost_summary_with_exact_micros(client: TestClient) -> None:
    body = client.get("/api/v1/costs", params=WINDOW).json()
    assert body["total_cost_micros"] == 1_750_004
    assert body["total_cost_usd"] == pytest.approx(1.750004)
    assert body["total_requests"] == 4
    assert body["unpriced_requests"] == 1
    assert body["estimated_token_requests"] == 1
    assert body["total_input_tokens"] == 400
    assert body["total_output_tokens"] == 80
    # The average is over priced calls: an unknown model is not a $0 call.
    assert body["average_cost_per_request_usd"] == pytest.approx(1.750004 / 3)
    assert body["period"] == "day"
    assert body["by_period"] == [
        {
            "period": "2026-01-01",
            "cost_usd": 1.750001,
            "cost_micros": 1_750_001,
            "requests": 3,
            "unpriced_requests": 1,
        },
        {
            "period": "2026-01-02",
            "cost_usd": 3e-06,
            "cost_micros": 3,
            "requests": 1,
            "unpriced_requests": 0,
        },
    ]
    assert body["groups"] == []
    assert body["start_time"] == "2026-01-01T00:00:00.000000000Z"


def test_summary_groups_repeated_or_comma_separated(client: TestClient) -> None:
    repeated = client.get(
        "/api/v1/costs", params=[*WINDOW.items(), ("group_by", "model_id"), ("group_by", "hour")]
    ).json()
    listed = client.get("/api/v1/costs", params={**WINDOW, "group_by": "model_id,hour"}).json()
    assert repeated == listed
    assert listed["period"] == "hour"
    groups = [(g["hour"], g["model_id"], g["cost_micros"]) for g in listed["groups"]]
    assert groups == [
        ("2026-01-01T00:00:00.000000000Z", "gpt-4o", 1_500_000),
        ("2026-01-01T01:00:00.000000000Z", "claude-sonnet-4", 250_001),
        ("2026-01-01T01:00:00.000000000Z", "brand-new-model", None),
        ("2026-01-02T00:00:00.000000000Z", "gpt-4o", 3),
    ]
    unpriced = next(g for g in listed["groups"] if g["model_id"] == "brand-new-model")
    assert unpriced["cost_usd"] is None and unpriced["unpriced_requests"] == 1


def test_an_empty_window_costs_zero_and_all_unpriced_costs_null(
    client: TestClient, store: DuckDBSpanStore
) -> None:
    empty = client.get(
        "/api/v1/costs", params={"start_time": "2030-01-01", "end_time": "2030-01-02"}
    ).json()
    assert (empty["total_cost_micros"], empty["total_requests"]) == (0, 0)
    assert empty["average_cost_per_request_usd"] is None
    only_unpriced = client.get(
        "/api/v1/costs",
        params={"start_time": "2026-01-01T01:00:00.000000001Z", "end_time": "2026-01-01T02:00Z"},
    ).json()
    assert only_unpriced["total_requests"] == 1
    assert only_unpriced["total_cost_micros"] is None
    assert only_unpriced["total_cost_usd"] is None


def test_breakdown_lists_the_costliest_values_with_their_share(client: TestClient) -> None:
    body = client.get(
        "/api/v1/costs/breakdown", params={**WINDOW, "dimension": "user", "limit": "1"}
    ).json()
    assert body["dimension"] == "user" and body["column"] == "user_id"
    assert body["total_cost_micros"] == 1_750_004
    assert [(i["value"], i["cost_micros"], i["requests"]) for i in body["items"]] == [
        ("alice", 1_500_003, 2)
    ]
    assert body["items"][0]["share"] == pytest.approx(1_500_003 / 1_750_004)
    assert body["other"] == {"cost_micros": 250_001, "cost_usd": 0.250001, "requests": 2}
    models = client.get("/api/v1/costs/breakdown", params={**WINDOW, "dimension": "model"})
    values = [i["value"] for i in models.json()["items"]]
    assert values == ["gpt-4o", "claude-sonnet-4", "brand-new-model"]


def test_forecast_of_a_model_from_its_daily_costs(
    client: TestClient, store: DuckDBSpanStore
) -> None:
    today = time.time_ns() // DAY * DAY
    write(
        store,
        *(
            row(100 + d, today - T0 - (d + 1) * DAY + HOUR, 1_000_000 + 10_000 * d, model_id="m")
            for d in range(21)
        ),
    )
    body = client.get(
        "/api/v1/costs/forecast", params={"model_id": "m", "horizon_days": "7"}
    ).json()
    assert body["model_id"] == "m"
    assert body["method"] == "holt_winters_weekly"
    assert body["horizon_days"] == 7
    assert len(body["points"]) == 7
    yesterday = dt.datetime.fromtimestamp(today / 1e9, dt.UTC).date() - dt.timedelta(days=1)
    assert body["history_end"] == yesterday.isoformat()
    assert body["points"][0]["day"] == (yesterday + dt.timedelta(days=1)).isoformat()
    assert all(p["lower_micros"] <= p["cost_micros"] <= p["upper_micros"] for p in body["points"])


def test_forecast_without_history_is_404_and_too_little_is_422(
    client: TestClient, store: DuckDBSpanStore
) -> None:
    assert "nothing to forecast" in error(
        client.get("/api/v1/costs/forecast", params={"model_id": "unknown"}), 404
    )
    today = time.time_ns() // DAY * DAY
    write(store, row(200, today - T0 - DAY + HOUR, 5, model_id="fresh"))
    assert "cannot forecast model_id='fresh'" in error(
        client.get("/api/v1/costs/forecast", params={"model_id": "fresh"}), 422
    )


def test_budgets_report_spend_in_their_window(client: TestClient, store: DuckDBSpanStore) -> None:
    now = time.time_ns()
    write(store, row(300, now - T0 - 1, 2_000_000, user_id="bob"))
    budgets = {b["name"]: b for b in client.get("/api/v1/costs/budgets").json()["budgets"]}
    assert budgets["bob-daily"]["spent_micros"] == 2_000_000
    assert budgets["bob-daily"]["status"] == "exceeded"
    assert budgets["everything"]["status"] == "exceeded"


def test_no_budget_rules_is_an_empty_list(store: DuckDBSpanStore) -> None:
    with TestClient(Starlette(routes=costs.routes(store))) as plain:
        assert plain.get("/api/v1/costs/budgets").json() == {"budgets": []}


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v1/costs", {}, "start_time is required"),
        ("/api/v1/costs", {"start_time": "2026-01-01"}, "end_time is required"),
        ("/api/v1/costs", {**WINDOW, "start_time": ""}, "start_time is required"),
        ("/api/v1/costs", {**WINDOW, "start_time": "yesterday-ish"}, "start_time='yesterday-ish'"),
        ("/api/v1/costs", {**WINDOW, "end_time": "2025-12-31"}, "must be after start_time"),
        ("/api/v1/costs", {**WINDOW, "group_by": "colour"}, "group_by 'colour' is not one of"),
        ("/api/v1/costs", {**WINDOW, "group_by": "day,day"}, "names 'day' twice"),
        ("/api/v1/costs", {**WINDOW, "group_by": "hour,day"}, "hour or day, not both"),
        ("/api/v1/costs", {**WINDOW, "group_by": ""}, "group_by '' is not one of"),
        ("/api/v1/costs", {**WINDOW, "model": "x"}, "unknown parameter 'model'"),
        ("/api/v1/costs/breakdown", WINDOW, "dimension is required"),
        ("/api/v1/costs/breakdown", {**WINDOW, "dimension": "colour"}, "dimension 'colour'"),
        ("/api/v1/costs/breakdown", {"dimension": "user"}, "start_time is required"),
        (
            "/api/v1/costs/breakdown",
            {**WINDOW, "dimension": "user", "limit": "0"},
            "limit must be an integer from 1 to 1000",
        ),
        (
            "/api/v1/costs/breakdown",
            {**WINDOW, "dimension": "user", "limit": "ten"},
            "limit must be an integer",
        ),
        ("/api/v1/costs/forecast", {"horizon_days": "0"}, "horizon_days must be an integer from 1"),
        ("/api/v1/costs/forecast", {"horizon_days": "366"}, "from 1 to 365"),
        ("/api/v1/costs/forecast", {"horizon_days": "-3"}, "horizon_days"),
        ("/api/v1/costs/forecast", {"history_days": "2"}, "history_days must be an integer from 3"),
        ("/api/v1/costs/forecast", {"model_id": " "}, "model_id must not be empty"),
        ("/api/v1/costs/forecast", {"team": "x" * 600}, "team is longer than 512"),
        ("/api/v1/costs/forecast", {"days": "3"}, "unknown parameter 'days'"),
        ("/api/v1/costs/budgets", {"window": "day"}, "unknown parameter 'window'"),
    ],
)
def test_every_bad_parameter_is_a_400_naming_it(
    client: TestClient, path: str, params: dict[str, str], message: str
) -> None:
    assert message in error(client.get(path, params=params))


def test_a_repeated_single_parameter_is_a_400(client: TestClient) -> None:
    response = client.get(
        "/api/v1/costs/breakdown",
        params=[*WINDOW.items(), ("dimension", "user"), ("dimension", "model")],
    )
    assert "given 2 times" in error(response)


def test_a_failing_store_is_a_503_and_the_api_keeps_answering(
    client: TestClient, store: DuckDBSpanStore
) -> None:
    store.close()
    assert "the store could not answer" in error(client.get("/api/v1/costs", params=WINDOW), 503)
    assert "limit must be" in error(
        client.get("/api/v1/costs/breakdown", params={**WINDOW, "dimension": "user", "limit": "x"})
    )
