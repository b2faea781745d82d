"""The SpanStore contract for drift results and drift references."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

from pyflare.errors import QueryError, StoreError
from pyflare.records import DRIFT_RESULT_SCHEMA
from pyflare.store.base import DRIFT_TYPES, PYFLARE_TABLES, SpanStore

T0 = 1_767_225_600_000_000_123  # ns must survive
WINDOW = 300 * 1_000_000_000

StoreFactory = Callable[[], SpanStore]


def result(
    model_id: str = "fraud",
    *,
    window: int = 0,
    drift_type: str = "feature",
    score: float = 0.2,
    computed_at: int | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    start = T0 + window * WINDOW
    row: dict[str, Any] = {
        "model_id": model_id,
        "drift_type": drift_type,
        "window_start": start,
        "window_end": start + WINDOW,
        "computed_at": start + WINDOW + 5 if computed_at is None else computed_at,
        "score": score,
        "threshold": 0.5,
        "is_drifted": score > 0.5,
        "method": "ks",
        "feature_scores": [("amount", score), ("country", 0.1)],
        "explanation": f"window {window}",
        "n_reference": 1000,
        "n_current": 250,
        "details": '{"features": {}}',
    }
    row.update(overrides)
    return row


def table(*rows: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=DRIFT_RESULT_SCHEMA)


def test_drift_results_are_queryable_but_references_are_not() -> None:
    assert "drift_results" in PYFLARE_TABLES
    assert "drift_references" not in PYFLARE_TABLES
    assert {"feature", "embedding", "concept", "prediction"} == DRIFT_TYPES


def test_every_drift_result_column_round_trips(store: SpanStore) -> None:
    rows = [result(window=0), result(window=1, window_start=None, method=None, details=None)]
    assert store.write_drift_results(table(*rows)) == 2
    stored = store.drift_results("fraud")
    assert stored.schema == DRIFT_RESULT_SCHEMA
    expected = table(*reversed(rows))  # newest window first
    assert stored.to_pylist() == expected.to_pylist()


def test_results_are_newest_first_and_filtered(store: SpanStore) -> None:
    store.write_drift_results(
        table(
            result(window=0),
            result(window=2, score=0.9),
            result(window=1),
            result(window=1, drift_type="prediction"),
            result("other", window=3),
        )
    )
    windows = [r["explanation"] for r in store.drift_results("fraud").to_pylist()]
    assert windows == ["window 2", "window 1", "window 1", "window 0"]
    features = store.drift_results("fraud", drift_type="feature")
    assert features.column("explanation").to_pylist() == ["window 2", "window 1", "window 0"]
    # the window's end in [since, until)
    ranged = store.drift_results(
        "fraud", drift_type="feature", since_ns=T0 + 2 * WINDOW, until_ns=T0 + 3 * WINDOW
    )
    assert ranged.column("explanation").to_pylist() == ["window 1"]
    assert store.drift_results("fraud", limit=1).column("score").to_pylist() == [0.9]
    assert store.drift_results("fraud", limit=0).num_rows == 0
    assert store.drift_results("unknown").num_rows == 0
    assert store.drift_results("unknown").schema == DRIFT_RESULT_SCHEMA


def test_a_window_computed_twice_shows_the_latest_computation_first(store: SpanStore) -> None:
    store.write_drift_results(
        table(
            result(window=0, computed_at=T0 + 10, explanation="first"),
            result(window=0, computed_at=T0 + 20, explanation="second"),
        )
    )
    explanations = store.drift_results("fraud").column("explanation").to_pylist()
    assert explanations == ["second", "first"]


def test_users_can_query_drift_results(store: SpanStore) -> None:
    store.write_drift_results(table(result(window=0, score=0.8), result("other", window=0)))
    rows = store.sql(
        "SELECT model_id, feature_scores['amount'] AS amount FROM drift_results "
        "WHERE is_drifted ORDER BY model_id"
    ).to_pylist()
    assert rows == [{"model_id": "fraud", "amount": 0.8}]


def test_bad_drift_results_are_store_errors_and_the_store_stays_usable(store: SpanStore) -> None:
    with pytest.raises(StoreError, match="drift result schema"):
        store.write_drift_results(pa.table({"model_id": ["m"]}))
    with pytest.raises(StoreError, match=r"unknown drift_type \['weather'\]"):
        store.write_drift_results(table(result(drift_type="weather")))
    with pytest.raises(StoreError, match="score"):
        store.write_drift_results(
            pa.Table.from_pylist(
                [result(score=0.1) | {"score": None}],
                schema=DRIFT_RESULT_SCHEMA.set(5, pa.field("score", pa.float64())),
            )
        )
    assert store.write_drift_results(DRIFT_RESULT_SCHEMA.empty_table()) == 0
    assert store.write_drift_results(table(result())) == 1


def test_bad_drift_queries_are_query_errors(store: SpanStore) -> None:
    with pytest.raises(QueryError, match="unknown drift_type 'weather'"):
        store.drift_results("fraud", drift_type="weather")
    with pytest.raises(QueryError, match="limit must not be negative"):
        store.drift_results("fraud", limit=-1)
    with pytest.raises(QueryError, match="unknown drift_type"):
        store.drift_reference("fraud", "weather")


def test_the_latest_reference_is_active_and_history_is_kept(store: SpanStore) -> None:
    assert store.drift_reference("fraud", "feature") is None
    first = store.put_drift_reference("fraud", "feature", b"\x00state-1", n_samples=10)
    second = store.put_drift_reference(
        "fraud", "feature", b"\x00state-2", n_samples=20, dataset_version="2026-01"
    )
    store.put_drift_reference("fraud", "prediction", b"\x00pred", n_samples=5)
    assert second["created_at_ns"] > first["created_at_ns"]
    active = store.drift_reference("fraud", "feature")
    assert active == (b"\x00state-2", second)
    assert second == {
        "model_id": "fraud",
        "drift_type": "feature",
        "created_at_ns": second["created_at_ns"],
        "dataset_version": "2026-01",
        "n_samples": 20,
    }
    prediction = store.drift_reference("fraud", "prediction")
    assert prediction is not None and prediction[0] == b"\x00pred"
    assert store.drift_reference("other", "feature") is None


def test_models_with_drift_come_from_results_and_references(store: SpanStore) -> None:
    assert store.models_with_drift() == []
    store.write_drift_results(table(result("b"), result("a")))
    store.put_drift_reference("c", "embedding", b"s", n_samples=1)
    store.put_drift_reference("a", "feature", b"s", n_samples=1)
    assert store.models_with_drift() == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("", "feature", b"s"), {"n_samples": 1}, "needs a model id"),
        (("m", "weather", b"s"), {"n_samples": 1}, "unknown drift_type 'weather'"),
        (("m", "feature", b""), {"n_samples": 1}, "state"),
        (("m", "feature", b"s"), {"n_samples": -1}, "n_samples must be a count"),
    ],
)
def test_bad_references_are_store_errors(
    store: SpanStore, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(StoreError, match=message):
        store.put_drift_reference(*args, **kwargs)
    assert store.models_with_drift() == []


def test_a_closed_store_refuses_drift_calls(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.write_drift_results(table(result()))
    with pytest.raises(StoreError, match="closed"):
        store.put_drift_reference("m", "feature", b"s", n_samples=1)
    with pytest.raises(StoreError, match="closed"):
        store.drift_reference("m", "feature")
    with pytest.raises(StoreError, match="closed"):
        store.drift_results("m")
