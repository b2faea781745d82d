"""Sending the demo's traffic: the OpenTelemetry SDK and its OTLP/HTTP exporter."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Status, StatusCode

from pyflare.errors import InvalidArgumentError
from pyflare_server.demo import data
from pyflare_server.demo.plans import S, TracePlan, Traffic

__all__ = ["TrafficStats", "run_traffic", "run_traffic_sync", "traces_url"]

_EXPORT_SPANS = 512  # spans per OTLP request at most
_EXPORT_EVERY_S = 1.0  # how long live spans wait to be sent, at most
_DEFAULT_DRIFT_S = 300.0  # when the classifier drifts in an endless run


@dataclass(frozen=True)
class TrafficStats:
    """What a run sent: traces and spans, traces with an error, spans not accepted."""

    traces: int = 0
    spans: int = 0
    error_traces: int = 0
    failed_spans: int = 0


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint (``http://host:4318`` → ``…/v1/traces``)."""
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise InvalidArgumentError(
            f"the OTLP endpoint must be an http:// or https:// URL, got {endpoint!r}"
        )
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class _Collect(SpanProcessor):
    """Keeps ended spans until the sender takes them."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class _Sender:
    """One tracer per service (each its own resource), one OTLP/HTTP exporter for all."""

    def __init__(self, url: str, headers: Mapping[str, str] | None, timeout_s: float) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        self.exporter = OTLPSpanExporter(
            endpoint=url, headers=dict(headers or {}), timeout=timeout_s
        )
        self.collected = _Collect()
        self.providers: dict[str, TracerProvider] = {}
        self.tracers: dict[str, trace.Tracer] = {}
        self.sent = 0
        self.failed = 0

    def tracer(self, service: str) -> trace.Tracer:
        tracer = self.tracers.get(service)
        if tracer is None:
            version, language = data.SERVICES[service]
            resource = Resource.create(
                {
                    "service.name": service,
                    "service.version": version,
                    "deployment.environment.name": "demo",
                    "telemetry.sdk.language": language,
                }
            )
            provider = TracerProvider(resource=resource, sampler=ALWAYS_ON, shutdown_on_exit=False)
            provider.add_span_processor(self.collected)
            self.providers[service] = provider
            tracer = self.tracers[service] = provider.get_tracer("pyflare-demo")
        return tracer

    def record(self, plan: TracePlan, start_ns: int) -> int:
        tracer = self.tracer(plan.service)
        opened: list[trace.Span] = []
        for span in plan.spans:
            context: Context | None = None
            if span.parent is not None:
                context = trace.set_span_in_context(opened[span.parent])
            opened.append(
                tracer.start_span(
                    span.name,
                    context=context,
                    kind=span.kind,
                    attributes=span.attributes,
                    start_time=start_ns + span.start,
                )
            )
        for span, otel in zip(reversed(plan.spans), reversed(opened), strict=True):
            for name, at, attributes in span.events:
                otel.add_event(name, attributes, timestamp=start_ns + at)
            if span.error is not None:
                otel.set_status(Status(StatusCode.ERROR, span.error))
            otel.end(end_time=start_ns + span.end)
        return len(opened)

    @property
    def pending(self) -> int:
        return len(self.collected.spans)

    def flush(self) -> None:
        spans, self.collected.spans = self.collected.spans, []
        for first in range(0, len(spans), _EXPORT_SPANS):
            batch = spans[first : first + _EXPORT_SPANS]
            if self.exporter.export(batch) is SpanExportResult.SUCCESS:
                self.sent += len(batch)
            else:
                self.failed += len(batch)

    def close(self) -> None:
        self.flush()
        self.exporter.shutdown()  # type: ignore[no-untyped-call]
        for provider in self.providers.values():
            provider.shutdown()


def _check(name: str, value: float | None, *, low: float, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or value < low
    ):
        raise InvalidArgumentError(f"{name} must be a number ≥ {low:g}, got {value!r}")


def run_traffic_sync(
    otlp_endpoint: str,
    *,
    duration_s: float | None = None,
    rate: float = 20.0,
    seed: int = 0,
    stop: threading.Event | None = None,
    backfill_s: float = 0.0,
    drift_after_s: float | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> TrafficStats:
    """Send traffic to ``otlp_endpoint`` until ``duration_s`` has passed or ``stop`` is set.

    ``rate`` is traces per second (Poisson arrivals, all services together).
    ``backfill_s`` first sends that many seconds of history, as fast as the
    server takes it, so a fresh server has a past. The timeline starts
    ``backfill_s`` before the call; the classifier drifts ``drift_after_s`` into
    it (default: halfway through a finite run, else after 5 minutes). Blocks;
    uses less than a core (sleeping between traces). Export failures are
    logged by the exporter and counted in ``failed_spans``.
    """
    url = traces_url(otlp_endpoint)
    _check("duration_s", duration_s, low=0, allow_none=True)
    _check("rate", rate, low=0.001)
    _check("backfill_s", backfill_s, low=0)
    _check("drift_after_s", drift_after_s, low=0, allow_none=True)
    if not math.isfinite(rate) or not math.isfinite(backfill_s):
        raise InvalidArgumentError("rate and backfill_s must be finite")
    live_s = None if duration_s is None or math.isinf(duration_s) else float(duration_s)
    if drift_after_s is None:
        drift_after_s = _DEFAULT_DRIFT_S if live_s is None else (backfill_s + live_s) / 2
    stop = stop or threading.Event()
    begin = time.time_ns()
    timeline_start = begin - int(backfill_s * S)
    end = None if live_s is None else begin + int(live_s * S)
    traffic = Traffic(seed, timeline_start + int(min(drift_after_s, 1e9) * S))
    sender = _Sender(url, headers, timeout_s)
    traces = errors = spans = 0
    at = timeline_start
    last_flush = time.monotonic()
    try:
        while not stop.is_set():
            at += int(traffic.rng.expovariate(rate) * S)
            if end is not None and at >= end:
                break
            # Sleep until the trace is due (history is due at once), flushing on the way.
            while (wait := (at - time.time_ns()) / S) > 0 and not stop.is_set():
                flush_in = _EXPORT_EVERY_S - (time.monotonic() - last_flush)
                if sender.pending and flush_in <= 0:
                    sender.flush()
                    last_flush = time.monotonic()
                else:
                    stop.wait(min(wait, flush_in) if sender.pending else wait)
            if stop.is_set():
                break
            plan = traffic.plan(at)
            spans += sender.record(plan, at - plan.duration)
            traces += 1
            errors += plan.failed
            if sender.pending >= _EXPORT_SPANS:
                sender.flush()
                last_flush = time.monotonic()
    finally:
        sender.close()
    return TrafficStats(traces, spans, errors, sender.failed)


async def run_traffic(
    otlp_endpoint: str,
    *,
    duration_s: float | None = None,
    rate: float = 20.0,
    seed: int = 0,
    stop: asyncio.Event | None = None,
    backfill_s: float = 0.0,
    drift_after_s: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> TrafficStats:
    """:func:`run_traffic_sync` in a worker thread, stopped by ``stop`` or cancellation."""
    halt = threading.Event()

    async def relay(event: asyncio.Event) -> None:
        await event.wait()
        halt.set()

    relay_task = None if stop is None else asyncio.create_task(relay(stop))
    try:
        return await asyncio.to_thread(
            run_traffic_sync,
            otlp_endpoint,
            duration_s=duration_s,
            rate=rate,
            seed=seed,
            stop=halt,
            backfill_s=backfill_s,
            drift_after_s=drift_after_s,
            headers=headers,
        )
    finally:
        halt.set()  # on cancellation the thread sends what it has and returns
        if relay_task is not None:
            relay_task.cancel()
