"""Mask PII in span content before it leaves the process.

Content is PyFlare's own input/output previews (masked as the fields
``"input"`` and ``"output"``) and what other OTel instrumentations (OpenAI,
LangChain, OpenInference…) record as prompts and completions in their own
attributes (masked with the attribute key as the field). Any attribute named
in ``PIIConfig.field_actions`` is masked too. It runs in the export thread, on
the way to the store or the OTLP endpoint, so instrumented calls don't pay
for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pyflare import semconv as sc
from pyflare._runtime import warn_once
from pyflare.tracing.masking import PIIMasker

__all__ = [
    "CONTENT_ATTRIBUTES",
    "CONTENT_PREFIXES",
    "MASKING_FAILED",
    "PREVIEW_FIELDS",
    "PREVIEW_MARGIN",
    "MaskingSpanExporter",
    "SpanMasker",
]

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
        "log.body",  # the body of a log record, masked by the server like span content
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
#: PyFlare's previews and the field names their actions are configured under.
PREVIEW_FIELDS = {sc.INPUT_PREVIEW: "input", sc.OUTPUT_PREVIEW: "output"}
#: Extra characters captured past the preview length when masking is on.
PREVIEW_MARGIN = 128
_MAX_CACHED_KEY_SETS = 4096
# What a value becomes when masking it failed: content is never let through unmasked.
MASKING_FAILED = "[PII masking failed]"


class SpanMasker:
    """Masks the content of finished spans (see the module docstring).

    Besides the content attributes, every attribute key named in the masker's
    ``PIIConfig.field_actions`` is masked (with that field's action).
    """

    def __init__(self, masker: PIIMasker, *, preview_chars: int | None = None) -> None:
        self.masker = masker
        # Previews are captured PREVIEW_MARGIN characters longer than kept, so PII cut
        # by the preview's end is still whole when masked; they are cut to size here.
        self.preview_chars = preview_chars
        self._fields = frozenset(masker.config.field_actions)
        self._mask_keys: dict[tuple[str, ...], tuple[str, ...]] = {}

    def _needs_mask(self, key: str) -> bool:
        return (
            key in PREVIEW_FIELDS
            or key in CONTENT_ATTRIBUTES
            or key in self._fields
            or key.startswith(CONTENT_PREFIXES)
        )

    def _keys(self, names: tuple[str, ...]) -> tuple[str, ...]:
        keys = self._mask_keys.get(names)
        if keys is None:
            # Spans of one call site share their attribute names: decide once per set.
            keys = tuple(k for k in names if self._needs_mask(k))
            if len(self._mask_keys) < _MAX_CACHED_KEY_SETS:
                self._mask_keys[names] = keys
        return keys

    def _mask_value(self, key: str, value: Any) -> Any:
        field = PREVIEW_FIELDS.get(key, key)
        try:
            if isinstance(value, str):
                masked = self.masker.mask(value, field=field)
                if self.preview_chars is not None and key in PREVIEW_FIELDS:
                    masked = masked[: self.preview_chars]
                return masked
            if isinstance(value, tuple | list):
                return tuple(
                    self.masker.mask(v, field=field) if isinstance(v, str) else v for v in value
                )
        except Exception as exc:
            warn_once(
                f"masking-failed-{type(exc).__name__}",
                "PyFlare could not mask the span attribute %r (%r); its value was replaced",
                key,
                exc,
            )
            return MASKING_FAILED
        return value

    def mask_in_place(self, attributes: dict[str, Any]) -> None:
        """Mask a plain dict of attributes that the caller already copied."""
        if attributes:
            for key in self._keys(tuple(attributes)):
                attributes[key] = self._mask_value(key, attributes[key])

    def masked(self, attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """A masked copy of ``attributes``, or None when nothing in them needs masking."""
        if not attributes:
            return None
        keys = self._keys(tuple(attributes))
        if not keys:
            return None
        masked = dict(attributes)
        for key in keys:
            masked[key] = self._mask_value(key, masked[key])
        return masked

    def mask_span(self, span: ReadableSpan, *, events_only: bool = False) -> ReadableSpan:
        """``span`` with its content masked (the same object when nothing needed it).

        ``events_only`` leaves the span's own attributes alone, for an exporter that
        masks them with `mask_in_place` while converting.
        """
        attributes = None if events_only else self.masked(span.attributes)
        events = span.events
        masked_events = [self.masked(event.attributes) for event in events]
        if attributes is None and all(e is None for e in masked_events):
            return span
        if any(e is not None for e in masked_events):
            # Older GenAI instrumentations put prompts and completions on events.
            events = tuple(
                event
                if new is None
                else Event(event.name, attributes=new, timestamp=event.timestamp)
                for event, new in zip(events, masked_events, strict=True)
            )
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=span.attributes if attributes is None else attributes,
            events=events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )


class MaskingSpanExporter(SpanExporter):
    """Wraps an exporter; spans with content are masked (copied) first."""

    def __init__(
        self,
        exporter: SpanExporter,
        masker: PIIMasker | SpanMasker,
        *,
        preview_chars: int | None = None,
    ) -> None:
        self.exporter = exporter
        self.span_masker = (
            masker
            if isinstance(masker, SpanMasker)
            else SpanMasker(masker, preview_chars=preview_chars)
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        mask = self.span_masker.mask_span
        return self.exporter.export([mask(span) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)
