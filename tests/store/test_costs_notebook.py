"""pyflare.costs() and pyflare.analysis.recompute_costs() over a store file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import pyflare
from pyflare.analysis import recompute_costs
from pyflare.errors import InvalidArgumentError, StoreError
from pyflare.records import COST_SCHEMA
from pyflare.store.duckdb import DuckDBSpanStore

HOUR = 3600 * 1_000_000_000


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("notebook") / "n.duckdb"
    now = time.time_ns()
    rows = [
        {"span": 1, "at": now - HOUR, "model_id": "gpt-4o", "user_id": "alice", "cost": 1_250_000},
        {"span": 2, "at": now - HOUR, "model_id": "gpt-4o", "user_id": "bob", "cost": 3},
        {"span": 3, "at": now - HOUR, "model_id": "mystery", "user_id": "bob", "cost": None},
        {"span": 4, "at": now - 3 * 24 * HOUR, "model_id": "gpt-4o", "user_id": "eve", "cost": 7},
    ]
    table = pa.Table.from_pylist(
        [
            {
                "trace_id": f"{r['span']:032x}",
                "span_id": f"{r['span']:016x}",
                "timestamp": r["at"],
                "service_name": "svc",
                "model_id": r["model_id"],
                "user_id": r["user_id"],
                "total_cost_micros": r["cost"],
                "tokens_estimated": False,
                "dimensions": [],
            }
            for r in rows
        ],
        schema=COST_SCHEMA,
    )
    with DuckDBSpanStore(path) as store:
        store.write_costs(table)
    return f"duckdb:///{path}"


def test_costs_by_model_with_exact_micros_and_display_dollars(url: str) -> None:
    frame = pyflare.costs(store=url)
    assert list(frame["model_id"]) == ["gpt-4o", "mystery"]
    assert frame["cost_micros"].dtype == pd.Int64Dtype()
    assert frame["cost_usd"].dtype == pd.Float64Dtype()
    gpt, mystery = frame.to_dict("records")
    assert (gpt["cost_micros"], gpt["cost_usd"], gpt["requests"]) == (1_250_003, 1.250003, 2)
    assert pd.isna(mystery["cost_micros"]) and pd.isna(mystery["cost_usd"])
    assert mystery["unpriced_requests"] == 1
    columns = list(frame.columns)
    assert columns.index("cost_usd") == columns.index("cost_micros") + 1


def test_costs_groups_time_ranges_and_filters(url: str) -> None:
    week = pyflare.costs(["user_id"], since="7d", store=url)
    assert list(week["user_id"]) == ["alice", "eve", "bob"]
    total = pyflare.costs(None, since="7d", store=url)
    assert total.to_dict("records")[0]["cost_micros"] == 1_250_010
    bob = pyflare.costs("model_id", filters={"user_id": "bob"}, store=url)
    assert list(bob["requests"]) == [1, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"group_by": "colour"}, "cannot group costs by 'colour'"),
        ({"group_by": ["model_id", 3]}, "group_by must be a column name or a list"),
        ({"since": "last week"}, "since='last week'"),
        ({"filters": ["team"]}, "filters must be a mapping"),
        ({"filters": {"hour": "1"}}, "cannot filter costs on 'hour'"),
        ({"store": 42}, "store must be a string"),
    ],
)
def test_bad_costs_arguments(url: str, kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("store", url)
    with pytest.raises(InvalidArgumentError, match=message):
        pyflare.costs(**kwargs)


def test_recompute_needs_a_start_and_a_store(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="since is required"):
        recompute_costs(None, store=str(tmp_path / "x.duckdb"))
    with pytest.raises(StoreError, match="there is no PyFlare store"):
        recompute_costs("1d", store=str(tmp_path / "missing.duckdb"))
