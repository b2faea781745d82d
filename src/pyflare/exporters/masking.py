"""Mask PII in what other instrumentations recorded, before it leaves the process.

PyFlare's own previews are masked when captured. Spans from other OTel
instrumentations (OpenAI, LangChain, OpenInference…) carry prompts and
completions in their own attributes; this exporter wrapper masks those
content attributes (and any attribute named in ``field_actions``) on the way
to the store or the OTLP endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pyflare import semconv as sc
from pyflare.tracing.masking import PIIMasker

__all__ = ["CONTENT_ATTRIBUTES", "CONTENT_PREFIXES", "MaskingSpanExporter"]

#: Attributes whose values are content (prompts, completions, tool payloads).
CONTENT_ATTRIBUTES = frozenset(
    {
        sc.GEN_AI_INPUT_MESSAGES,
        sc.GEN_AI_OUTPUT_MESSAGES,
        "gen_ai.system_instructions",
        "gen_ai.prompt",
        "gen_ai.completion",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        sc.OI_INPUT_VALUE,
        sc.OI_OUTPUT_VALUE,
        "retrieval.documents",
    }
)
#: Attribute name prefixes that hold content (flattened message lists).
CONTENT_PREFIXES = (
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "retrieval.documents.",
    "embedding.embeddings.",
)
# PyFlare's own previews were masked at capture time.
_ALREADY_MASKED = frozenset({sc.INPUT_PREVIEW, sc.OUTPUT_PREVIEW})


class MaskingSpanExporter(SpanExporter):
    """Wraps an exporter; spans with content attributes are masked first."""

    def __init__(self, exporter: SpanExporter, masker: PIIMasker) -> None:
        self.exporter = exporter
        self.masker = masker
        self._fields = frozenset(masker.config.field_actions) - _ALREADY_MASKED

    def _needs_mask(self, key: str) -> bool:
        if key in _ALREADY_MASKED:
            return False
        return key in CONTENT_ATTRIBUTES or key in self._fields or key.startswith(CONTENT_PREFIXES)

    def _mask(self, span: ReadableSpan) -> ReadableSpan:
        attributes = span.attributes
        if not attributes:
            return span
        keys = [k for k in attributes if self._needs_mask(k)]
        if not keys:
            return span
        masked: dict[str, Any] = dict(attributes)
        for key in keys:
            value = masked[key]
            if isinstance(value, str):
                masked[key] = self.masker.mask(value, field=key)
            elif isinstance(value, tuple | list):
                masked[key] = tuple(
                    self.masker.mask(v, field=key) if isinstance(v, str) else v for v in value
                )
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=masked,
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.exporter.export([self._mask(span) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)
