"""``pyflare.init()``, ``flush()``, ``shutdown()`` and ``stats()``.

``init`` builds a plain OpenTelemetry ``TracerProvider`` (or joins the one the
application already installed) and adds PyFlare's processors to it:

* a context processor that copies user/session/feature/team/environment onto
  every span as it starts, and
* a bounded batch processor exporting to the local DuckDB store or, in remote
  mode, to an OTLP/HTTP endpoint, masking PII on the way out.

Other OTel instrumentations in the process use the same provider, so their
spans land in the same place.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)

from pyflare import semconv as sc
from pyflare._runtime import INSTRUMENTATION_NAME, STATE
from pyflare._version import __version__
from pyflare.config import Settings, load_settings
from pyflare.errors import ConfigError
from pyflare.exporters.masking import PREVIEW_MARGIN
from pyflare.store import open_store
from pyflare.tracing import threads
from pyflare.tracing.context import context_tags

if TYPE_CHECKING:
    from opentelemetry.trace import SpanKind
    from opentelemetry.util.types import Attributes

    from pyflare.exporters.batch import BatchExportProcessor
    from pyflare.exporters.duckdb import DuckDBSpanExporter
    from pyflare.store.base import SpanStore
    from pyflare.tracing.masking import PIIConfig, PIIMasker

__all__ = ["current_pipeline", "flush", "init", "shutdown", "stats"]

logger = logging.getLogger("pyflare")
_lock = threading.RLock()
_atexit_registered = False


class RateSampler(Sampler):
    """Parent-based ratio sampling whose rate ``init()`` can change later."""

    def __init__(self, rate: float) -> None:
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        self.rate = rate
        self._delegate = ParentBased(root=TraceIdRatioBased(rate))

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"PyFlareRateSampler{{{self.rate}}}"


class Pipeline:
    """What one ``init()`` set up: the export processor and, locally, the store."""

    def __init__(
        self,
        settings: Settings,
        processor: BatchExportProcessor,
        local: DuckDBSpanExporter | None,
    ) -> None:
        self.settings = settings
        self.processor = processor
        self.local = local

    def store(self) -> SpanStore | None:
        return None if self.local is None else self.local.open()

    def shutdown(self) -> None:
        self.processor.shutdown()


class PyFlareSpanProcessor(SpanProcessor):
    """Registered once per provider; forwards to the pipeline of the latest ``init()``.

    On start it copies PyFlare's context (user, session, feature, team,
    environment and extra tags) onto the span, without overwriting what the
    instrumentation itself set.
    """

    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        tags = context_tags(parent_context)
        if tags:
            existing = span.attributes or {}
            span.set_attributes({k: v for k, v in tags.items() if k not in existing})

    def on_end(self, span: ReadableSpan) -> None:
        observer = STATE.budget_observer
        if observer is not None:
            try:
                observer(span)
            except Exception:  # a budget callback never breaks the host
                logger.exception("PyFlare's budget check failed on span %r", span.name)
        pipeline = self.pipeline
        if pipeline is not None:
            pipeline.processor.on_end(span)

    def shutdown(self) -> None:
        # The provider is shutting down (its atexit hook, or the application's
        # provider.shutdown()): close the pipeline, and forget it so that
        # pyflare.stats()/traces() don't use a closed store.
        pipeline, self.pipeline = self.pipeline, None
        if pipeline is not None:
            pipeline.shutdown()
            if STATE.pipeline is pipeline:
                STATE.pipeline = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        pipeline = self.pipeline
        return True if pipeline is None else pipeline.processor.force_flush(timeout_millis)


# The provider PyFlare is attached to and its processor (one per process).
_provider: TracerProvider | None = None
_processor: PyFlareSpanProcessor | None = None
_sampler: RateSampler | None = None


def _masker(settings: Settings, pii: bool | PIIConfig | None) -> PIIMasker | None:
    if pii is False or (pii is None and not settings.pii_masking):
        return None
    from pyflare.tracing.masking import PIIConfig, PIIMasker

    if pii is None or pii is True:
        return PIIMasker()
    if isinstance(pii, PIIConfig):
        return PIIMasker(pii)
    raise ConfigError(f"pii must be True, False or a pyflare.PIIConfig, got {type(pii).__name__}")


_DEFAULT_SERVICE_NAME = "unknown_service"


def _load_prices(path: str) -> None:
    """Make the user's price file the process's price book (ConfigError when it is bad)."""
    from pyflare.cost.prices import PriceBook

    PriceBook.set_default(PriceBook.from_yaml(path))


def _service_name(settings: Settings) -> str:
    """service.name: the setting, else one given in the resource attributes, else the default.

    ``OTEL_RESOURCE_ATTRIBUTES=service.name=x`` names the service when nothing
    more specific (argument, PYFLARE_SERVICE_NAME, OTEL_SERVICE_NAME) does.
    """
    if settings.service_name != _DEFAULT_SERVICE_NAME:
        return settings.service_name
    return settings.resource_attributes.get("service.name") or _DEFAULT_SERVICE_NAME


def _resource(settings: Settings) -> Resource:
    attributes: dict[str, Any] = dict(settings.resource_attributes)
    attributes["service.name"] = _service_name(settings)
    if settings.environment is not None:
        attributes[sc.ENVIRONMENT] = settings.environment
    attributes.setdefault("telemetry.distro.name", "pyflare")
    attributes.setdefault("telemetry.distro.version", __version__)
    return Resource.create(attributes)


def _build_pipeline(settings: Settings, masker: PIIMasker | None) -> Pipeline:
    from opentelemetry.sdk.trace.export import SpanExporter

    from pyflare.exporters.batch import BatchExportProcessor
    from pyflare.exporters.masking import MaskingSpanExporter, SpanMasker

    # Masking happens on the way out, in the export thread: each exporter applies
    # it the cheapest way it can.
    span_masker = (
        None if masker is None else SpanMasker(masker, preview_chars=settings.capture_max_chars)
    )
    exporters: list[SpanExporter] = []
    local: DuckDBSpanExporter | None = None
    store_url = settings.local_store
    if store_url is not None:
        from pyflare.exporters.duckdb import DuckDBSpanExporter

        local = DuckDBSpanExporter(lambda: open_store(store_url), span_masker=span_masker)
        exporters.append(local)
    endpoint = settings.traces_endpoint
    if endpoint is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        otlp: SpanExporter = OTLPSpanExporter(
            endpoint=endpoint,
            headers=dict(settings.headers),
            timeout=settings.export_timeout_ms / 1000,
        )
        if span_masker is not None:
            otlp = MaskingSpanExporter(otlp, span_masker)
        exporters.append(otlp)
    exporter: SpanExporter
    if len(exporters) == 1:
        exporter = exporters[0]
    else:
        from pyflare.exporters.fanout import FanOutSpanExporter

        exporter = FanOutSpanExporter(exporters)
    if not exporters:
        logger.warning(
            "PyFlare has nowhere to send spans: the store is 'none' and no endpoint is set; "
            "set PYFLARE_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT) or a store"
        )
    processor = BatchExportProcessor(
        exporter,
        max_queue_size=settings.max_queue_size,
        batch_size=settings.export_batch_size,
        interval_ms=settings.export_interval_ms,
        export_timeout_ms=settings.export_timeout_ms,
        # The store exporter and the OTLP exporter log their failures themselves.
        log_failures=False,
    )
    pipeline = Pipeline(settings, processor, local)
    if local is not None:
        # Open now so a problem (locked file, unwritable directory) is reported at
        # init; failures are logged and retried, never raised into the host.
        local.open()
    return pipeline


def init(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    store: str | None = None,
    sample_rate: float | None = None,
    capture: str | None = None,
    capture_max_chars: int | None = None,
    pii: bool | PIIConfig | None = None,
    environment: str | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    tracer_provider: TracerProvider | None = None,
    instrument: str | Sequence[str] | None = None,
    **settings: Any,
) -> trace.TracerProvider:
    """Start recording spans; returns the OpenTelemetry ``TracerProvider`` in use.

    With no endpoint, spans go to a local DuckDB file (``./.pyflare/pyflare.duckdb``
    unless ``store="duckdb:///path"``). With ``endpoint`` (or
    ``OTEL_EXPORTER_OTLP_ENDPOINT``) they are sent as OTLP/HTTP, batched.

    If the application already installed an SDK ``TracerProvider`` (or passes
    one as ``tracer_provider``), PyFlare adds its processors to it rather than
    replacing it: every OTel instrumentation then reports to the same place, and
    that provider's resource and sampler stay in charge. Otherwise PyFlare
    creates the provider and makes it the global one.

    ``instrument`` turns on PyFlare's instrumentors: a library name
    (``"openai"``), a list of names, or ``"auto"`` for every supported library
    that is importable (see :func:`pyflare.instrument`).

    Calling ``init`` again reconfigures PyFlare: the previous pipeline is
    flushed and closed. Every argument can also be set by a ``PYFLARE_*``
    variable (see ``pyflare.config``); arguments win.

    Raises:
        ConfigError: an argument or environment variable has a bad value.
    """
    global _provider, _processor, _sampler, _atexit_registered
    arguments: dict[str, Any] = {
        "service_name": service_name,
        "endpoint": endpoint,
        "headers": headers,
        "store": store,
        "sample_rate": sample_rate,
        "capture": capture,
        "capture_max_chars": capture_max_chars,
        "environment": environment,
        "resource_attributes": resource_attributes,
        **settings,
    }
    resolved = load_settings(**arguments)
    masker = _masker(resolved, pii)
    if resolved.prices_file is not None:
        _load_prices(resolved.prices_file)
    with _lock:
        if not resolved.enabled:
            _shutdown_pipeline()
            STATE.tracer = trace.NoOpTracer()
            logger.info("PyFlare is disabled (PYFLARE_ENABLED / OTEL_SDK_DISABLED)")
            return trace.NoOpTracerProvider()
        provider = _choose_provider(resolved, tracer_provider)
        _shutdown_pipeline()  # first: the new pipeline may open the same store file
        pipeline = _build_pipeline(resolved, masker)
        if _processor is None or provider is not _provider:
            _processor = PyFlareSpanProcessor()
            provider.add_span_processor(_processor)
            _provider = provider
        _processor.pipeline = pipeline
        STATE.tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        STATE.capture_inputs = resolved.capture in ("all", "inputs")
        STATE.capture_outputs = resolved.capture == "all"
        STATE.max_chars = resolved.capture_max_chars
        STATE.preview_margin = PREVIEW_MARGIN if masker is not None else 0
        STATE.pipeline = pipeline
        if resolved.thread_context:
            threads.install()
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
    if instrument is not None:
        from pyflare.instrumentation import instrument as _instrument

        _instrument(instrument)
    where = resolved.local_store or resolved.traces_endpoint
    logger.info("PyFlare is recording service %r to %s", resolved.service_name, where)
    return provider


def _choose_provider(settings: Settings, explicit: TracerProvider | None) -> TracerProvider:
    global _sampler
    if explicit is not None:
        if not isinstance(explicit, TracerProvider):
            raise ConfigError(
                "tracer_provider must be an opentelemetry.sdk.trace.TracerProvider, got "
                f"{type(explicit).__name__}"
            )
        return explicit
    if _provider is not None and _sampler is not None:
        # PyFlare made this provider in an earlier init(): reuse it (OTel allows
        # one global provider per process) and apply the new sample rate.
        _sampler.set_rate(settings.sample_rate)
        current_name = _provider.resource.attributes.get("service.name")
        wanted = _service_name(settings)
        if wanted != _DEFAULT_SERVICE_NAME and current_name != wanted:
            logger.warning(
                "PyFlare keeps service name %r for this process: OpenTelemetry's resource "
                "can't change after the first init(); restart to use %r",
                current_name,
                wanted,
            )
        return _provider
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        logger.info("PyFlare is joining the application's TracerProvider")
        return current
    _sampler = RateSampler(settings.sample_rate)
    provider = TracerProvider(resource=_resource(settings), sampler=_sampler)
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        logger.warning(
            "another (non-SDK) TracerProvider is already global; PyFlare records its own "
            "spans, but other instrumentations won't reach PyFlare"
        )
    return provider


def _shutdown_pipeline() -> None:
    if _processor is not None and _processor.pipeline is not None:
        pipeline, _processor.pipeline = _processor.pipeline, None
        pipeline.shutdown()
    STATE.pipeline = None


def current_pipeline() -> Pipeline | None:
    return STATE.pipeline  # type: ignore[no-any-return]


def flush(timeout_millis: int = 30000) -> bool:
    """Export every span finished so far; False if it didn't finish in time."""
    pipeline = current_pipeline()
    if pipeline is None:
        return True
    return pipeline.processor.force_flush(timeout_millis)


def shutdown() -> None:
    """Flush and stop PyFlare's pipeline (closing the local store). Idempotent."""
    with _lock:
        _shutdown_pipeline()


def stats() -> dict[str, Any]:
    """Counters of the current pipeline: spans exported, dropped (and why), queued."""
    pipeline = current_pipeline()
    if pipeline is None:
        return {"active": False}
    counters = pipeline.processor.stats()
    result: dict[str, Any] = {
        "active": True,
        "exported": counters.exported,
        "dropped": counters.dropped,
        "dropped_queue_full": counters.dropped_queue_full,
        "dropped_export_failed": counters.dropped_export_failed,
        "queued": counters.queued,
        "store": pipeline.settings.local_store,
        "endpoint": pipeline.settings.traces_endpoint,
    }
    if pipeline.local is not None and pipeline.local.last_error is not None:
        result["store_error"] = str(pipeline.local.last_error)
    return result
