"""The in-process queue: group commit straight into the store.

``put`` hands its batch to one writer task and waits. The writer takes every
batch waiting (up to ``max_batch_size`` rows), concatenates them per signal,
runs the processors and writes each signal once, in a thread of its own so the
event loop keeps serving, then wakes every ``put`` of the group. Fifty requests
arriving while a write runs share the next write: the store sees a few large
inserts however many clients there are, and each request still returns only
once its rows are committed.

The writer never waits for a group to fill: an idle writer writes at once
(latency), a busy one gathers what arrives during its write (throughput). A
store write has a fixed cost (about 7 ms on a DuckDB file) that a fixed wait
would only add to, so this queue does not use ``timeout_ms`` (how long a batch
may wait for company): a batch waits only for the write ahead of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from pyflare.errors import InvalidArgumentError
from pyflare_server.pipeline.processors import Processor, run_processors
from pyflare_server.pipeline.queue import PipelineError, QueueFull
from pyflare_server.settings import BatcherSettings
from pyflare_server.telemetry import SIGNALS, ServerTelemetry

if TYPE_CHECKING:
    from pyflare.store.base import SpanStore
    from pyflare_server.receiver.decode import Signal

__all__ = ["MemoryQueue"]

logger = logging.getLogger(__name__)

# What each signal's rows are called in messages, and the store method that writes them.
_ITEMS = {"traces": "spans", "metrics": "metric points", "logs": "log records"}
_WRITERS = {"traces": "write", "metrics": "write_metrics", "logs": "write_logs"}


@dataclass(slots=True)
class _Item:
    signal: Signal
    batch: pa.Table
    future: asyncio.Future[None]


class MemoryQueue:
    """:class:`~pyflare_server.pipeline.queue.SpanQueue` with group commit into a store.

    ``put`` raises :class:`QueueFull` when the rows waiting (queued or being
    written) plus the new ones would pass ``max_queue_size``; a batch larger
    than that on its own is still taken when nothing waits, so it can't starve.
    """

    def __init__(
        self,
        store: SpanStore,
        *,
        batcher: BatcherSettings | None = None,
        processors: Sequence[Processor] = (),
        telemetry: ServerTelemetry | None = None,
        on_stored: Callable[[Signal, pa.Table], None] | None = None,
    ) -> None:
        """``on_stored(signal, rows)`` runs in the writer thread after each write succeeds
        (the live stream's hub); it must not block."""
        self.store = store
        self.batcher = batcher if batcher is not None else BatcherSettings()
        self.processors = tuple(processors)
        self.telemetry = telemetry if telemetry is not None else ServerTelemetry()
        self.on_stored = on_stored
        self._pending: deque[_Item] = deque()
        self._queued_rows = 0
        self._writing_rows = 0
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        # One thread: writes go in order, and never wait behind other work in the
        # event loop's default pool (the query API reads the store there).
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pyflare-store-writer")

    # -- the SpanQueue protocol ----------------------------------------------

    async def put(self, signal: Signal, batch: pa.Table) -> None:
        if signal not in _WRITERS:
            raise InvalidArgumentError(f"unknown signal {signal!r}; expected one of {SIGNALS}")
        if self._closing:
            raise PipelineError("the pipeline is shutting down and takes no more data")
        rows = batch.num_rows
        if rows == 0:
            return
        depth = self.depth()
        limit = self.batcher.max_queue_size
        if depth and depth + rows > limit:
            raise QueueFull(
                f"the queue holds {depth} rows waiting for the store; {rows} more would pass "
                f"max_queue_size ({limit}); retry shortly",
                retry_after_s=1.0,
            )
        self._ensure_writer()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(signal, batch, future))
        self._queued_rows += rows
        self._update_depth()
        self._wakeup.set()
        # If the caller goes away the rows are still written: they were taken.
        await future

    def depth(self) -> int:
        return self._queued_rows + self._writing_rows

    async def start(self) -> None:
        self._ensure_writer()

    async def close(self) -> None:
        """Stop taking batches, write everything taken, release the writer thread."""
        self._closing = True
        if self._closed:
            return
        self._wakeup.set()
        if self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
        self._closed = True
        self._executor.shutdown(wait=True)

    # -- the writer ----------------------------------------------------------

    def _ensure_writer(self) -> None:
        # A writer cancelled from outside (the loop shutting down) is replaced.
        if (self._writer is None or self._writer.done()) and not self._closing:
            self._writer = asyncio.get_running_loop().create_task(
                self._run(), name="pyflare-store-writer"
            )

    def _update_depth(self) -> None:
        self.telemetry.queue_depth.set(self.depth())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            group = self._take()
            try:
                outcomes = await loop.run_in_executor(self._executor, self._store, group)
            except BaseException as exc:  # the writer itself broke: fail the group, go on
                if isinstance(exc, asyncio.CancelledError):
                    self._fail(group, exc)
                    raise
                logger.exception("the store writer failed")
                outcomes = [exc] * len(group)
            self._resolve(group, outcomes)

    def _take(self) -> list[_Item]:
        group: list[_Item] = []
        rows = 0
        limit = self.batcher.max_batch_size
        while self._pending and (not group or rows + self._pending[0].batch.num_rows <= limit):
            item = self._pending.popleft()
            group.append(item)
            rows += item.batch.num_rows
        self._queued_rows -= rows
        self._writing_rows += rows
        return group

    def _resolve(self, group: list[_Item], outcomes: Sequence[BaseException | None]) -> None:
        for item, outcome in zip(group, outcomes, strict=True):
            self._writing_rows -= item.batch.num_rows
            if item.future.done():  # its put() was cancelled
                continue
            if outcome is None:
                item.future.set_result(None)
            else:
                item.future.set_exception(_failure(item, outcome))
        self._update_depth()

    def _fail(self, group: list[_Item], exc: BaseException) -> None:
        self._resolve(group, [exc] * len(group))
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(_failure(item, exc))
        self._pending.clear()
        self._queued_rows = 0
        self._update_depth()

    # -- in the writer thread ------------------------------------------------

    def _store(self, group: list[_Item]) -> list[BaseException | None]:
        """Write a group, one write per signal; the outcome of each item (None: stored)."""
        outcomes: list[BaseException | None] = [None] * len(group)
        by_signal: dict[Signal, list[int]] = {}
        for index, item in enumerate(group):
            by_signal.setdefault(item.signal, []).append(index)
        for signal, indexes in by_signal.items():
            try:
                self._write(signal, [group[i].batch for i in indexes])
            except Exception as exc:
                if len(indexes) == 1:
                    outcomes[indexes[0]] = exc
                    continue
                # One bad batch must not fail the requests it shared a write with:
                # write each on its own (the group's write stored nothing).
                logger.warning("a group write of %s failed (%s); writing each alone", signal, exc)
                for index in indexes:
                    try:
                        self._write(signal, [group[index].batch])
                    except Exception as item_exc:
                        outcomes[index] = item_exc
        return outcomes

    def _write(self, signal: Signal, batches: list[pa.Table]) -> None:
        table = batches[0] if len(batches) == 1 else pa.concat_tables(batches)
        table = run_processors(self.processors, signal, table)
        write: Callable[[pa.Table], int] = getattr(self.store, _WRITERS[signal])
        started = time.perf_counter()
        try:
            write(table)
        except Exception:
            self.telemetry.store_errors.inc()
            raise
        self.telemetry.write_seconds.labels(signal).observe(time.perf_counter() - started)
        self.telemetry.batch_rows.labels(signal).observe(table.num_rows)
        if self.on_stored is not None:
            try:
                self.on_stored(signal, table)
            except Exception:  # the rows are stored: a listener's failure is not the write's
                logger.exception("on_stored failed after a successful write")


def _failure(item: _Item, cause: BaseException) -> PipelineError:
    what = _ITEMS.get(item.signal, "rows")
    reason = str(cause) or type(cause).__name__
    error = PipelineError(f"storing {item.batch.num_rows} {what} failed: {reason}")
    error.__cause__ = cause
    return error
