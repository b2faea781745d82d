"""The scaled mode end to end: receiver → Kafka (tansu) → worker → store, stage by stage.

    python bench/scaled.py                 # 50k spans, DuckDB and ClickHouse (chdb)
    python bench/scaled.py --spans 200000

Stages, each timed on its own over the same realistic LLM/RAG spans (one
process; the broker is the real tansu binary on this machine):

1. receiver decode: OTLP protobuf requests → rows (what every receiver does anyway);
2. encode: rows → one OTLP message per trace (the Kafka payload);
3. produce: KafkaQueue.put, acknowledged (acks=all, lz4, idempotent): broker included;
4. worker: consume, decode, processors (cost), store write, commit; its throughput
   with the broker excluded is spans / (decode + process + write + commit) time, on
   one core (the worker is one thread);
5. storage: bytes per span in ClickHouse (compressed parts) and DuckDB (file after
   checkpoint) against the raw OTLP protobuf.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "scaled"))

from _kafka_broker import Broker
from _kafka_otlp_requests import kvs
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from pyflare_server.pipeline._kafka_otlp import encode_spans
from pyflare_server.pipeline.kafka import KafkaQueue
from pyflare_server.receiver.decode import Encoding, Signal, decode
from pyflare_server.settings import ServerSettings
from pyflare_server.worker import Worker

WORDS = [
    "the",
    "model",
    "answered",
    "a",
    "question",
    "about",
    "the",
    "refund",
    "policy",
    "for",
    "orders",
    "shipped",
    "late",
]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "text-embedding-3-small"]


def requests(n_spans: int, per_request: int = 500) -> list[bytes]:
    rng = random.Random(7)
    now = time.time_ns()
    out = []
    made = 0
    while made < n_spans:
        request = ExportTraceServiceRequest()
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(
            kvs(
                {
                    "service.name": rng.choice(["rag-bot", "agent", "classifier"]),
                    "service.version": "1.4.2",
                    "deployment.environment.name": "prod",
                    "host.name": f"pod-{rng.randrange(20)}",
                    "telemetry.sdk.name": "opentelemetry",
                }
            )
        )
        ss = rs.scope_spans.add()
        ss.scope.name = "opentelemetry.instrumentation.openai"
        while len(ss.spans) < per_request and made < n_spans:
            trace_id = os.urandom(16)
            root = os.urandom(8)
            for index in range(5):
                span = ss.spans.add()
                span.trace_id = trace_id
                span.span_id = root if index == 0 else os.urandom(8)
                if index:
                    span.parent_span_id = root
                span.name = "chat" if index else "handle_request"
                span.kind = 3 if index else 2  # type: ignore[assignment]
                start = now - rng.randrange(3_600_000_000_000)
                span.start_time_unix_nano = start
                span.end_time_unix_nano = start + rng.randrange(5_000_000, 2_000_000_000)
                prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(20, 60)))
                attributes: dict[str, Any] = {
                    "http.route": "/v1/chat",
                    "user.id": f"u{rng.randrange(500)}",
                }
                if index:
                    attributes.update(
                        {
                            "gen_ai.system": "openai",
                            "gen_ai.operation.name": "chat",
                            "gen_ai.request.model": rng.choice(MODELS),
                            "gen_ai.usage.input_tokens": rng.randrange(50, 4000),
                            "gen_ai.usage.output_tokens": rng.randrange(5, 800),
                            "gen_ai.request.temperature": 0.2,
                            "pyflare.input.preview": prompt,
                            "pyflare.output.preview": prompt[::-1][:200],
                        }
                    )
                span.attributes.extend(kvs(attributes))
                made += 1
        out.append(request.SerializeToString())
    return out


def measure(label: str, spans: int, seconds: float) -> dict[str, Any]:
    rate = spans / seconds if seconds else float("inf")
    print(f"  {label:<48} {rate:>12,.0f} spans/s  ({seconds:.2f} s)")
    return {"stage": label, "spans_per_s": rate, "seconds": seconds}


def run(store_url: str, label: str, bodies: list[bytes], n_spans: int, broker: Broker) -> None:
    print(f"\n== store: {label} ({store_url})")
    settings = ServerSettings.model_validate(
        {
            "collector": {
                "kafka": {
                    "brokers": [broker.bootstrap],
                    "topics": {
                        "partitions": 4,
                        "replication_factor": 1,
                        "traces": f"bench.{label}.traces",
                    },
                    "consumer": {
                        "group_id": f"bench-{label}",
                        "session_timeout_ms": 6000,
                        "max_batch_spans": 5000,
                        "max_wait_ms": 100,
                    },
                }
            },
            "server": {"store": store_url},
        }
    )
    started = time.perf_counter()
    batches = [decode(Signal.TRACES, body, Encoding.PROTOBUF).batch for body in bodies]
    measure("1. receiver decode (OTLP → rows)", n_spans, time.perf_counter() - started)
    started = time.perf_counter()
    for batch in batches:
        encode_spans(batch)
    measure("2. encode (rows → one message per trace)", n_spans, time.perf_counter() - started)

    async def produce() -> float:
        queue = KafkaQueue(settings.collector.kafka)
        await queue.start()
        begun = time.perf_counter()
        # Receivers serve many requests at once: 8 puts in flight.
        for group in range(0, len(batches), 8):
            await asyncio.gather(*(queue.put(Signal.TRACES, b) for b in batches[group : group + 8]))
        took = time.perf_counter() - begun
        await queue.close()
        return took

    measure("3. produce, acknowledged (KafkaQueue.put)", n_spans, asyncio.run(produce()))
    from pyflare_server.worker_command import _open_store

    store = _open_store(store_url)
    worker = Worker(settings, store)
    timings = {"consume": 0.0, "decode": 0.0, "process+write": 0.0, "commit": 0.0}
    original_read, original_store, original_commit = (
        worker.reader.read_many,
        worker._store_signal,
        worker._commit,
    )

    def timed(name: str, function: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            begun = time.perf_counter()
            try:
                return function(*args)
            finally:
                timings[name] += time.perf_counter() - begun

        return wrapper

    worker.reader.read_many = timed("decode", original_read)  # type: ignore[method-assign]
    worker._store_signal = timed("process+write", original_store)  # type: ignore[method-assign]
    worker._commit = timed("commit", original_commit)  # type: ignore[method-assign]
    stored = 0
    deadline = time.monotonic() + 600
    first = None
    while stored < n_spans and time.monotonic() < deadline:
        begun = time.perf_counter()
        messages = worker._consumer.consume(worker.max_messages, worker.max_wait_s)
        if messages and first is None:
            first = time.perf_counter()
        if first is not None:
            timings["consume"] += time.perf_counter() - begun
        usable = [m for m in messages if m.error() is None]
        if usable:
            worker._handle(usable)
            worker._commit()
        stored = int(worker.telemetry.value("pyflare_worker_stored_total", signal="traces"))
    wall = time.perf_counter() - (first or time.perf_counter())
    worker.close()
    measure("4. worker wall (consume → store → commit)", stored, wall)
    busy = timings["decode"] + timings["process+write"] + timings["commit"]
    measure("   worker, broker excluded (one core)", stored, busy)
    for name, seconds in timings.items():
        print(f"     {name:<16} {seconds:6.2f} s  ({seconds / max(wall, 1e-9):.0%} of wall)")
    raw = sum(len(body) for body in bodies)
    if store_url.startswith("chdb"):
        # system.parts is refused by the guarded sql(): ask the engine directly.
        size = int(
            store._client.command(
                "SELECT sum(data_compressed_bytes) FROM system.parts "
                f"WHERE database = '{store.database}' AND table = 'traces' AND active"
            )
            or 0
        )
    else:
        store.sql("SELECT 1")
        store.close()
        store = None
        size = Path(store_url.removeprefix("duckdb://")).stat().st_size
    if store is not None:
        store.close()
    print(
        f"  5. bytes per span: raw OTLP {raw / n_spans:,.0f}, {label} {size / stored:,.0f} "
        f"→ {raw / max(size, 1):.1f}:1 vs raw OTLP"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--only", choices=["duckdb", "clickhouse"])
    args = parser.parse_args()
    n_spans = args.spans - args.spans % 5
    bodies = requests(n_spans)
    work = Path(tempfile.mkdtemp(prefix="pyflare-bench-scaled-"))
    broker = Broker(work).start()
    try:
        if args.only != "clickhouse":
            run(f"duckdb:///{work / 'bench.duckdb'}", "duckdb", bodies, n_spans, broker)
        if args.only != "duckdb":
            run(f"chdb:///{work / 'chdb'}", "clickhouse", bodies, n_spans, broker)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
