"""The bounded batch processor: batches, drops, failures, flush, shutdown, fork."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_value
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

from pyflare._runtime import reset_warnings
from pyflare.exporters.batch import BatchExportProcessor

LONG_INTERVAL_MS = 60_000  # the worker wakes only when a batch is full or on flush


class RecordingExporter(SpanExporter):
    """Keeps what it was given; can fail, raise, or block until released."""

    def __init__(
        self,
        *,
        result: SpanExportResult = SpanExportResult.SUCCESS,
        raises: Exception | None = None,
        block: bool = False,
    ) -> None:
        self.result = result
        self.raises = raises
        self.release = threading.Event()
        if not block:
            self.release.set()
        self.entered = threading.Event()
        self.batches: list[list[str]] = []
        self.suppressed: list[object] = []
        self.shutdowns = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.suppressed.append(get_value(_SUPPRESS_INSTRUMENTATION_KEY))
        self.entered.set()
        self.release.wait()
        if self.raises is not None:
            raise self.raises
        self.batches.append([span.name for span in spans])
        return self.result

    def shutdown(self) -> None:
        self.shutdowns += 1

    @property
    def names(self) -> list[str]:
        return [name for batch in self.batches for name in batch]


def make_span(name: str, *, sampled: bool = True) -> ReadableSpan:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    context = SpanContext(
        trace_id=random.getrandbits(128) or 1,
        span_id=random.getrandbits(64) or 1,
        is_remote=False,
        trace_flags=flags,
    )
    return ReadableSpan(name=name, context=context, start_time=1, end_time=2)


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
    reset_warnings()
    yield
    reset_warnings()


Made = tuple[BatchExportProcessor, RecordingExporter]


@pytest.fixture
def processors() -> Iterator[list[Made]]:
    """Processors made by the test; released and shut down afterwards."""
    made: list[Made] = []
    yield made
    for processor, exporter in made:
        exporter.release.set()
        processor.shutdown()


@pytest.fixture
def make(processors: list[Made]) -> Callable[..., Made]:
    """Build a processor (a long interval unless given) around an exporter."""

    def build(exporter: RecordingExporter | None = None, **options: Any) -> Made:
        exporter = exporter or RecordingExporter()
        options.setdefault("interval_ms", LONG_INTERVAL_MS)
        processor = BatchExportProcessor(exporter, **options)
        processors.append((processor, exporter))
        return processor, exporter

    return build


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and text in r.getMessage()
    ]


def test_exports_in_batches_no_larger_than_batch_size(make) -> None:
    processor, exporter = make(batch_size=10, max_queue_size=1000)
    names = [f"s{i}" for i in range(95)]
    for name in names:
        processor.on_end(make_span(name))
    assert processor.force_flush(5000) is True
    assert exporter.names == names
    assert max(len(batch) for batch in exporter.batches) <= 10
    stats = processor.stats()
    assert (stats.exported, stats.dropped, stats.queued) == (95, 0, 0)


def test_a_full_batch_is_exported_without_waiting_for_the_interval(make) -> None:
    processor, exporter = make(batch_size=5)
    for i in range(5):
        processor.on_end(make_span(f"s{i}"))
    deadline = time.monotonic() + 5
    while processor.stats().exported < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert exporter.batches == [["s0", "s1", "s2", "s3", "s4"]]


def test_the_interval_exports_a_partial_batch(make) -> None:
    processor, exporter = make(batch_size=100, interval_ms=20)
    processor.on_end(make_span("lonely"))
    deadline = time.monotonic() + 5
    while not exporter.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert exporter.batches == [["lonely"]]


def test_full_queue_drops_new_spans_counts_them_and_never_blocks(
    make, caplog: pytest.LogCaptureFixture
) -> None:
    processor, exporter = make(RecordingExporter(block=True), max_queue_size=10, batch_size=10)
    for i in range(10):
        processor.on_end(make_span(f"first{i}"))
    assert exporter.entered.wait(5)  # the worker holds the first batch, stuck in export
    for i in range(10):
        processor.on_end(make_span(f"queued{i}"))
    started = time.monotonic()
    for i in range(500):
        processor.on_end(make_span(f"dropped{i}"))
    assert time.monotonic() - started < 1.0
    stats = processor.stats()
    assert (stats.dropped_queue_full, stats.queued) == (500, 10)
    (warning,) = warnings_about(caplog, "queue is full")
    assert "PYFLARE_MAX_QUEUE_SIZE" in warning

    exporter.release.set()
    assert processor.force_flush(5000) is True
    assert len(exporter.names) == 20
    assert not any(name.startswith("dropped") for name in exporter.names)
    stats = processor.stats()
    assert (stats.exported, stats.dropped, stats.dropped_export_failed) == (20, 500, 0)


def test_exporter_raising_is_counted_and_logged_once(
    make, caplog: pytest.LogCaptureFixture
) -> None:
    processor, _ = make(RecordingExporter(raises=RuntimeError("disk on fire")), batch_size=4)
    for _ in range(5):
        for i in range(4):
            processor.on_end(make_span(f"s{i}"))
        assert processor.force_flush(5000) is True
    stats = processor.stats()
    assert (stats.exported, stats.dropped_export_failed, stats.dropped) == (0, 20, 20)
    (warning,) = warnings_about(caplog, "PyFlare")
    assert "disk on fire" in warning


@pytest.mark.parametrize("log_failures", [True, False])
def test_exporter_returning_failure_is_counted_and_logged_once(
    make, caplog: pytest.LogCaptureFixture, log_failures: bool
) -> None:
    processor, exporter = make(
        RecordingExporter(result=SpanExportResult.FAILURE), log_failures=log_failures
    )
    for _ in range(5):
        processor.on_end(make_span("s"))
        processor.on_end(make_span("t"))
        assert processor.force_flush(5000) is True
    assert len(exporter.names) == 10
    stats = processor.stats()
    assert (stats.exported, stats.dropped_export_failed) == (0, 10)
    logged = warnings_about(caplog, "could not export")
    # Exporters that explain their own failures (log_failures=False) get no second line.
    assert len(logged) == (1 if log_failures else 0)


def test_force_flush_waits_for_the_export(make) -> None:
    processor, exporter = make(RecordingExporter(block=True))
    processor.on_end(make_span("slow"))
    threading.Timer(0.2, exporter.release.set).start()
    started = time.monotonic()
    assert processor.force_flush(5000) is True
    assert time.monotonic() - started >= 0.15
    assert exporter.names == ["slow"]
    assert processor.stats().exported == 1


def test_force_flush_times_out_on_a_stuck_exporter(make) -> None:
    processor, exporter = make(RecordingExporter(block=True))
    processor.on_end(make_span("stuck"))
    started = time.monotonic()
    assert processor.force_flush(200) is False
    assert 0.15 <= time.monotonic() - started < 2
    exporter.release.set()
    assert processor.force_flush(5000) is True
    assert exporter.names == ["stuck"]


def test_shutdown_flushes_then_shuts_the_exporter_down(make) -> None:
    processor, exporter = make()
    for i in range(7):
        processor.on_end(make_span(f"s{i}"))
    processor.shutdown()
    assert exporter.names == [f"s{i}" for i in range(7)]
    assert exporter.shutdowns == 1
    # Later spans are ignored; flush and shutdown are harmless.
    processor.on_end(make_span("late"))
    assert processor.force_flush(1000) is True
    processor.shutdown()
    assert exporter.shutdowns == 1
    assert exporter.names[-1] == "s6"
    stats = processor.stats()
    assert (stats.exported, stats.queued, stats.dropped) == (7, 0, 0)


def test_shutdown_with_a_stuck_exporter_returns_and_counts_what_it_left(
    make, caplog: pytest.LogCaptureFixture
) -> None:
    processor, exporter = make(RecordingExporter(block=True), export_timeout_ms=200)
    processor.on_end(make_span("in-flight"))
    processor.force_flush(0)  # wake the worker
    assert exporter.entered.wait(5)
    for i in range(3):
        processor.on_end(make_span(f"left{i}"))
    started = time.monotonic()
    processor.shutdown()
    assert time.monotonic() - started < 5
    assert exporter.shutdowns == 1
    assert processor.stats().dropped_export_failed == 3
    assert warnings_about(caplog, "could not export in time")


def test_unsampled_spans_are_ignored(make) -> None:
    processor, exporter = make()
    processor.on_end(make_span("not sampled", sampled=False))
    processor.on_end(make_span("sampled"))
    assert processor.force_flush(5000) is True
    assert exporter.names == ["sampled"]
    assert processor.stats().exported == 1


def test_export_runs_with_instrumentation_suppressed(make) -> None:
    processor, exporter = make()
    processor.on_end(make_span("s"))
    assert processor.force_flush(5000) is True
    assert exporter.suppressed == [True]
    assert not get_value(_SUPPRESS_INSTRUMENTATION_KEY)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_exports_on_its_own(make) -> None:
    processor, exporter = make()
    processor.on_end(make_span("parent-before"))
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a multi-threaded process; that is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        status = 1
        try:
            for i in range(5):
                processor.on_end(make_span(f"child{i}"))
            flushed = processor.force_flush(5000)
            names = exporter.names
            ok = flushed and names[-5:] == [f"child{i}" for i in range(5)]
            ok = ok and "parent-before" not in names[-5:]
            os.write(write_end, b"ok" if ok else repr((flushed, names)).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.02)
    report = os.read(read_end, 65536)
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == b"ok"
    # The parent carries on with its own worker.
    processor.on_end(make_span("parent-after"))
    assert processor.force_flush(5000) is True
    assert exporter.names == ["parent-before", "parent-after"]
