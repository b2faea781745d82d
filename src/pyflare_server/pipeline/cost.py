"""Cost on the span stream: every batch priced before it is stored.

The same :class:`pyflare.cost.processor.CostProcessor` as the SDK's local
mode: spans gain ``cost_micros`` (and estimated tokens, flagged), and one
cost row per model call goes to the store's ``costs`` table
(``store.write_costs``, which replaces a span's row, so a redelivered batch
writes nothing twice). It runs before drift, in the store writer's thread.

Cost is a by-product: when pricing a batch or writing its cost rows fails,
the spans go on to the store as they came, the failure is logged and counted
(:attr:`CostStage.counters`), and ``pyflare costs recompute`` can price them
later.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from pyflare.cost.processor import CostProcessor
    from pyflare.store.base import SpanStore
    from pyflare_server.receiver.decode import Signal
    from pyflare_server.settings import CostSettings

__all__ = ["CostCounters", "CostStage", "cost_stage"]

logger = logging.getLogger(__name__)


@dataclass
class CostCounters:
    """What the stage has done since it started."""

    batches: int = 0
    """Span batches priced."""
    cost_rows: int = 0
    """Cost rows written to the store."""
    errors: int = 0
    """Batches that could not be priced or whose cost rows could not be written (each logged)."""


class CostStage:
    """The pipeline's cost processor (see the module doc)."""

    name = "cost"

    def __init__(self, store: SpanStore, processor: CostProcessor | None = None) -> None:
        if processor is None:
            from pyflare.cost.processor import CostProcessor

            processor = CostProcessor()
        self.store = store
        self.processor = processor
        self.counters = CostCounters()
        self._lock = threading.Lock()

    def process(self, signal: Signal, batch: pa.Table) -> pa.Table:
        """The batch with its costs; its cost rows are written to the store."""
        if signal != "traces" or batch.num_rows == 0:
            return batch
        with self._lock:
            try:
                output = self.processor.apply(batch)
            except Exception:
                self.counters.errors += 1
                logger.exception("cost: a batch of %d spans could not be priced", batch.num_rows)
                return batch
            self.counters.batches += 1
            if output.costs.num_rows:
                try:
                    self.counters.cost_rows += self.store.write_costs(output.costs)
                except Exception:
                    self.counters.errors += 1
                    logger.exception("cost: writing %d cost rows failed", output.costs.num_rows)
            return output.spans

    def __repr__(self) -> str:
        return f"CostStage({asdict(self.counters)})"


def cost_stage(settings: CostSettings, store: SpanStore) -> CostStage | None:
    """The stage ``collector.cost`` describes, or None when pricing is off."""
    if not settings.enabled:
        return None
    from pyflare.cost.processor import CostProcessor

    processor = CostProcessor(
        price_book=settings.price_book(), attribution=settings.attribution_rules()
    )
    return CostStage(store, processor)
