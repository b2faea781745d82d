"""The server's pipeline: queue, sampler, enricher, processors and the store writer."""

from __future__ import annotations

from pyflare_server.pipeline.enricher import COLLECTOR_HOST, Enricher
from pyflare_server.pipeline.memory import MemoryQueue
from pyflare_server.pipeline.processors import Processor
from pyflare_server.pipeline.queue import PipelineError, QueueFull, SpanQueue
from pyflare_server.pipeline.runner import Pipeline, SubmitResult
from pyflare_server.pipeline.sampler import Sampler, trace_kept

__all__ = [
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
