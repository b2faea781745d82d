"""Query API benchmark: GET /api/v1/traces with filters and trace detail over many spans.

Builds a DuckDB store of ``--spans`` spans (default 10M; 5 spans per trace: a
root and four children, 20 services, 12 models, 3% errors, one user attribute
per root, spread over 7 days), then calls the real app through httpx's ASGI
transport: listings with the issue's filters (service, model, status, time
window, min duration, attribute, text) and trace details of random traces.
Targets (issue #5): listing p95 <= 100 ms, detail p95 <= 20 ms. The ClickHouse
store (``pyflare_server.storage.clickhouse`` on chdb) is measured beside it
when it is importable and ``--clickhouse`` is given.

    python bench/query.py [--spans 10000000] [--rounds 40] [--clickhouse] [--shuffled]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

from pyflare.records import SPAN_SCHEMA
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server import api

S = 1_000_000_000
T0 = 1_767_225_600 * S
DAYS = 7
SPANS_PER_TRACE = 5
CHUNK_TRACES = 100_000
SERVICES = [f"svc-{i:02d}" for i in range(20)]
MODELS = [f"model-{i:02d}" for i in range(12)]


def batch(
    first_trace: int,
    traces: int,
    rng: np.random.Generator,
    window: tuple[int, int] = (0, DAYS * 86400 * S),
) -> pa.Table:
    """``traces`` traces starting at random in ``window`` (ns after T0), in start order."""
    n = traces * SPANS_PER_TRACE
    trace_no = np.repeat(np.arange(first_trace, first_trace + traces), SPANS_PER_TRACE)
    position = np.tile(np.arange(SPANS_PER_TRACE), traces)
    start = T0 + np.sort(rng.integers(window[0], window[1], traces, dtype=np.int64))
    start = np.repeat(start, SPANS_PER_TRACE) + position * 1_000_000
    duration = rng.integers(1_000_000, 3 * S, n, dtype=np.int64)
    duration[position == 0] = rng.integers(100_000_000, 10 * S, traces, dtype=np.int64)
    trace_ids = [f"{t:032x}" for t in trace_no.tolist()]
    span_ids = [
        f"{t:012x}{p:04x}" for t, p in zip(trace_no.tolist(), position.tolist(), strict=True)
    ]
    parents = [
        None if p == 0 else f"{t:012x}0000"
        for t, p in zip(trace_no.tolist(), position.tolist(), strict=True)
    ]
    service = np.repeat(rng.integers(0, len(SERVICES), traces), SPANS_PER_TRACE)
    model = rng.integers(0, len(MODELS), n)
    llm = position == 2
    errors = rng.random(n) < 0.03
    users = rng.integers(0, 5000, n)
    columns: dict[str, Any] = {
        "trace_id": trace_ids,
        "span_id": span_ids,
        "parent_span_id": parents,
        "start_time": pa.array(start, pa.timestamp("ns")),
        "end_time": pa.array(start + duration, pa.timestamp("ns")),
        "duration_ns": duration,
        "service_name": [SERVICES[i] for i in service.tolist()],
        "operation_name": ["chat" if x else "step" for x in llm.tolist()],
        "span_kind": ["client" if x else "internal" for x in llm.tolist()],
        "status_code": ["error" if e else "unset" for e in errors.tolist()],
        "status_message": [None] * n,
        "model_id": [
            MODELS[m] if x else None for m, x in zip(model.tolist(), llm.tolist(), strict=True)
        ],
        "model_version": [None] * n,
        "inference_type": ["llm" if x else None for x in llm.tolist()],
        "input_preview": [
            f"question {t % 9973} about refunds" if p == 0 else None
            for t, p in zip(trace_no.tolist(), position.tolist(), strict=True)
        ],
        "output_preview": [None] * n,
        "input_hash": [None] * n,
        "input_tokens": np.where(llm, 120, 0),
        "output_tokens": np.where(llm, 30, 0),
        "total_tokens": np.where(llm, 150, 0),
        "cost_micros": np.where(llm, 45, 0),
        "attributes": [
            [("user.id", f"u-{u}")] if p == 0 else []
            for u, p in zip(users.tolist(), position.tolist(), strict=True)
        ],
        "resource": [[("service.name", SERVICES[s])] for s in service.tolist()],
        "events": [[] for _ in range(n)],
        "_ingested_at": pa.array(np.full(n, T0 // 1000), pa.timestamp("us")),
    }
    return pa.table(
        {
            f.name: pa.array(columns[f.name], f.type)
            if not isinstance(columns[f.name], pa.Array)
            else columns[f.name].cast(f.type)
            for f in SPAN_SCHEMA
        }
    )


def fill(store: Any, spans: int, *, shuffled: bool = False) -> float:
    """Write ``spans`` spans. As a live server receives them, each write holds the
    next stretch of the 7 days; ``shuffled`` spreads every write over all 7 days
    instead (a bulk import of old data), which leaves DuckDB no row groups to skip."""
    rng = np.random.default_rng(7)
    traces = spans // SPANS_PER_TRACE
    whole = DAYS * 86400 * S
    chunks = max(1, -(-traces // CHUNK_TRACES))
    began = time.perf_counter()
    for index, first in enumerate(range(0, traces, CHUNK_TRACES)):
        window = (
            (0, whole) if shuffled else (whole * index // chunks, whole * (index + 1) // chunks)
        )
        store.write(batch(first, min(CHUNK_TRACES, traces - first), rng, window))
        print(
            f"\r  {min(first + CHUNK_TRACES, traces) * SPANS_PER_TRACE:,} spans",
            end="",
            file=sys.stderr,
        )
    print(file=sys.stderr)
    return time.perf_counter() - began


LISTINGS = [
    {},
    {"service": "svc-03"},
    {"model_id": "model-05", "limit": "50"},
    {"status": "error", "start_time": "2026-01-02T00:00:00Z", "end_time": "2026-01-03T00:00:00Z"},
    {"service": "svc-07", "min_duration_ms": "5000"},
    {"attribute": "user.id=u-42"},
    {"text": "question 17 ", "start_time": "2026-01-05T00:00:00Z"},
    {"start_time": "2026-01-06T00:00:00Z", "end_time": "2026-01-06T01:00:00Z", "offset": "100"},
]


async def measure(store: Any, traces: int, rounds: int) -> dict[str, list[float]]:
    app = __import__("starlette.applications", fromlist=["Starlette"]).Starlette(
        routes=api.routes(store)
    )
    rng = random.Random(3)
    timings: dict[str, list[float]] = {"list": [], "detail": []}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(rounds):
            for params in LISTINGS:
                began = time.perf_counter()
                response = await client.get("/api/v1/traces", params=params)
                timings["list"].append((time.perf_counter() - began) * 1000)
                assert response.status_code == 200, response.text
            trace = f"{rng.randrange(traces):032x}"
            began = time.perf_counter()
            response = await client.get(f"/api/v1/traces/{trace}")
            timings["detail"].append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.text
    return timings


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def report(name: str, timings: dict[str, list[float]]) -> None:
    for kind, target in (("list", 100), ("detail", 20)):
        values = timings[kind]
        print(
            f"{name:10} {kind:6} n={len(values):4} p50={statistics.median(values):8.1f} ms "
            f"p95={p95(values):8.1f} ms  target {target} ms  ratio {p95(values) / target:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--clickhouse", action="store_true")
    parser.add_argument(
        "--shuffled",
        action="store_true",
        help="spread every write over all 7 days (a bulk import) instead of arrival order",
    )
    args = parser.parse_args()
    traces = args.spans // SPANS_PER_TRACE
    with tempfile.TemporaryDirectory() as directory:
        with DuckDBSpanStore(Path(directory) / "bench.duckdb") as store:
            seconds = fill(store, args.spans, shuffled=args.shuffled)
            print(f"duckdb: {args.spans:,} spans written in {seconds:.1f} s")
            report("duckdb", asyncio.run(measure(store, traces, args.rounds)))
        if args.clickhouse:
            from pyflare_server.storage._clickhouse_schema import Retention
            from pyflare_server.storage.factory import open_server_store

            # The bench's spans are dated January 2026: no TTL, or merges would drop them.
            ch = open_server_store(
                f"chdb:///{directory}/chdb", retention=Retention(None, None, None, None)
            )
            try:
                seconds = fill(ch, args.spans, shuffled=args.shuffled)
                print(f"clickhouse (chdb): {args.spans:,} spans written in {seconds:.1f} s")
                report("clickhouse", asyncio.run(measure(ch, traces, args.rounds)))
            finally:
                ch.close()


if __name__ == "__main__":
    main()
