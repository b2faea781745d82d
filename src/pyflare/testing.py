"""Test helpers for code instrumented with PyFlare, and a pytest plugin.

With PyFlare installed, pytest gets a ``pyflare_capture`` fixture: every span
made during the test is kept in memory (masked exactly as it would be stored),
with sequential ids and a deterministic clock::

    def test_answer(pyflare_capture):
        answer("hi")
        (span,) = pyflare_capture.spans
        assert span.name == "answer"
        assert pyflare_capture.rows()[0]["input_preview"] == '{"question":"hi"}'

PyFlare's own test suite uses the same fixture.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace.id_generator import IdGenerator

from pyflare._runtime import INSTRUMENTATION_NAME, STATE
from pyflare.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pyarrow as pa
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pyflare.tracing.masking import PIIConfig

__all__ = [
    "CapturedSpans",
    "SequentialIdGenerator",
    "TestClock",
    "capture_spans",
    "pyflare_capture",
]

#: 2026-01-01T00:00:00Z, where TestClock starts unless told otherwise.
DEFAULT_START_NS = 1_767_225_600_000_000_000


class TestClock:
    """A clock that advances by ``step_ns`` every time it is read."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, start_ns: int = DEFAULT_START_NS, step_ns: int = 1_000_000) -> None:
        self._now = start_ns
        self.step_ns = step_ns
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            now = self._now
            self._now += self.step_ns
            return now

    def advance(self, ns: int) -> None:
        with self._lock:
            self._now += ns


class SequentialIdGenerator(IdGenerator):
    """Trace ids 1, 2, 3… and span ids 1, 2, 3… (valid, non-zero, predictable)."""

    def __init__(self) -> None:
        self._trace = 0
        self._span = 0
        self._lock = threading.Lock()

    def generate_trace_id(self) -> int:
        with self._lock:
            self._trace += 1
            return self._trace

    def generate_span_id(self) -> int:
        with self._lock:
            self._span += 1
            return self._span


class CapturedSpans:
    """Spans finished while capturing, as OTel spans or canonical rows."""

    def __init__(self, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
        self.provider = provider
        self.exporter = exporter

    @property
    def spans(self) -> list[ReadableSpan]:
        """Finished spans in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name`` (AssertionError if not exactly one)."""
        matches = [s for s in self.spans if s.name == name]
        names = [s.name for s in self.spans]
        assert len(matches) == 1, f"expected one span named {name!r}, got {len(matches)}: {names}"
        return matches[0]

    def batch(self) -> pa.Table:
        """The canonical rows (DESIGN.md §3) these spans would be stored as."""
        from pyflare.records import from_readable_spans

        return from_readable_spans(self.spans)

    def rows(self) -> list[dict[str, Any]]:
        """Canonical rows as dicts, maps as dicts."""
        from pyflare.records import to_pylist

        return to_pylist(self.batch())

    def clear(self) -> None:
        self.exporter.clear()


@contextmanager
def capture_spans(
    *,
    capture: str = "all",
    max_chars: int = 1000,
    pii: bool | PIIConfig = True,
    clock: TestClock | None = None,
    sequential_ids: bool = True,
) -> Iterator[CapturedSpans]:
    """Route PyFlare's spans to memory for the duration of the block.

    Uses a private ``TracerProvider`` with PyFlare's processors (context tags
    and PII masking as configured); the global provider is left alone.
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pyflare.exporters.masking import PREVIEW_MARGIN
    from pyflare.tracing.setup import PyFlareSpanProcessor

    if capture not in ("all", "inputs", "off"):
        raise InvalidArgumentError(f"capture must be all, inputs or off, got {capture!r}")
    provider = TracerProvider(
        resource=Resource.create({"service.name": "pyflare-test"}),
        id_generator=SequentialIdGenerator() if sequential_ids else None,
        shutdown_on_exit=False,
    )
    memory = InMemorySpanExporter()
    exporter: SpanExporter = memory
    if pii is not False:
        from pyflare.exporters.masking import MaskingSpanExporter
        from pyflare.tracing.masking import PIIConfig, PIIMasker

        masker = PIIMasker(pii if isinstance(pii, PIIConfig) else None)
        exporter = MaskingSpanExporter(memory, masker, preview_chars=max_chars)
    provider.add_span_processor(PyFlareSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    overrides = {
        "tracer": provider.get_tracer(INSTRUMENTATION_NAME),
        "capture_inputs": capture in ("all", "inputs"),
        "capture_outputs": capture == "all",
        "max_chars": max_chars,
        "preview_margin": PREVIEW_MARGIN if pii is not False else 0,
        "clock": clock if clock is not None else TestClock(),
    }
    saved = {name: getattr(STATE, name) for name in overrides}
    for name, value in overrides.items():
        setattr(STATE, name, value)
    try:
        yield CapturedSpans(provider, memory)
    finally:
        for name, value in saved.items():
            setattr(STATE, name, value)
        provider.shutdown()


try:
    import pytest
except ImportError:  # pragma: no cover - the plugin only matters under pytest
    pass
else:

    @pytest.fixture
    def pyflare_capture() -> Iterator[CapturedSpans]:
        """Every PyFlare span made during the test, in memory."""
        with capture_spans() as captured:
            yield captured
