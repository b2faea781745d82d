"""The SpanStore contract for cost rows: replacing writes, summaries, breakdowns, days."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
from tests._readable_spans import make_span

from pyflare.errors import QueryError, StoreError
from pyflare.records import COST_SCHEMA, from_readable_spans
from pyflare.store.base import COST_BREAKDOWNS, COST_DIMENSIONS, PYFLARE_TABLES, SpanStore

HOUR = 3600 * 1_000_000_000
DAY = 24 * HOUR
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z

StoreFactory = Callable[[], SpanStore]


def row(span: int, *, at: int = 0, cost: int | None = 100, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "trace_id": f"{span:032x}",
        "span_id": f"{span:016x}",
        "timestamp": T0 + at,
        "service_name": "chat",
        "model_id": "gpt-4o",
        "model_version": None,
        "provider": "openai",
        "price_model": "gpt-4o",
        "price_source": None if cost is None else "genai-prices",
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
        "cached_input_tokens": None,
        "reasoning_tokens": None,
        "tokens_estimated": False,
        "input_cost_micros": None if cost is None else cost // 2,
        "output_cost_micros": None if cost is None else cost - cost // 2,
        "total_cost_micros": cost,
        "user_id": "alice",
        "session_id": None,
        "feature_id": "search",
        "team": "core",
        "environment": "prod",
        "dimensions": [("tenant", "acme")],
    }
    values.update(overrides)
    return values


def table(*rows: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=COST_SCHEMA)


def total(store: SpanStore, **kwargs: Any) -> dict[str, Any]:
    rows = store.cost_summary(None, None, **kwargs).to_pylist()
    assert len(rows) == 1
    return dict(rows[0])


def test_cost_tables_are_queryable() -> None:
    assert {"costs", "costs_hourly"} <= PYFLARE_TABLES
    assert set(COST_BREAKDOWNS.values()) <= set(COST_DIMENSIONS)


def test_every_cost_column_round_trips(store: SpanStore) -> None:
    rows = [
        row(1, dimensions=[]),
        row(2, at=1, cost=None, cached_input_tokens=3, reasoning_tokens=2, tokens_estimated=True),
    ]
    assert store.write_costs(table(*rows)) == 2
    stored = store.sql("SELECT * FROM costs ORDER BY span_id")
    assert stored.cast(COST_SCHEMA).to_pylist() == table(*rows).to_pylist()


def test_rewriting_a_span_replaces_its_row(store: SpanStore) -> None:
    store.write_costs(table(row(1, cost=100), row(2, cost=None)))
    assert store.write_costs(table(row(2, cost=70), row(3, cost=5))) == 2
    assert store.write_costs(table(row(2, cost=70), row(3, cost=5))) == 2  # redelivered
    summary = total(store)
    assert summary["requests"] == 3
    assert summary["cost_micros"] == 175
    assert summary["unpriced_requests"] == 0
    # A batch that names a span twice keeps the last row of it.
    store.write_costs(table(row(4, cost=1), row(4, cost=2)))
    assert store.sql(
        "SELECT total_cost_micros FROM costs WHERE span_id = ?", [f"{4:016x}"]
    ).to_pylist() == [{"total_cost_micros": 2}]


def test_an_unpriced_call_is_never_summed_as_zero(store: SpanStore) -> None:
    store.write_costs(table(row(1, cost=None), row(2, cost=None, model_id="new-model")))
    summary = total(store)
    assert summary["requests"] == 2
    assert summary["cost_micros"] is None
    assert summary["unpriced_requests"] == 2
    store.write_costs(table(row(3, cost=40)))
    by_model = store.cost_summary(None, None, group_by=["model_id"]).to_pylist()
    assert [(r["model_id"], r["cost_micros"], r["unpriced_requests"]) for r in by_model] == [
        ("gpt-4o", 40, 1),
        ("new-model", None, 1),
    ]


def test_unknown_tokens_sum_to_null(store: SpanStore) -> None:
    store.write_costs(
        table(
            row(1, input_tokens=None, output_tokens=None, total_tokens=None, tokens_estimated=True)
        )
    )
    summary = total(store)
    assert (summary["input_tokens"], summary["output_tokens"], summary["total_tokens"]) == (
        None,
        None,
        None,
    )
    assert summary["estimated_token_requests"] == 1


def test_an_empty_store_sums_to_no_requests(store: SpanStore) -> None:
    assert total(store) == {
        "requests": 0,
        "input_tokens": None,
        "output_tokens": None,
        "total_tokens": None,
        "cost_micros": None,
        "unpriced_requests": 0,
        "estimated_token_requests": 0,
    }
    assert store.cost_summary(None, None, group_by=["model_id"]).num_rows == 0
    assert store.daily_costs(None, None).num_rows == 0


def test_summary_groups_by_dimensions_and_periods(store: SpanStore) -> None:
    store.write_costs(
        table(
            row(1, at=0, cost=10, user_id="alice"),
            row(2, at=HOUR + 5, cost=20, user_id="bob"),
            row(3, at=HOUR + 6, cost=30, user_id="alice"),
            row(4, at=DAY + 1, cost=None, user_id=None),
        )
    )
    by_user = store.cost_summary(None, None, group_by=["user_id"]).to_pylist()
    assert [(r["user_id"], r["requests"], r["cost_micros"]) for r in by_user] == [
        ("alice", 2, 40),
        ("bob", 1, 20),
        (None, 1, None),
    ]
    hours = store.cost_summary(None, None, group_by=["hour"]).to_pylist()
    assert [(r["hour"], r["cost_micros"]) for r in hours] == [
        (dt.datetime(2026, 1, 1, 0), 10),
        (dt.datetime(2026, 1, 1, 1), 50),
        (dt.datetime(2026, 1, 2, 0), None),
    ]
    days = store.cost_summary(None, None, group_by=["day", "user_id"]).to_pylist()
    assert [(r["day"], r["user_id"], r["requests"]) for r in days] == [
        (dt.datetime(2026, 1, 1), "alice", 2),
        (dt.datetime(2026, 1, 1), "bob", 1),
        (dt.datetime(2026, 1, 2), None, 1),
    ]


def test_summary_time_range_is_half_open_and_filters_match(store: SpanStore) -> None:
    store.write_costs(
        table(
            row(1, at=0, cost=1),
            row(2, at=HOUR, cost=2, team="ads"),
            row(3, at=2 * HOUR, cost=4),
        )
    )
    assert total(store)["cost_micros"] == 7
    in_range = store.cost_summary(T0, T0 + 2 * HOUR).to_pylist()
    assert in_range[0]["cost_micros"] == 3
    assert store.cost_summary(T0 + 1, None).to_pylist()[0]["cost_micros"] == 6
    assert total(store, filters={"team": "ads"})["cost_micros"] == 2
    assert total(store, filters={"team": "core", "model_id": "gpt-4o"})["cost_micros"] == 5
    assert total(store, filters={"user_id": "nobody"})["requests"] == 0


def test_breakdown_is_the_costliest_values_first(store: SpanStore) -> None:
    store.write_costs(
        table(
            row(1, cost=5, feature_id="chat"),
            row(2, cost=50, feature_id="search"),
            row(3, cost=7, feature_id="chat"),
            row(4, cost=1, feature_id=None),
        )
    )
    top = store.cost_breakdown("feature", None, None, limit=2).to_pylist()
    assert [(r["feature_id"], r["cost_micros"], r["requests"]) for r in top] == [
        ("search", 50, 1),
        ("chat", 12, 2),
    ]
    by_column = store.cost_breakdown("feature_id", T0, T0 + 1, limit=10).to_pylist()
    assert len(by_column) == 3


def test_daily_costs_for_a_model_or_team(store: SpanStore) -> None:
    store.write_costs(
        table(
            row(1, at=0, cost=10),
            row(2, at=DAY, cost=None),
            row(3, at=DAY + 1, cost=5, model_id="claude-sonnet-4", team="ads"),
            row(4, at=3 * DAY, cost=7),
        )
    )
    days = store.daily_costs(None, None, model_id="gpt-4o").to_pylist()
    assert days == [
        {"day": dt.date(2026, 1, 1), "cost_micros": 10, "requests": 1},
        {"day": dt.date(2026, 1, 2), "cost_micros": 0, "requests": 1},
        {"day": dt.date(2026, 1, 4), "cost_micros": 7, "requests": 1},
    ]
    assert store.daily_costs(T0 + DAY, T0 + 2 * DAY, team="ads").to_pylist() == [
        {"day": dt.date(2026, 1, 2), "cost_micros": 5, "requests": 1}
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda s: s.cost_summary(None, None, group_by=["colour"]),
            "cannot group costs by 'colour'",
        ),
        (lambda s: s.cost_summary(None, None, group_by=["day", "day"]), "twice"),
        (
            lambda s: s.cost_summary(None, None, filters={"hour": "1"}),
            "cannot filter costs on 'hour'",
        ),
        (
            lambda s: s.cost_summary(None, None, filters={"team": 3}),
            "filter on team must be a string",
        ),
        (lambda s: s.cost_summary(T0 + 1, T0), "before since_ns"),
        (lambda s: s.cost_summary("yesterday", None), "since_ns must be integer"),
        (lambda s: s.cost_breakdown("galaxy", None, None), "cannot break costs down by 'galaxy'"),
        (lambda s: s.cost_breakdown("model", None, None, limit=0), "limit must be a positive"),
        (lambda s: s.model_spans(None, None, after=(1, "x")), "after must be"),
    ],
)
def test_bad_cost_queries_name_what_is_wrong(
    store: SpanStore, call: Callable[[SpanStore], Any], message: str
) -> None:
    with pytest.raises(QueryError, match=message):
        call(store)


def test_a_batch_without_the_cost_schema_is_refused_and_nothing_is_lost(store: SpanStore) -> None:
    store.write_costs(table(row(1)))
    with pytest.raises(StoreError, match="cost schema"):
        store.write_costs(pa.table({"trace_id": ["x"]}))
    with pytest.raises(StoreError, match="model_id"):
        store.write_costs(table(row(2)).set_column(4, "model_id", pa.array([None], pa.string())))
    assert total(store)["requests"] == 1
    assert store.write_costs(COST_SCHEMA.empty_table()) == 0


def test_model_spans_page_through_and_costs_are_rewritten(store: SpanStore) -> None:
    spans = [
        make_span(1, i, start=T0 + i, attributes={"gen_ai.request.model": "gpt-4o"})
        for i in range(1, 6)
    ]
    spans.append(make_span(1, 9, start=T0 + 2))  # no model: not read
    store.write(from_readable_spans(spans))
    first = store.model_spans(None, None, limit=3)
    assert first.column("span_id").to_pylist() == [f"{i:016x}" for i in (1, 2, 3)]
    last = first.slice(2).to_pylist()[0]
    after = (T0 + 3, last["trace_id"], last["span_id"])
    rest = store.model_spans(None, None, after=after, limit=3)
    assert rest.column("span_id").to_pylist() == [f"{i:016x}" for i in (4, 5)]
    assert store.model_spans(T0 + 2, T0 + 4).num_rows == 2

    repriced = rest.set_column(
        rest.schema.get_field_index("cost_micros"), "cost_micros", pa.array([11, 12], pa.int64())
    )
    assert store.update_span_costs(repriced) == 2
    assert store.update_span_costs(repriced) == 0  # nothing left to change
    costs = store.sql("SELECT span_id, cost_micros FROM traces ORDER BY span_id").to_pylist()
    assert [c["cost_micros"] for c in costs] == [None, None, None, 11, 12, None]
