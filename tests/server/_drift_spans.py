"""Span batches in windows and a drift processor on them, for the drift processor's tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, Status, StatusCode

from pyflare.records import from_readable_spans
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.pipeline.drift import DriftProcessor
from pyflare_server.receiver.decode import Signal

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z, on a minute
WINDOW_S = 60
WINDOW_NS = WINDOW_S * 1_000_000_000
_ids = iter(range(1, 10**9))


def window_spans(
    attributes: Sequence[Mapping[str, Any]],
    *,
    window: int,
    name: str = "predict",
    error: bool = False,
) -> pa.Table:
    """One span per attribute set, spread over the window ``window`` (0 = the first)."""
    start = T0 + window * WINDOW_NS
    step = WINDOW_NS // (len(attributes) + 1)
    readable = []
    for i, attrs in enumerate(attributes):
        n = next(_ids)
        at = start + (i + 1) * step
        readable.append(
            ReadableSpan(
                name=name,
                context=SpanContext(n, n, is_remote=False),
                resource=Resource({"service.name": "scorer"}),
                attributes=dict(attrs),
                start_time=at,
                end_time=at + 1000,
                status=Status(StatusCode.ERROR if error else StatusCode.UNSET),
            )
        )
    return from_readable_spans(readable)


def processor(store: DuckDBSpanStore, **options: Any) -> DriftProcessor:
    """A processor on one-minute windows that close as soon as a later span arrives."""
    options = {"window_s": WINDOW_S, "min_sample_size": 50, "lateness_s": 0.0, **options}
    return DriftProcessor(store, **options)


def feed(drift: DriftProcessor, *batches: pa.Table) -> None:
    """Each batch through ``drift``, which hands it on unchanged."""
    for batch in batches:
        assert drift.process(Signal.TRACES, batch) is batch
