"""Cost benchmark: the cost processor's spans/s, and the cost store queries.

Processor: a realistic 1M-span batch (60% model calls over 12 models from five
providers plus one unknown model, 40% chain/tool/retriever spans; GenAI and
OpenInference attribute styles; user/session/feature attribution), priced with
``CostProcessor.apply``. Target: >= 500k spans/s. Peer baseline: genai-prices'
own ``calc_price`` called per row (what a per-span pricer does), on a sample.

Store queries: ``bench/_cost_queries.run(10_000_000)`` when present (p95 ms per query;
target <= 200 ms).

    python bench/cost.py [--spans 1000000] [--query-rows 10000000]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import random
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from pyflare.cost.processor import CostProcessor
from pyflare.records import SPAN_SCHEMA

MODELS = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("o3-mini", "openai"),
    ("text-embedding-3-small", "openai"),
    ("claude-3-5-sonnet-20241022", "anthropic"),
    ("claude-3-5-haiku-20241022", "anthropic"),
    ("gemini-1.5-pro", "gcp.gemini"),
    ("gemini-2.0-flash", "gcp.gemini"),
    ("mistral-large-latest", "mistral_ai"),
    ("command-r-plus", "cohere"),
    ("deepseek-chat", "deepseek"),
    ("gpt-4o", "azure.ai.openai"),
    ("in-house-llm-v2", None),  # unknown: unpriced
]
T0 = 1_780_000_000_000_000_000


def build_batch(n: int, seed: int = 7) -> pa.Table:
    rng = random.Random(seed)
    keys: list[str] = []
    values: list[str] = []
    offsets = [0]
    model_col: list[str | None] = []
    inference: list[str | None] = []
    tin: list[int | None] = []
    tout: list[int | None] = []
    for i in range(n):
        attrs: dict[str, str]
        if rng.random() < 0.6:
            model, provider = MODELS[i % len(MODELS)]
            embedding = model.startswith("text-embedding")
            a, b = rng.randint(20, 4000), 0 if embedding else rng.randint(5, 800)
            attrs = {
                "gen_ai.operation.name": "embeddings" if embedding else "chat",
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": str(a),
                "user.id": f"user-{i % 500}",
                "session.id": f"s-{i % 5000}",
                "pyflare.feature_id": f"feature-{i % 7}",
            }
            if provider:
                attrs["gen_ai.provider.name"] = provider
            if not embedding:
                attrs["gen_ai.usage.output_tokens"] = str(b)
            if i % 5 == 0:
                attrs["gen_ai.usage.cache_read.input_tokens"] = str(a // 2)
            model_col.append(model)
            inference.append("embedding" if embedding else "llm")
            tin.append(a)
            tout.append(None if embedding else b)
        else:
            attrs = {"pyflare.span.kind": "chain", "code.function.name": f"step_{i % 13}"}
            model_col.append(None)
            inference.append(None)
            tin.append(None)
            tout.append(None)
        keys += attrs
        values += attrs.values()
        offsets.append(len(keys))
    starts = T0 + np.arange(n, dtype=np.int64) * 1_000_000
    columns = {
        "trace_id": pa.array([f"{i // 8:032x}" for i in range(n)]),
        "span_id": pa.array([f"{i:016x}" for i in range(n)]),
        "parent_span_id": pa.nulls(n, pa.string()),
        "start_time": pa.array(starts).cast(pa.timestamp("ns")),
        "end_time": pa.array(starts + 1000).cast(pa.timestamp("ns")),
        "duration_ns": pa.array(np.full(n, 1000, dtype=np.int64)),
        "service_name": pa.array(["svc"] * n),
        "operation_name": pa.array(["op"] * n),
        "span_kind": pa.array(["client"] * n),
        "status_code": pa.array(["ok"] * n),
        "status_message": pa.nulls(n, pa.string()),
        "model_id": pa.array(model_col, pa.string()),
        "model_version": pa.nulls(n, pa.string()),
        "inference_type": pa.array(inference, pa.string()),
        "input_preview": pa.nulls(n, pa.string()),
        "output_preview": pa.nulls(n, pa.string()),
        "input_hash": pa.nulls(n, pa.string()),
        "input_tokens": pa.array(tin, pa.int64()),
        "output_tokens": pa.array(tout, pa.int64()),
        "total_tokens": pa.nulls(n, pa.int64()),
        "cost_micros": pa.nulls(n, pa.int64()),
        "attributes": pa.MapArray.from_arrays(
            pa.array(offsets, pa.int32()), pa.array(keys), pa.array(values)
        ),
        "resource": pa.array(
            [[("deployment.environment.name", "prod")]] * n, SPAN_SCHEMA.field("resource").type
        ),
        "events": pa.array([[]] * n, SPAN_SCHEMA.field("events").type),
        "_ingested_at": pa.array(np.zeros(n, dtype=np.int64)).cast(pa.timestamp("us")),
    }
    return pa.Table.from_pydict(columns, schema=SPAN_SCHEMA)


def bench_processor(n: int) -> dict[str, float]:
    batch = build_batch(n)
    processor = CostProcessor()
    processor.apply(build_batch(1000))  # resolve prices, load modules
    times = []
    for _ in range(3):
        start = time.perf_counter()
        out = processor.apply(batch)
        times.append(time.perf_counter() - start)
    best = min(times)
    rate = n / best
    # Peer: genai-prices per row (what a per-span pricer does), on a sample.
    import genai_prices

    sample = out.costs.slice(0, 20_000).to_pylist()
    start = time.perf_counter()
    for row in sample:
        with contextlib.suppress(LookupError):  # unknown model
            genai_prices.calc_price(
                genai_prices.Usage(
                    input_tokens=row["input_tokens"] or 0,
                    output_tokens=row["output_tokens"] or 0,
                    cache_read_tokens=row["cached_input_tokens"] or 0,
                ),
                row["model_id"],
                provider_id=row["provider"],
            )
    peer_row_s = (time.perf_counter() - start) / len(sample)
    model_share = out.costs.num_rows / n
    peer_rate = 1 / (peer_row_s * model_share)  # spans/s: only model calls need pricing
    return {
        "spans": n,
        "cost_rows": out.costs.num_rows,
        "seconds": best,
        "spans_per_s": rate,
        "ratio_to_500k_target": rate / 500_000,
        "peer_calc_price_spans_per_s": peer_rate,
        "speedup_vs_peer": rate / peer_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--query-rows", type=int, default=10_000_000)
    args = parser.parse_args()
    result = bench_processor(args.spans)
    print("cost processor")
    for key, value in result.items():
        print(f"  {key}: {value:,.2f}" if isinstance(value, float) else f"  {key}: {value:,}")
    queries = Path(__file__).with_name("_cost_queries.py")
    if queries.exists():
        spec = importlib.util.spec_from_file_location("_cost_queries", queries)
        if spec is None or spec.loader is None:
            raise SystemExit(f"can't load {queries}")
        module = importlib.util.module_from_spec(spec)
        sys.modules["_cost_queries"] = module
        spec.loader.exec_module(module)
        print(f"cost store queries over {args.query_rows:,} rows (p95 ms, target <= 200)")
        for name, p95 in module.run(args.query_rows).items():
            print(f"  {name}: {p95:.1f}")


if __name__ == "__main__":
    main()
