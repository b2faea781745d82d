"""A bounded, counting batch span processor.

Finished spans go into a bounded queue; a background thread exports them in
batches. When the queue is full new spans are dropped and counted, never
blocking the host. Failures are logged once per kind, not per span.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass

from opentelemetry.context import (
    _SUPPRESS_INSTRUMENTATION_KEY,
    Context,
    attach,
    detach,
    set_value,
)
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pyflare._runtime import after_fork_in_child, warn_once

__all__ = ["BatchExportProcessor", "ExportStats"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportStats:
    """Counters of one export pipeline since it started."""

    exported: int
    dropped_queue_full: int
    dropped_export_failed: int
    queued: int

    @property
    def dropped(self) -> int:
        return self.dropped_queue_full + self.dropped_export_failed


class BatchExportProcessor(SpanProcessor):
    """Exports sampled spans in batches from a background thread."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 65536,
        batch_size: int = 8192,
        interval_ms: int = 500,
        export_timeout_ms: int = 30000,
        name: str = "pyflare-export",
        log_failures: bool = True,
    ) -> None:
        """Start the export thread.

        ``log_failures=False`` is for exporters that log their own failures
        (PyFlare's store exporter, OTLP): a FAILURE result is then counted
        without a second warning. An exporter raising is always logged (once).
        """
        self.exporter = exporter
        self.log_failures = log_failures
        self.max_queue_size = max_queue_size
        self.batch_size = min(batch_size, max_queue_size)
        self.interval = interval_ms / 1000
        self.export_timeout_ms = export_timeout_ms
        self._name = name
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._stopping = False
        self._shut_down = False
        self._exported = 0
        self._dropped_full = 0
        self._dropped_failed = 0
        self._export_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._start_worker()
        after_fork_in_child(self, "_after_fork")

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._worker.start()

    def _after_fork(self) -> None:
        # The child has the parent's queue but no worker thread, and locks that a
        # parent thread may have held at the fork: start afresh. The queued spans
        # are the parent's to export.
        self._queue.clear()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._export_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._in_flight = 0
        if not self._shut_down:
            self._start_worker()

    # -- SpanProcessor -------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if self._shut_down:
            return
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        queue = self._queue
        if len(queue) >= self.max_queue_size:
            with self._count_lock:
                self._dropped_full += 1
            warn_once(
                f"queue-full-{id(self)}",
                "PyFlare's export queue is full (%d spans): new spans are being dropped and "
                "counted (see pyflare.stats()). Raise PYFLARE_MAX_QUEUE_SIZE or reduce the "
                "span rate (PYFLARE_SAMPLE_RATE).",
                self.max_queue_size,
            )
            return
        queue.append(span)
        if len(queue) >= self.batch_size:
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything queued so far; False if that took longer than the timeout."""
        if self._shut_down:
            return True
        deadline = time.monotonic() + timeout_millis / 1000
        if not self._worker.is_alive():
            self._export_all(deadline)
            return not self._queue
        with self._idle:
            self._wake.set()
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.05))
                self._wake.set()
        return True

    def shutdown(self) -> None:
        """Export what is queued (within the export timeout), then shut the exporter down."""
        if self._shut_down:
            return
        self._stopping = True
        self._wake.set()
        timeout = self.export_timeout_ms / 1000
        self._worker.join(timeout=timeout + 1)
        # Whatever the worker did not get to because it died. If it is still alive,
        # an export is stuck holding the export lock: give up rather than hang the
        # host's exit a second time.
        stuck = self._worker.is_alive()
        self._export_all(time.monotonic() + (0.0 if stuck else timeout))
        self._shut_down = True
        left = len(self._queue)
        if left:
            self._queue.clear()
            with self._count_lock:
                self._dropped_failed += left
            logger.warning(
                "PyFlare shut down with %d spans it could not export in time; they were dropped",
                left,
            )
        try:
            self.exporter.shutdown()
        except Exception as exc:
            logger.warning("PyFlare exporter shutdown failed: %r", exc)

    # -- worker --------------------------------------------------------------

    def stats(self) -> ExportStats:
        return ExportStats(
            exported=self._exported,
            dropped_queue_full=self._dropped_full,
            dropped_export_failed=self._dropped_failed,
            queued=len(self._queue),
        )

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._export_all(None)
        self._export_all(time.monotonic() + self.export_timeout_ms / 1000)

    def _take(self) -> list[ReadableSpan]:
        queue = self._queue
        count = min(len(queue), self.batch_size)
        popleft = queue.popleft
        return [popleft() for _ in range(count)]

    def _export_all(self, deadline: float | None) -> None:
        """Export until the queue is empty or the deadline (monotonic seconds) passed."""
        if deadline is None:
            acquired = self._export_lock.acquire()
        else:
            acquired = self._export_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        if not acquired:
            return  # another thread is exporting (possibly stuck)
        try:
            while self._queue:
                if deadline is not None and time.monotonic() > deadline:
                    return
                with self._idle:
                    batch = self._take()
                    self._in_flight = len(batch)
                try:
                    self._export(batch)
                finally:
                    with self._idle:
                        self._in_flight = 0
                        self._idle.notify_all()
        finally:
            self._export_lock.release()
        with self._idle:
            self._idle.notify_all()

    def _export(self, batch: list[ReadableSpan]) -> None:
        # Exporting must not create spans of its own (an HTTP client, a DB driver).
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        raised = False
        try:
            result = self.exporter.export(batch)
        except Exception as exc:
            raised = True
            result = SpanExportResult.FAILURE
            warn_once(
                f"export-raised-{id(self)}-{type(exc).__name__}",
                "PyFlare's exporter raised %r; the spans of that batch were dropped and counted "
                "(see pyflare.stats(); further failures are not logged)",
                exc,
            )
        finally:
            detach(token)
        with self._count_lock:
            if result is SpanExportResult.SUCCESS:
                self._exported += len(batch)
                return
            self._dropped_failed += len(batch)
        if not raised:
            warn_once(
                f"export-failed-{id(self)}",
                "PyFlare could not export %d spans (more failures are counted, not logged; see "
                "pyflare.stats())",
                len(batch),
                level=logging.WARNING if self.log_failures else logging.DEBUG,
            )
