"""The pipeline a receiver submits to: sampler, enricher, then the queue.

:meth:`Pipeline.submit` takes what the decoder made of one request and
returns once its rows are durable, with the counts the receiver reports
(OTLP partial success) and the self-metrics count. Errors a receiver maps:

- :class:`~pyflare_server.pipeline.queue.QueueFull` — nothing was taken:
  HTTP 429 / gRPC UNAVAILABLE, with ``Retry-After: retry_after_s``.
- :class:`~pyflare_server.pipeline.queue.PipelineError` — the rows were not
  stored (store failure, shutting down): HTTP 503 / gRPC UNAVAILABLE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyflare_server.pipeline.enricher import Enricher
from pyflare_server.pipeline.memory import MemoryQueue
from pyflare_server.pipeline.processors import Processor
from pyflare_server.pipeline.queue import QueueFull, SpanQueue
from pyflare_server.pipeline.sampler import Sampler
from pyflare_server.settings import ServerSettings
from pyflare_server.telemetry import ServerTelemetry

if TYPE_CHECKING:
    import pyarrow as pa

    from pyflare.store.base import SpanStore
    from pyflare_server.receiver.decode import Decoded, Signal

__all__ = ["Pipeline", "SubmitResult"]


@dataclass(frozen=True)
class SubmitResult:
    """What became of one request's items (spans, metric points or log records)."""

    signal: Signal
    received: int
    """Items in the request: accepted + rejected + sampled_out."""
    accepted: int
    """Items stored."""
    rejected: int
    """Items the decoder refused one by one (OTLP partial success)."""
    sampled_out: int
    """Items the sampler dropped (not an error: OTLP reports them as accepted)."""
    error_message: str = ""
    """Why items were rejected ("" when none were)."""


class Pipeline:
    """Sampler → enricher → queue (→ processors → store, in the queue's writer)."""

    def __init__(
        self,
        settings: ServerSettings,
        store: SpanStore,
        *,
        queue: SpanQueue | None = None,
        telemetry: ServerTelemetry | None = None,
        processors: Sequence[Processor] = (),
        enrich: bool = True,
        on_stored: Callable[[Signal, pa.Table], None] | None = None,
    ) -> None:
        """``queue`` defaults to a :class:`MemoryQueue` into ``store`` running ``processors``
        and telling ``on_stored`` what it wrote.

        ``enrich=False`` when the rows arrive enriched already (decode workers do it).
        """
        self.settings = settings
        self.store = store
        self.telemetry = telemetry if telemetry is not None else ServerTelemetry()
        self.queue: SpanQueue = (
            queue
            if queue is not None
            else MemoryQueue(
                store,
                batcher=settings.collector.batcher,
                processors=processors,
                telemetry=self.telemetry,
                on_stored=on_stored,
            )
        )
        self.sampler = Sampler(settings.collector.sampling)
        self.enricher = Enricher(settings.collector.enricher)
        self.enrich = enrich

    async def submit(self, decoded: Decoded) -> SubmitResult:
        """Sample, enrich and queue one request's rows; return once they are durable.

        Raises:
            QueueFull: nothing was taken; retry after ``retry_after_s``.
            PipelineError: the rows could not be stored (``__cause__`` says why).
        """
        signal = decoded.signal
        batch = decoded.batch
        received = batch.num_rows + decoded.rejected
        telemetry = self.telemetry
        telemetry.received.labels(signal).inc(received)
        if decoded.rejected:
            telemetry.rejected.labels(signal).inc(decoded.rejected)
        sampled_out = 0
        if signal == "traces":
            batch, sampled_out = self.sampler.sample(batch)
            if sampled_out:
                telemetry.sampled_out.labels(signal).inc(sampled_out)
        if batch.num_rows:
            if self.enrich:
                batch = self.enricher.enrich(signal, batch)
            try:
                await self.queue.put(signal, batch)
            except QueueFull:
                telemetry.queue_full.labels(signal).inc()
                raise
            telemetry.accepted.labels(signal).inc(batch.num_rows)
        return SubmitResult(
            signal=signal,
            received=received,
            accepted=batch.num_rows,
            rejected=decoded.rejected,
            sampled_out=sampled_out,
            error_message=decoded.error_message,
        )

    def depth(self) -> int:
        """Rows taken and not yet durable."""
        return self.queue.depth()

    async def start(self) -> None:
        await self.queue.start()

    async def close(self) -> None:
        """Take nothing more; return once everything taken is durable."""
        await self.queue.close()
