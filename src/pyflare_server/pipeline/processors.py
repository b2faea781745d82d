"""Processors: batch in, batch out, in order, just before the store write.

They run in the store writer's thread on whole groups of rows (many requests
at once), so a processor is a vectorised function over an Arrow table. The
scaled mode's consumers run the same chain before their store write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

    from pyflare_server.receiver.decode import Signal

__all__ = ["Processor", "run_processors"]


@runtime_checkable
class Processor(Protocol):
    """Turns a batch of one signal into the batch to store (adds columns, emits results)."""

    name: str

    def process(self, signal: Signal, batch: pa.Table) -> pa.Table:
        """The batch to store; ``batch`` keeps the signal's schema on the way out."""
        ...


def run_processors(processors: Sequence[Processor], signal: Signal, batch: pa.Table) -> pa.Table:
    """``batch`` through every processor in order."""
    for processor in processors:
        batch = processor.process(signal, batch)
    return batch
