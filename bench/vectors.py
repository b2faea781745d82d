"""Vector store benchmark: upserts/s, search and batch search latency, reference sampling.

Both VectorStore implementations on the same data: DuckDB (in the span store's
file, ``FLOAT[dim]`` + ``array_cosine_similarity``) and Qdrant local mode in
memory (qdrant-client without a server: an exact numpy scan, the tests' Qdrant; a
Qdrant server answers from its HNSW index instead). Points carry the spec's
inference payload over 8 models; searches are filtered by model about half the
time. Reported: upserts/s, p50/p95 ms per search, per 16-query batch search,
per 500-point reference sample.

    python bench/vectors.py [--points 20000] [--dim 384] [--searches 200]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from pyflare.store.base import VectorStore
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare.store.vectors import (
    INFERENCE_EMBEDDINGS,
    REFERENCE_EMBEDDINGS,
    VectorFilter,
    reference_points,
)
from pyflare_server.storage.qdrant import QdrantVectorStore
from pyflare_server.storage.urls import parse_vectors_url

T0 = 1_780_000_000_000_000_000


@contextlib.contextmanager
def duckdb_store(directory: Path, dim: int) -> Iterator[VectorStore]:
    with DuckDBSpanStore(directory / "pyflare.duckdb") as spans:
        yield spans.vector_store(dim)


@contextlib.contextmanager
def qdrant_store(directory: Path, dim: int) -> Iterator[VectorStore]:
    # In memory: local mode's on-disk storage writes every point to SQLite one by
    # one (~100 points/s), which measures that, not Qdrant's search.
    url = parse_vectors_url("qdrant+local:///:memory:")
    with QdrantVectorStore.open(url, dim=dim) as store:
        yield store


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered) * 1e3:7.2f} ms  p95 {p95 * 1e3:7.2f} ms"


def _timed(call: Callable[[], object], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def run(store: VectorStore, points: int, dim: int, searches: int) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(points, dim)).astype(np.float32)
    ids = [f"{i:016x}:span" for i in range(points)]
    payloads = [
        {
            "trace_id": f"{i:032x}",
            "model_id": f"model-{i % 8}",
            "timestamp": T0 + i * 1_000_000,
            "embedding_type": "input",
            "input_hash": f"{i:x}",
        }
        for i in range(points)
    ]
    start = time.perf_counter()
    for at in range(0, points, 1000):
        store.upsert(
            INFERENCE_EMBEDDINGS,
            ids[at : at + 1000],
            vectors[at : at + 1000],
            payloads[at : at + 1000],
        )
    elapsed = time.perf_counter() - start
    print(f"  upsert        {points / elapsed:10,.0f} points/s ({points:,} in batches of 1000)")

    queries = rng.normal(size=(searches, dim))
    model = VectorFilter({"model_id": "model-3"})
    turn = iter(range(10**9))
    print(
        "  search        "
        + _ms(
            _timed(
                lambda: store.search(
                    INFERENCE_EMBEDDINGS, queries[next(turn) % searches], limit=10
                ),
                searches,
            )
        )
    )
    print(
        "  search+filter "
        + _ms(
            _timed(
                lambda: store.search(
                    INFERENCE_EMBEDDINGS, queries[next(turn) % searches], limit=10, where=model
                ),
                searches,
            )
        )
    )
    print(
        "  batch of 16   "
        + _ms(
            _timed(
                lambda: store.search_batch(INFERENCE_EMBEDDINGS, queries[:16], limit=10),
                max(5, searches // 16),
            )
        )
    )

    reference = rng.normal(size=(5000, dim))
    ref_ids, ref_payloads = reference_points(
        "model-3", reference, dim=dim, dataset_version="v1", created_at_ns=T0
    )
    store.upsert(REFERENCE_EMBEDDINGS, ref_ids, reference, ref_payloads)
    print(
        "  sample 500    "
        + _ms(_timed(lambda: store.sample(REFERENCE_EMBEDDINGS, 500, where=model), 20))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--searches", type=int, default=200)
    args = parser.parse_args(argv)
    for name, opener in (("DuckDB", duckdb_store), ("Qdrant local mode", qdrant_store)):
        print(f"{name}: {args.points:,} points x {args.dim} dims")
        with tempfile.TemporaryDirectory() as directory, opener(Path(directory), args.dim) as store:
            run(store, args.points, args.dim, args.searches)
    return 0


if __name__ == "__main__":
    sys.exit(main())
