"""Send the same spans to several exporters (local store and an endpoint)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pyflare._runtime import warn_once

__all__ = ["FanOutSpanExporter"]

logger = logging.getLogger(__name__)


class FanOutSpanExporter(SpanExporter):
    """Exports to every exporter; succeeds only if all of them did."""

    def __init__(self, exporters: Sequence[SpanExporter]) -> None:
        self.exporters = list(exporters)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = True
        for exporter in self.exporters:
            try:
                ok = exporter.export(spans) is SpanExportResult.SUCCESS and ok
            except Exception as exc:
                warn_once(
                    f"fanout-raised-{type(exporter).__name__}-{type(exc).__name__}",
                    "PyFlare exporter %r raised %r (further failures are counted, not logged)",
                    exporter,
                    exc,
                )
                ok = False
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        # Every exporter gets shut down (closing the store), even if one before it fails.
        for exporter in self.exporters:
            try:
                exporter.shutdown()
            except Exception as exc:
                logger.warning("PyFlare exporter %r failed to shut down: %r", exporter, exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        results = [exporter.force_flush(timeout_millis) for exporter in self.exporters]
        return all(results)
