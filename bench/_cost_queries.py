"""Cost queries over a DuckDB store of ``n_rows`` cost rows: p95 latency per query.

``run(n_rows)`` builds the rows (30 days of calls, 40 models over 6 providers,
20,000 users, 50 features, 8 teams, 3 environments, 3% unpriced), writes them
with ``store.write_costs`` in time order, as an exporter does, then times each
query ``repeats`` times. ``bench/cost.py`` runs it with 10M rows; the target is
p95 <= 200 ms for the summary and the breakdown.

    python -m bench._cost_queries 1000000
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from pyflare.records import COST_SCHEMA
from pyflare.store.duckdb import DuckDBSpanStore

__all__ = ["run"]

DAY_NS = 86_400 * 1_000_000_000
T0 = 1_764_547_200_000_000_000  # 2025-12-01T00:00:00Z
DAYS = 30
CHUNK = 1_000_000
TARGET_MS = 200.0


def _strings(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}{i}" for i in range(n)], dtype=object)


def _chunk(rng: np.random.Generator, start: int, n: int, total: int) -> pa.Table:
    """Rows ``start .. start + n`` of ``total``, their timestamps rising through the 30 days."""
    positions = np.arange(start, start + n, dtype=np.int64)
    timestamps = T0 + positions * (DAYS * DAY_NS // total) + rng.integers(0, 1000, n)
    models = rng.integers(0, 40, n)
    input_tokens = rng.integers(10, 4000, n)
    output_tokens = rng.integers(1, 1500, n)
    priced = rng.random(n) >= 0.03
    input_cost = input_tokens * (models + 1) * 3 // 10
    output_cost = output_tokens * (models + 1) * 12 // 10
    total_cost = input_cost + output_cost
    mask = ~priced
    return pa.table(
        {
            "trace_id": pa.array(np.char.mod("%032x", positions).astype(object)),
            "span_id": pa.array(np.char.mod("%016x", positions).astype(object)),
            "timestamp": pa.array(timestamps, pa.timestamp("ns")),
            "service_name": pa.array(_strings("svc-", 4)[rng.integers(0, 4, n)]),
            "model_id": pa.array(_strings("model-", 40)[models]),
            "model_version": pa.nulls(n, pa.string()),
            "provider": pa.array(_strings("provider-", 6)[models % 6]),
            "price_model": pa.array(_strings("model-", 40)[models]),
            "price_source": pa.array(np.where(priced, "genai-prices", None)),
            "input_tokens": pa.array(input_tokens),
            "output_tokens": pa.array(output_tokens),
            "total_tokens": pa.array(input_tokens + output_tokens),
            "cached_input_tokens": pa.nulls(n, pa.int64()),
            "reasoning_tokens": pa.nulls(n, pa.int64()),
            "tokens_estimated": pa.array(rng.random(n) < 0.05),
            "input_cost_micros": pa.array(input_cost, mask=mask),
            "output_cost_micros": pa.array(output_cost, mask=mask),
            "total_cost_micros": pa.array(total_cost, mask=mask),
            "user_id": pa.array(_strings("user-", 20_000)[rng.integers(0, 20_000, n)]),
            "session_id": pa.nulls(n, pa.string()),
            "feature_id": pa.array(_strings("feature-", 50)[rng.integers(0, 50, n)]),
            "team": pa.array(_strings("team-", 8)[rng.integers(0, 8, n)]),
            "environment": pa.array(np.array(["prod", "staging", "dev"], object)[models % 3]),
            "dimensions": pa.array([[]] * n, COST_SCHEMA.field("dimensions").type),
        }
    ).cast(COST_SCHEMA)


def _p95_ms(query: Callable[[], object], repeats: int) -> float:
    query()  # warm: the first read loads the columns
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        query()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.quantiles(times, n=20, method="inclusive")[-1]


def run(n_rows: int, *, repeats: int = 20) -> dict[str, float]:
    """p95 milliseconds per cost query over ``n_rows`` cost rows (and the write rate)."""
    rng = np.random.default_rng(6)
    with tempfile.TemporaryDirectory() as directory:
        store = DuckDBSpanStore(Path(directory) / "costs.duckdb")
        try:
            started = time.perf_counter()
            for start in range(0, n_rows, CHUNK):
                store.write_costs(_chunk(rng, start, min(CHUNK, n_rows - start), n_rows))
            write_s = time.perf_counter() - started
            end = T0 + DAYS * DAY_NS
            week = (end - 7 * DAY_NS, end)
            queries: dict[str, Callable[[], object]] = {
                "summary_by_model_30d": lambda: store.cost_summary(T0, end, ["model_id"]),
                "summary_by_day_30d": lambda: store.cost_summary(T0, end, ["day"]),
                "summary_by_user_7d": lambda: store.cost_summary(*week, ["user_id"]),
                "summary_team_filter_by_hour_7d": lambda: store.cost_summary(
                    *week, ["hour"], {"team": "team-3"}
                ),
                "breakdown_user_top10_30d": lambda: store.cost_breakdown("user", T0, end, 10),
                "breakdown_feature_top10_30d": lambda: store.cost_breakdown("feature", T0, end, 10),
                "daily_costs_model_30d": lambda: store.daily_costs(T0, end, model_id="model-7"),
            }
            results = {f"{name}_p95_ms": _p95_ms(q, repeats) for name, q in queries.items()}
            results["write_costs_rows_per_s"] = n_rows / write_s
        finally:
            store.close()
    return results


def main(argv: list[str]) -> int:
    n_rows = int(argv[0]) if argv else 1_000_000
    results = run(n_rows)
    for name, value in results.items():
        verdict = ""
        if name.endswith("_p95_ms"):
            verdict = f"  ({value / TARGET_MS:.2f}x the {TARGET_MS:g} ms target)"
        sys.stdout.write(f"{name:40s} {value:12,.1f}{verdict}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
