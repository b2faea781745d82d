"""Local mode's exporter: finished spans into the DuckDB span store.

The store is opened on first use. If it can't be (the file is locked by
another process, the directory is not writable) the exporter logs why once,
reports failure so the batch processor counts the dropped spans, and tries
again a few seconds later: the host program keeps running either way.

Each batch goes through :class:`pyflare.cost.processor.CostProcessor` before
it is stored: spans gain their cost (and estimated tokens), and the cost rows
go to the store's ``costs`` table after the spans. Costs are a by-product: when
pricing or the cost write fails, the spans are stored all the same (without
cost) and the failure is logged once; ``pyflare costs recompute`` can price
them later.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pyflare._runtime import after_fork_in_child, warn_once
from pyflare.errors import PyFlareError, StoreError

if TYPE_CHECKING:
    import pyarrow as pa

    from pyflare.cost.processor import CostProcessor
    from pyflare.exporters.masking import SpanMasker
    from pyflare.store.base import SpanStore

__all__ = ["DuckDBSpanExporter"]

logger = logging.getLogger(__name__)

RETRY_OPEN_SECONDS = 5.0

# Stores a forked child inherited from its parent. The child must neither write
# to nor close them (closing can checkpoint into the parent's file), and letting
# them be garbage-collected would close them: they are kept here, untouched.
_INHERITED: list[object] = []


class DuckDBSpanExporter(SpanExporter):
    """Writes spans as batched Arrow inserts into a :class:`SpanStore`."""

    def __init__(
        self,
        open_store: Callable[[], SpanStore],
        *,
        span_masker: SpanMasker | None = None,
        costs: bool | CostProcessor = True,
    ) -> None:
        """``span_masker`` masks PII while spans are converted (no span copies).

        ``costs``: price spans with a default :class:`CostProcessor` (True, made
        on first use), this one, or not at all (False).
        """
        self._open_store = open_store
        self._span_masker = span_masker
        self._costs: bool | CostProcessor = costs
        self._store: SpanStore | None = None
        self._lock = threading.Lock()
        self._next_open = 0.0
        self._closed = False
        self._forked_from: int | None = None
        self.last_error: PyFlareError | None = None
        after_fork_in_child(self, "_after_fork")

    def _after_fork(self) -> None:
        # The parent still owns the file (and its lock): the child never touches it.
        self._lock = threading.Lock()
        if self._store is not None:
            _INHERITED.append(self._store)
            self._store = None
        self._forked_from = os.getppid()

    def open(self) -> SpanStore | None:
        """Open the store now if it isn't open (and a retry is due)."""
        with self._lock:
            if self._store is not None or self._closed:
                return self._store
            if self._forked_from is not None:
                self.last_error = StoreError(
                    f"this process was forked from PID {self._forked_from}, which owns the "
                    "local store file; a forked process can't write to it. Call "
                    "pyflare.init(store='duckdb:///worker-N.duckdb') or "
                    "pyflare.init(endpoint=...) in the child."
                )
                warn_once("store-forked", "PyFlare cannot store spans: %s", self.last_error)
                return None
            if time.monotonic() < self._next_open:
                return None
            try:
                self._store = self._open_store()
            except Exception as exc:  # whatever happens, the host keeps running
                error = exc if isinstance(exc, PyFlareError) else StoreError(repr(exc))
                self.last_error = error
                self._next_open = time.monotonic() + RETRY_OPEN_SECONDS
                warn_once(
                    f"store-open-{type(error).__name__}",
                    "PyFlare cannot store spans: %s (spans are dropped and counted, see "
                    "pyflare.stats(); PyFlare tries again every %g s)",
                    error,
                    RETRY_OPEN_SECONDS,
                )
                return None
            if self.last_error is not None:
                logger.info("PyFlare's store is open again; spans are being stored")
            self.last_error = None
            return self._store

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from pyflare.records import from_readable_spans

        store = self.open()
        if store is None:
            return SpanExportResult.FAILURE
        try:
            masker = self._span_masker
            if masker is None:
                batch = from_readable_spans(spans)
            else:
                # Attributes are masked in the copy conversion makes anyway; only
                # spans with events (rare) are copied to mask those.
                spans = [masker.mask_span(s, events_only=True) if s.events else s for s in spans]
                batch = from_readable_spans(spans, mask_attributes=masker.mask_in_place)
            batch, costs = self._priced(batch)
            store.write(batch)
        except Exception as exc:
            error = exc if isinstance(exc, PyFlareError) else StoreError(repr(exc))
            self.last_error = error
            warn_once(
                f"store-write-{type(error).__name__}",
                "PyFlare could not store spans: %s (failed spans are dropped and counted, see "
                "pyflare.stats(); further failures are not logged)",
                error,
            )
            return SpanExportResult.FAILURE
        self.last_error = None
        if costs is not None and costs.num_rows:
            try:
                store.write_costs(costs)
            except Exception as exc:  # the spans are stored; their cost rows can be recomputed
                warn_once(
                    f"store-costs-{type(exc).__name__}",
                    "PyFlare stored spans but not their cost rows: %r (further failures are not "
                    "logged; `pyflare costs recompute` rebuilds them)",
                    exc,
                )
        return SpanExportResult.SUCCESS

    def _cost_processor(self) -> CostProcessor | None:
        if self._costs is False:
            return None
        if self._costs is True:
            from pyflare.cost.processor import CostProcessor

            self._costs = CostProcessor()
        return self._costs

    def _priced(self, batch: pa.Table) -> tuple[pa.Table, pa.Table | None]:
        """(spans with their costs, cost rows), or the spans unchanged when pricing fails."""
        try:
            processor = self._cost_processor()
            if processor is None:
                return batch, None
            output = processor.apply(batch)
        except Exception as exc:
            warn_once(
                f"cost-{type(exc).__name__}",
                "PyFlare could not price spans: %r (they are stored without cost; further "
                "failures are not logged)",
                exc,
            )
            return batch, None
        return output.spans, output.costs

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception as exc:
                logger.warning("PyFlare could not close its store: %r", exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
