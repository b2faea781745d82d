"""Server-side budgets: rules from configuration, status over stored costs, cost alerts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pyflare.cost.budgets import Budget, budget_status, budgets_from_config, evaluate_budgets
from pyflare.errors import ConfigError, InvalidArgumentError, StoreError
from pyflare.records import COST_SCHEMA
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare.testing import DEFAULT_START_NS

DAY_NS = 86_400 * 10**9
HOUR_NS = 3600 * 10**9
# 2026-01-07T12:00:00Z, a Wednesday: its day began at midnight, its week on Monday 5th.
NOW = DEFAULT_START_NS + 6 * DAY_NS + 12 * HOUR_NS


def cost_row(span: int, at: int, cost: int | None, **overrides: Any) -> dict[str, Any]:
    """A costs row with the columns budgets read; the rest stay NULL."""
    return {
        "trace_id": f"{span:032x}",
        "span_id": f"{span:016x}",
        "timestamp": at,
        "service_name": "chat",
        "model_id": "gpt-4o",
        "tokens_estimated": False,
        "total_cost_micros": cost,
        "user_id": "alice",
        "team": "core",
        "dimensions": [],
        **overrides,
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBSpanStore]:
    opened = DuckDBSpanStore(tmp_path / "spans.duckdb")
    rows = [
        cost_row(1, NOW - HOUR_NS, 3_000_000),  # today
        cost_row(2, NOW - 2 * HOUR_NS, 2_000_000, user_id="bob"),  # today, bob
        cost_row(3, NOW - 2 * DAY_NS, 4_000_000),  # Monday: this week, not today
        cost_row(4, NOW - 3 * DAY_NS, 9_000_000),  # Sunday: last week, this month
        cost_row(5, NOW - 3 * HOUR_NS, None),  # today, unpriced
        cost_row(6, NOW - HOUR_NS, 1_000_000, model_id="claude-3-5-haiku", team="ml"),
    ]
    opened.write_costs(pa.Table.from_pylist(rows, schema=COST_SCHEMA))
    yield opened
    opened.close()


def test_budget_status_reads_each_rules_window(store: DuckDBSpanStore) -> None:
    rules = budgets_from_config(
        [
            {"name": "all-daily", "limit_usd": 10},
            {"name": "alice-daily", "dimension": "user_id", "value": "alice", "limit_usd": 3},
            {
                "name": "gpt-weekly",
                "dimension": "model",
                "value": "gpt-4o",
                "window": "week",
                "limit_usd": 10,
                "warn_at": 0.5,
            },
            {
                "name": "core-monthly",
                "dimension": "team",
                "value": "core",
                "window": "month",
                "limit_usd": 100,
            },
        ]
    )
    rows = {row["name"]: row for row in budget_status(store, rules, NOW)}
    daily = rows["all-daily"]
    assert (daily["spent_micros"], daily["requests"], daily["unpriced_requests"]) == (
        6_000_000,
        4,
        1,
    )
    assert (daily["window_start"], daily["resets_at"]) == (
        "2026-01-07T00:00:00Z",
        "2026-01-08T00:00:00Z",
    )
    assert (daily["status"], daily["alert"], daily["remaining_micros"]) == ("ok", None, 4_000_000)
    alice = rows["alice-daily"]
    assert (alice["spent_micros"], alice["status"]) == (4_000_000, "exceeded")
    assert alice["alert"]["severity"] == "critical"
    weekly = rows["gpt-weekly"]
    assert (weekly["spent_micros"], weekly["status"]) == (9_000_000, "warning")
    assert weekly["window_start"] == "2026-01-05T00:00:00Z"
    assert weekly["alert"]["model_id"] == "gpt-4o"
    monthly = rows["core-monthly"]
    assert (monthly["spent_micros"], monthly["status"]) == (18_000_000, "ok")
    assert monthly["spent_usd"] == 18.0


def test_an_empty_window_has_spent_nothing(store: DuckDBSpanStore) -> None:
    (row,) = budget_status(store, [Budget(limit_usd=1, dimension="user", value="carol")], NOW)
    assert (row["spent_micros"], row["requests"], row["status"]) == (0, 0, "ok")


def test_a_store_without_the_cost_column_is_a_store_error() -> None:
    class OddStore:
        def cost_summary(self, *args: object, **kwargs: object) -> pa.Table:
            return pa.table({"requests": [1]})

    with pytest.raises(StoreError, match="no 'cost_micros' column"):
        budget_status(OddStore(), [Budget(limit_usd=1)], NOW)  # type: ignore[arg-type]


def test_alerts_have_the_drift_alert_shape_and_exact_amounts() -> None:
    from pyflare_server.api.drift import alert_payload

    drift = alert_payload(
        "m",
        {
            "is_drifted": True,
            "drift_type": "feature",
            "score": 0.9,
            "threshold": 0.1,
            "computed_at": NOW,
            "window_end": NOW,
        },
    )
    assert drift is not None
    rules = [
        Budget(limit_usd=10, name="soft", warn_at=0.8),
        Budget(limit_usd=10, name="over", dimension="model", value="gpt-4o"),
        Budget(limit_usd=10, name="calm"),
    ]
    alerts = evaluate_budgets(rules, {"soft": 8_000_000, "over": 10_000_001}, now_ns=NOW)
    assert [a["labels"]["budget"] for a in alerts] == ["soft", "over"]
    warning, critical = alerts
    assert set(warning) == set(drift)
    assert (warning["alert_type"], warning["severity"], warning["status"]) == (
        "cost",
        "warning",
        "firing",
    )
    assert warning["title"] == "Budget 'soft' at 80% of its limit"
    assert warning["threshold_value"] == 8.0
    assert warning["annotations"]["spent_micros"] == "8000000"
    assert critical["severity"] == "critical"
    assert critical["model_id"] == "gpt-4o"
    assert critical["description"] == (
        "Model gpt-4o spent $10.000001 of $10.00 this day "
        "(window 2026-01-07T00:00:00Z to 2026-01-08T00:00:00Z)"
    )
    assert critical["labels"]["window_start"] == "2026-01-07T00:00:00Z"
    assert critical["triggered_at"] == "2026-01-07T12:00:00Z"
    assert all(
        isinstance(v, str)
        for a in alerts
        for v in (*a["labels"].values(), *a["annotations"].values())
    )


@pytest.mark.parametrize(
    ("rules", "spend", "message"),
    [
        (Budget(limit_usd=1), {}, "rules must be a list of Budget"),
        ([{"limit_usd": 1}], {}, r"rules\[0\] must be a Budget"),
        ([Budget(limit_usd=1)], [("total per day", 1)], "spend_by_rule must map"),
        ([Budget(limit_usd=1)], {"nope": 1}, "'nope', which is not a budget"),
        ([Budget(limit_usd=1)], {"total per day": -1}, "non-negative integer"),
        ([Budget(limit_usd=1)], {"total per day": 1.5}, "non-negative integer"),
        ([Budget(limit_usd=1)], {"total per day": True}, "non-negative integer"),
    ],
)
def test_evaluate_budgets_rejects_bad_input(rules: Any, spend: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        evaluate_budgets(rules, spend, now_ns=NOW)


def test_config_entries_get_defaults_and_aliases() -> None:
    first, second = budgets_from_config(
        [
            {"limit_micros": 5},
            {
                "name": "t",
                "dimension": "feature_id",
                "value": "chat",
                "window": "month",
                "limit_usd": "2.50",
                "warn_at": None,
                "hard": True,
            },
        ]
    )
    assert first == Budget(limit_micros=5)
    assert (first.name, first.window, first.warn_at) == ("total per day", "day", 0.8)
    assert (second.dimension, second.limit_micros, second.warn_at, second.hard) == (
        "feature",
        2_500_000,
        None,
        True,
    )
    assert budgets_from_config([]) == []


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"limit_usd": 1}, "budgets must be a list of budget entries, got dict"),
        ("limit_usd: 1", "budgets must be a list of budget entries, got str"),
        ([3], r"budgets\[0\] must be a mapping of fields, got int"),
        ([{"name": "a", "limit": 1}], r"budgets\[0\] \('a'\): unknown field\(s\) limit; expected"),
        (
            [{"limit_usd": 1}, {"name": "b", "limit_usd": -2}],
            r"budgets\[1\] \('b'\): the limit must be positive",
        ),
        ([{"name": "c", "limit_usd": 1, "window": "hour"}], r"\('c'\): window must be one of"),
        ([{"limit_usd": 1, "dimension": "user"}], r"budgets\[0\]: a 'user' budget needs value"),
        (
            [{"name": "d", "limit_usd": 1}, {"name": "d", "limit_usd": 2}],
            r"name 'd' is already used by budgets\[0\]",
        ),
        ([{"limit_usd": 1}, {"limit_usd": 2}], "'total per day' is already used"),
    ],
)
def test_bad_config_names_the_entry_and_field(entries: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        budgets_from_config(entries)


def test_config_errors_name_the_source() -> None:
    with pytest.raises(ConfigError, match=r"^server.yaml: budgets\[0\]: unknown field"):
        budgets_from_config([{"limit_usd": 1, "x": 1}], source="server.yaml: budgets")
