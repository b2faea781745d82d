"""The queue between the receivers and the store: a small Protocol, two kinds.

In the local mode it is :class:`~pyflare_server.pipeline.memory.MemoryQueue`
(group commit straight into the store); the scaled mode puts Kafka behind the
same methods. Either way ``put`` returns once the batch is durable, which is
what lets the receiver answer 200 only for stored data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pyflare.errors import PyFlareError

if TYPE_CHECKING:
    import pyarrow as pa

    from pyflare_server.receiver.decode import Signal

__all__ = ["PipelineError", "QueueFull", "SpanQueue"]


class QueueFull(PyFlareError):
    """The queue has no room for the batch now; nothing of it was taken. Retry later."""

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PipelineError(PyFlareError):
    """A batch could not be made durable (store failure, or the pipeline is closing)."""


@runtime_checkable
class SpanQueue(Protocol):
    """Where decoded batches go on their way to the store."""

    async def put(self, signal: Signal, batch: pa.Table) -> None:
        """Return once ``batch`` is durable (stored, or acknowledged by the broker).

        Raises:
            QueueFull: no room now; none of the batch was taken (HTTP 429, gRPC
                UNAVAILABLE, with ``retry_after_s``).
            PipelineError: the batch was taken but could not be made durable, or
                the queue is closed (HTTP 503, gRPC UNAVAILABLE). ``__cause__``
                holds the store's error.
        """
        ...

    def depth(self) -> int:
        """Rows taken and not yet durable."""
        ...

    async def start(self) -> None:
        """Start the queue's background work (idempotent)."""
        ...

    async def close(self) -> None:
        """Stop taking batches; return once everything taken before is durable."""
        ...
