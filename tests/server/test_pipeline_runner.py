"""Pipeline.submit: sampler, enricher and queue, with the counts a receiver reports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from span_rows import log_rows, metric_rows, span_rows

from pyflare.errors import StoreError
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.pipeline import (
    COLLECTOR_HOST,
    MemoryQueue,
    Pipeline,
    PipelineError,
    QueueFull,
    SubmitResult,
)
from pyflare_server.receiver.decode import Decoded, Signal
from pyflare_server.settings import ServerSettings
from pyflare_server.telemetry import ServerTelemetry


def settings(**env: str) -> ServerSettings:
    variables = {"PYFLARE_COLLECTOR__ENRICHER__HOST": "collector-test"}
    variables.update({f"PYFLARE_COLLECTOR__{k.upper()}": v for k, v in env.items()})
    return ServerSettings.load(env=variables)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBSpanStore]:
    store = DuckDBSpanStore(tmp_path / "server.duckdb")
    yield store
    store.close()


@pytest.fixture
async def pipeline(store: DuckDBSpanStore) -> AsyncIterator[Pipeline]:
    pipeline = Pipeline(settings(), store)
    await pipeline.start()
    yield pipeline
    await pipeline.close()


def decoded(batch: pa.Table, signal: Signal = Signal.TRACES, rejected: int = 0) -> Decoded:
    message = f"{rejected} spans had an invalid trace id" if rejected else ""
    return Decoded(signal=signal, batch=batch, rejected=rejected, error_message=message)


def count(store: DuckDBSpanStore, table: str = "traces") -> int:
    return int(store.sql(f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py())


def metric(pipeline: Pipeline, name: str, signal: str = "traces") -> float:
    return pipeline.telemetry.value(f"pyflare_{name}_total", signal=signal)


async def test_submit_returns_once_stored_with_the_counts(
    pipeline: Pipeline, store: DuckDBSpanStore
) -> None:
    result = await pipeline.submit(decoded(span_rows(100), rejected=3))
    assert result == SubmitResult(
        signal=Signal.TRACES,
        received=103,
        accepted=100,
        rejected=3,
        sampled_out=0,
        error_message="3 spans had an invalid trace id",
    )
    assert count(store) == 100
    assert (metric(pipeline, "received"), metric(pipeline, "accepted")) == (103, 100)
    assert metric(pipeline, "rejected") == 3


async def test_stored_rows_are_enriched(store: DuckDBSpanStore) -> None:
    pipeline = Pipeline(settings(ENRICHER__ENVIRONMENT="staging"), store)
    await pipeline.submit(decoded(span_rows(5)))
    await pipeline.close()
    rows = store.sql(
        f"SELECT DISTINCT resource['{COLLECTOR_HOST}'] AS host,"
        " resource['deployment.environment.name'] AS env FROM traces"
    ).to_pylist()
    assert rows == [{"host": "collector-test", "env": "staging"}]


async def test_sampled_out_spans_are_counted_not_stored(store: DuckDBSpanStore) -> None:
    pipeline = Pipeline(settings(SAMPLING__DEFAULT_RATE="0"), store)
    high = span_rows(10, attributes={"priority": "high"})
    results = [
        await pipeline.submit(decoded(span_rows(40))),
        await pipeline.submit(decoded(high)),
    ]
    await pipeline.close()
    assert [(r.received, r.accepted, r.sampled_out) for r in results] == [(40, 0, 40), (10, 10, 0)]
    assert count(store) == 10
    assert metric(pipeline, "sampled_out") == 40
    assert metric(pipeline, "accepted") == 10
    assert pipeline.telemetry.value("pyflare_batch_rows_count", signal="traces") == 1


async def test_metrics_and_logs_are_not_sampled(store: DuckDBSpanStore) -> None:
    pipeline = Pipeline(settings(SAMPLING__DEFAULT_RATE="0"), store)
    results = await asyncio.gather(
        pipeline.submit(decoded(metric_rows(4), Signal.METRICS)),
        pipeline.submit(decoded(log_rows(3), Signal.LOGS)),
    )
    await pipeline.close()
    assert [(r.signal, r.accepted) for r in results] == [(Signal.METRICS, 4), (Signal.LOGS, 3)]
    assert (count(store, "metrics"), count(store, "logs")) == (4, 3)
    host = store.sql(f"SELECT DISTINCT resource['{COLLECTOR_HOST}'] AS h FROM logs").to_pylist()
    assert host == [{"h": "collector-test"}]
    assert metric(pipeline, "accepted", "metrics") == 4


async def test_a_request_with_nothing_valid(pipeline: Pipeline, store: DuckDBSpanStore) -> None:
    result = await pipeline.submit(decoded(span_rows(0), rejected=5))
    assert (result.received, result.accepted, result.rejected) == (5, 0, 5)
    assert count(store) == 0


async def test_queue_full_is_raised_and_counted(store: DuckDBSpanStore) -> None:
    class FullQueue(MemoryQueue):
        async def put(self, signal: Any, batch: pa.Table) -> None:
            raise QueueFull("full", retry_after_s=2.5)

    telemetry = ServerTelemetry()
    pipeline = Pipeline(settings(), store, queue=FullQueue(store), telemetry=telemetry)
    with pytest.raises(QueueFull) as info:
        await pipeline.submit(decoded(span_rows(10)))
    assert info.value.retry_after_s == 2.5
    assert telemetry.value("pyflare_queue_full_total", signal="traces") == 1
    assert telemetry.value("pyflare_received_total", signal="traces") == 10
    assert telemetry.value("pyflare_accepted_total", signal="traces") == 0


async def test_back_pressure_from_the_default_queue(store: DuckDBSpanStore) -> None:
    pipeline = Pipeline(
        settings(BATCHER__MAX_QUEUE_SIZE="150", BATCHER__MAX_BATCH_SIZE="100"), store
    )
    results = await asyncio.gather(
        *(pipeline.submit(decoded(span_rows(100))) for _ in range(3)), return_exceptions=True
    )
    await pipeline.close()
    # The first is taken; the second would make 200 rows waiting.
    assert [type(r).__name__ for r in results] == ["SubmitResult", "QueueFull", "QueueFull"]
    assert count(store) == 100
    assert metric(pipeline, "queue_full") == 2


async def test_a_store_failure_is_a_pipeline_error(store: DuckDBSpanStore) -> None:
    pipeline = Pipeline(settings(), store)
    store.close()
    with pytest.raises(
        PipelineError, match=r"storing 10 spans failed: the store .* is closed"
    ) as info:
        await pipeline.submit(decoded(span_rows(10)))
    assert isinstance(info.value.__cause__, StoreError)
    await pipeline.close()
    assert pipeline.telemetry.value("pyflare_store_errors_total") == 1


async def test_processors_reach_the_default_queue(store: DuckDBSpanStore) -> None:
    seen: list[int] = []

    class Count:
        name = "count"

        def process(self, signal: Signal, batch: pa.Table) -> pa.Table:
            seen.append(batch.num_rows)
            return batch

    pipeline = Pipeline(settings(), store, processors=[Count()])
    await pipeline.submit(decoded(span_rows(7)))
    await pipeline.close()
    assert seen == [7]


async def test_close_drains_and_depth(store: DuckDBSpanStore) -> None:
    pipeline = Pipeline(settings(), store)
    await pipeline.start()
    tasks = [asyncio.create_task(pipeline.submit(decoded(span_rows(50)))) for _ in range(6)]
    await asyncio.sleep(0)
    assert pipeline.depth() == 300
    await pipeline.close()
    assert all(t.done() and t.exception() is None for t in tasks)
    assert count(store) == 300
    assert pipeline.depth() == 0
    with pytest.raises(PipelineError, match="shutting down"):
        await pipeline.submit(decoded(span_rows(1)))
