"""MemoryQueue: a put returns once stored, group commit, back-pressure, drain, failures.

Everything writes into a real DuckDB file. ``ControlledStore`` wraps that store
to hold, slow down or fail writes on demand, which is how a test sees what
happens while a write is in progress.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from span_rows import log_rows, metric_rows, span_rows

from pyflare.errors import InvalidArgumentError, StoreError
from pyflare.records import SPAN_SCHEMA
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.pipeline import MemoryQueue, PipelineError, QueueFull, SpanQueue
from pyflare_server.receiver.decode import Signal
from pyflare_server.settings import BatcherSettings
from pyflare_server.telemetry import ServerTelemetry

TRACES = Signal.TRACES


class ControlledStore:
    """The real store; each write can be held (``gate``), slowed or made to fail."""

    def __init__(self, store: DuckDBSpanStore) -> None:
        self.store = store
        self.gate = threading.Event()
        self.gate.set()
        self.delay_s = 0.0
        self.fail_with: Exception | None = None
        self.writes: list[tuple[str, int, str]] = []  # (method, rows, thread name)
        self.started = threading.Event()

    def _before(self, method: str, batch: pa.Table) -> None:
        self.writes.append((method, batch.num_rows, threading.current_thread().name))
        self.started.set()
        self.gate.wait(10)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_with is not None:
            raise self.fail_with

    def write(self, batch: pa.Table) -> int:
        self._before("write", batch)
        return self.store.write(batch)

    def write_metrics(self, batch: pa.Table) -> int:
        self._before("write_metrics", batch)
        return self.store.write_metrics(batch)

    def write_logs(self, batch: pa.Table) -> int:
        self._before("write_logs", batch)
        return self.store.write_logs(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def duckdb_store(tmp_path: Path) -> Iterator[DuckDBSpanStore]:
    store = DuckDBSpanStore(tmp_path / "server.duckdb")
    yield store
    store.close()


@pytest.fixture
def store(duckdb_store: DuckDBSpanStore) -> ControlledStore:
    return ControlledStore(duckdb_store)


def make_queue(store: Any, **batcher: int) -> MemoryQueue:
    return MemoryQueue(store, batcher=BatcherSettings(**batcher), telemetry=ServerTelemetry())


@pytest.fixture
async def queue(store: ControlledStore) -> AsyncIterator[MemoryQueue]:
    queue = make_queue(store)
    await queue.start()
    yield queue
    store.gate.set()
    await queue.close()


def count(
    store: Any, table: str = "traces", where: str = "", params: list[Any] | None = None
) -> int:
    result = store.sql(f"SELECT count(*) AS n FROM {table} {where}", params)
    return int(result.column("n")[0].as_py())


def stored_spans(store: Any, batch: pa.Table) -> int:
    ids = pc.unique(batch.column("trace_id")).to_pylist()
    marks = ", ".join("?" for _ in ids)
    return count(store, where=f"WHERE trace_id IN ({marks})", params=ids)


async def wait_until(predicate: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


def writes(queue: MemoryQueue, signal: Signal = TRACES) -> int:
    return int(queue.telemetry.value("pyflare_batch_rows_count", signal=signal))


def test_memory_queue_is_a_span_queue(store: ControlledStore) -> None:
    assert isinstance(make_queue(store), SpanQueue)


def test_the_public_names() -> None:
    import pyflare_server.pipeline

    assert sorted(pyflare_server.pipeline.__all__) == [
        "COLLECTOR_HOST",
        "Enricher",
        "MemoryQueue",
        "Pipeline",
        "PipelineError",
        "Processor",
        "QueueFull",
        "Sampler",
        "SpanQueue",
        "SubmitResult",
        "trace_kept",
    ]


# -- a put returns once its rows are stored -----------------------------------------


async def test_put_returns_once_the_rows_are_stored(
    queue: MemoryQueue, store: ControlledStore
) -> None:
    batch = span_rows(100)
    await queue.put(TRACES, batch)
    assert stored_spans(store, batch) == 100
    assert queue.depth() == 0


async def test_every_put_of_a_group_returns_after_its_rows_are_stored(
    queue: MemoryQueue, store: ControlledStore
) -> None:
    batches = [span_rows(100) for _ in range(50)]

    async def put_and_check(batch: pa.Table) -> int:
        await queue.put(TRACES, batch)
        return stored_spans(store, batch)

    assert await asyncio.gather(*(put_and_check(b) for b in batches)) == [100] * 50
    assert count(store) == 5000


async def test_concurrent_puts_share_writes(store: ControlledStore) -> None:
    queue = make_queue(store, max_batch_size=1000)
    await queue.start()
    await asyncio.gather(*(queue.put(TRACES, span_rows(100)) for _ in range(50)))
    await queue.close()
    # 50 requests of 100 spans: five writes of 1000 rows, not fifty of 100.
    assert [rows for _, rows, _ in store.writes] == [1000] * 5
    assert writes(queue) == 5
    assert count(store) == 5000


async def test_a_group_takes_at_most_max_batch_size_rows(store: ControlledStore) -> None:
    queue = make_queue(store, max_batch_size=250)
    sizes = [100, 100, 100, 30, 120, 300, 10]
    await asyncio.gather(*(queue.put(TRACES, span_rows(n)) for n in sizes))
    await queue.close()
    # In order; a batch larger than max_batch_size goes alone, never split.
    assert [rows for _, rows, _ in store.writes] == [200, 250, 300, 10]
    assert count(store) == sum(sizes)


async def test_an_idle_writer_does_not_wait_for_a_group_to_fill(store: ControlledStore) -> None:
    queue = make_queue(store, timeout_ms=5000)
    started = time.perf_counter()
    await queue.put(TRACES, span_rows(10))
    assert time.perf_counter() - started < 2.0  # far from timeout_ms
    await queue.close()


async def test_writes_run_in_a_thread_while_the_loop_keeps_serving(
    queue: MemoryQueue, store: ControlledStore
) -> None:
    store.delay_s = 0.3  # a slow disk
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await queue.put(TRACES, span_rows(10))
    finally:
        task.cancel()
    assert ticks >= 10
    ((_, _, thread),) = store.writes
    assert thread.startswith("pyflare-store-writer")
    assert thread != threading.current_thread().name


async def test_each_signal_goes_to_its_table(queue: MemoryQueue, store: ControlledStore) -> None:
    await asyncio.gather(
        queue.put(TRACES, span_rows(5)),
        queue.put(Signal.METRICS, metric_rows(3)),
        queue.put(Signal.LOGS, log_rows(4)),
        queue.put(Signal.LOGS, log_rows(2)),
    )
    assert sorted((m, n) for m, n, _ in store.writes) == [
        ("write", 5),
        ("write_logs", 6),
        ("write_metrics", 3),
    ]
    assert (count(store), count(store, "metrics"), count(store, "logs")) == (5, 3, 6)
    assert writes(queue, Signal.LOGS) == 1


async def test_a_put_whose_caller_went_away_is_still_stored(
    queue: MemoryQueue, store: ControlledStore
) -> None:
    store.gate.clear()
    batch = span_rows(20)
    task = asyncio.create_task(queue.put(TRACES, batch))
    await wait_until(store.started.is_set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    store.gate.set()
    await wait_until(lambda: queue.depth() == 0)
    assert stored_spans(store, batch) == 20


async def test_an_empty_batch_is_not_written(queue: MemoryQueue, store: ControlledStore) -> None:
    await queue.put(TRACES, SPAN_SCHEMA.empty_table())
    assert store.writes == []


async def test_an_unknown_signal_is_refused(queue: MemoryQueue) -> None:
    with pytest.raises(InvalidArgumentError, match="unknown signal 'profiles'"):
        await queue.put("profiles", span_rows(1))  # type: ignore[arg-type]


# -- back-pressure ------------------------------------------------------------------


async def test_queue_full_when_rows_waiting_would_pass_max_queue_size(
    store: ControlledStore,
) -> None:
    queue = make_queue(store, max_queue_size=250, max_batch_size=100)
    store.gate.clear()
    first = asyncio.create_task(queue.put(TRACES, span_rows(100)))
    await wait_until(store.started.is_set)  # being written
    second = asyncio.create_task(queue.put(TRACES, span_rows(100)))  # waiting
    await wait_until(lambda: queue.depth() == 200)
    refused = span_rows(100)
    with pytest.raises(QueueFull, match=r"holds 200 rows.*max_queue_size \(250\)") as info:
        await queue.put(TRACES, refused)
    assert info.value.retry_after_s == 1.0
    assert queue.depth() == 200  # nothing of the refused batch was taken
    third = asyncio.create_task(queue.put(TRACES, span_rows(50)))  # still fits
    await wait_until(lambda: queue.depth() == 250)
    store.gate.set()
    await asyncio.gather(first, second, third)
    await queue.put(TRACES, refused)  # room again
    await queue.close()
    assert count(store) == 350
    assert queue.telemetry.value("pyflare_queue_depth_rows") == 0


async def test_a_batch_larger_than_the_queue_is_taken_when_nothing_waits(
    store: ControlledStore,
) -> None:
    queue = make_queue(store, max_queue_size=50)
    await queue.put(TRACES, span_rows(120))
    assert count(store) == 120
    store.started.clear()
    store.gate.clear()
    holder = asyncio.create_task(queue.put(TRACES, span_rows(1)))
    await wait_until(store.started.is_set)
    with pytest.raises(QueueFull):
        await queue.put(TRACES, span_rows(120))
    store.gate.set()
    await holder
    await queue.close()


# -- close drains -------------------------------------------------------------------


async def test_close_stores_everything_taken_then_refuses_more(store: ControlledStore) -> None:
    queue = make_queue(store, max_batch_size=100)
    store.gate.clear()
    puts = [asyncio.create_task(queue.put(TRACES, span_rows(100))) for _ in range(7)]
    await wait_until(store.started.is_set)
    closing = asyncio.create_task(queue.close())
    await asyncio.sleep(0.05)
    assert not closing.done()  # waits for the rows taken
    with pytest.raises(PipelineError, match="shutting down"):
        await queue.put(TRACES, span_rows(1))
    store.gate.set()
    await closing
    assert all(p.done() and p.exception() is None for p in puts)
    assert count(store) == 700
    assert queue.depth() == 0
    await queue.close()  # twice is fine


async def test_close_without_a_put(store: ControlledStore) -> None:
    queue = make_queue(store)
    await queue.close()
    with pytest.raises(PipelineError):
        await queue.put(TRACES, span_rows(1))


# -- failures -----------------------------------------------------------------------


async def test_a_store_failure_fails_its_puts_and_the_queue_goes_on(
    queue: MemoryQueue, store: ControlledStore
) -> None:
    store.fail_with = StoreError("disk full")
    results = await asyncio.gather(
        *(queue.put(TRACES, span_rows(100)) for _ in range(3)), return_exceptions=True
    )
    for result in results:
        assert isinstance(result, PipelineError)
        assert str(result) == "storing 100 spans failed: disk full"
        assert isinstance(result.__cause__, StoreError)
    assert count(store) == 0
    assert queue.depth() == 0
    assert queue.telemetry.value("pyflare_store_errors_total") >= 1
    store.fail_with = None
    batch = span_rows(100)
    await queue.put(TRACES, batch)
    assert stored_spans(store, batch) == 100


async def test_a_bad_batch_fails_alone_not_the_puts_it_shared_a_write_with(
    queue: MemoryQueue, store: ControlledStore
) -> None:
    good = [span_rows(10) for _ in range(4)]
    bad = span_rows(10).set_column(
        SPAN_SCHEMA.get_field_index("service_name"),
        SPAN_SCHEMA.field("service_name"),
        pa.array([None] * 10, pa.string()),
    )
    results = await asyncio.gather(
        *(queue.put(TRACES, b) for b in [good[0], good[1], bad, good[2], good[3]]),
        return_exceptions=True,
    )
    assert [r is None for r in results] == [True, True, False, True, True]
    failure = results[2]
    assert isinstance(failure, PipelineError)
    assert "nulls in columns that require a value: ['service_name']" in str(failure)
    assert all(stored_spans(store, b) == 10 for b in good)
    assert count(store) == 40


async def test_a_failing_processor_fails_the_puts_not_the_queue(store: ControlledStore) -> None:
    class Broken:
        name = "broken"
        calls = 0

        def process(self, signal: Signal, batch: pa.Table) -> pa.Table:
            Broken.calls += 1
            if Broken.calls == 1:
                raise RuntimeError("processor bug")
            return batch

    queue = MemoryQueue(store, processors=[Broken()])
    with pytest.raises(PipelineError, match="storing 5 spans failed: processor bug"):
        await queue.put(TRACES, span_rows(5))
    await queue.put(TRACES, span_rows(5))
    await queue.close()
    assert count(store) == 5


async def test_processors_run_on_the_whole_group_in_the_writer_thread(
    store: ControlledStore,
) -> None:
    seen: list[tuple[Signal, int, str]] = []

    class Upper:
        name = "upper"

        def process(self, signal: Signal, batch: pa.Table) -> pa.Table:
            seen.append((signal, batch.num_rows, threading.current_thread().name))
            index = batch.schema.get_field_index("operation_name")
            return batch.set_column(
                index, batch.schema.field(index), pc.utf8_upper(batch.column(index))
            )

    queue = MemoryQueue(store, processors=[Upper()])
    await asyncio.gather(*(queue.put(TRACES, span_rows(10)) for _ in range(3)))
    await queue.close()
    assert [(s, n) for s, n, _ in seen] == [(TRACES, 30)]
    assert seen[0][2].startswith("pyflare-store-writer")
    names = store.sql("SELECT DISTINCT operation_name FROM traces").column(0).to_pylist()
    assert names == ["OP"]


# -- telemetry ----------------------------------------------------------------------


async def test_write_metrics_are_recorded(queue: MemoryQueue) -> None:
    await asyncio.gather(*(queue.put(TRACES, span_rows(10)) for _ in range(3)))
    t = queue.telemetry
    assert t.value("pyflare_batch_rows_count", signal=TRACES) == 1
    assert t.value("pyflare_batch_rows_sum", signal=TRACES) == 30
    assert t.value("pyflare_write_seconds_count", signal=TRACES) == 1
    assert t.value("pyflare_write_seconds_sum", signal=TRACES) > 0


async def test_a_cancelled_writer_fails_its_puts_and_is_replaced(
    queue: MemoryQueue, store: ControlledStore
) -> None:
    store.gate.clear()
    taken = asyncio.create_task(queue.put(TRACES, span_rows(10)))
    await wait_until(store.started.is_set)
    waiting = asyncio.create_task(queue.put(TRACES, span_rows(10)))
    await asyncio.sleep(0)
    writer = queue._writer
    assert writer is not None
    writer.cancel()
    for task in (taken, waiting):
        with pytest.raises(PipelineError, match="storing 10 spans failed: CancelledError"):
            await task
    store.gate.set()
    batch = span_rows(5)
    await queue.put(TRACES, batch)
    assert stored_spans(store, batch) == 5
