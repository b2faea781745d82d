"""Masking what other instrumentations recorded, on the way out."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from pyflare import PIIConfig
from pyflare._runtime import reset_warnings
from pyflare.exporters.masking import MASKING_FAILED, MaskingSpanExporter
from pyflare.tracing.masking import PIIMasker

EMAIL = "jane.doe@example.com"
CONTEXT = SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(1))
PARENT = SpanContext(0x1234, 0x9999, is_remote=False, trace_flags=TraceFlags(1))


def make_span(attributes: Mapping[str, Any], events: tuple[Event, ...] = ()) -> ReadableSpan:
    return ReadableSpan(
        name="chat gpt-4o",
        context=CONTEXT,
        parent=PARENT,
        resource=Resource.create({"service.name": "svc"}),
        attributes=attributes,
        events=events,
        links=(Link(PARENT, {"why": "retry"}),),
        kind=SpanKind.CLIENT,
        status=Status(StatusCode.ERROR, "boom"),
        start_time=10,
        end_time=20,
        instrumentation_scope=InstrumentationScope("other-lib", "1.0"),
    )


def export(
    exporter: MaskingSpanExporter, memory: InMemorySpanExporter, span: ReadableSpan
) -> ReadableSpan:
    """``span`` as the wrapped exporter received it."""
    assert exporter.export([span]) is SpanExportResult.SUCCESS
    (out,) = memory.get_finished_spans()
    memory.clear()
    return out


@pytest.fixture
def memory() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def masking(memory: InMemorySpanExporter) -> MaskingSpanExporter:
    return MaskingSpanExporter(memory, PIIMasker())


def test_content_attributes_are_masked(masking, memory) -> None:
    span = make_span(
        {
            "gen_ai.input.messages": f'[{{"role": "user", "content": "I am {EMAIL}"}}]',
            "input.value": f"mail {EMAIL}",
            "llm.input_messages.0.message.content": f"from {EMAIL}",
            "gen_ai.output.messages": (f"reply to {EMAIL}", "no pii here"),
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 12,
        }
    )
    out = export(masking, memory, span)
    attributes = dict(out.attributes or {})
    for key in ("gen_ai.input.messages", "input.value", "llm.input_messages.0.message.content"):
        assert EMAIL not in attributes[key]
        assert "[EMAIL]" in attributes[key]
    assert attributes["gen_ai.output.messages"] == ("reply to [EMAIL]", "no pii here")
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert attributes["gen_ai.usage.input_tokens"] == 12
    # Everything but the attributes is the span as it was.
    assert (out.name, out.context, out.parent, out.kind) == (
        span.name,
        span.context,
        span.parent,
        span.kind,
    )
    assert (out.start_time, out.end_time) == (10, 20)
    assert out.status.status_code is StatusCode.ERROR
    assert out.status.description == "boom"
    assert out.resource.attributes["service.name"] == "svc"
    assert out.instrumentation_scope == span.instrumentation_scope
    assert list(out.links) == list(span.links)


def test_pyflare_previews_are_masked_as_input_and_output(masking, memory) -> None:
    span = make_span(
        {"pyflare.input.preview": f'{{"email":"{EMAIL}"}}', "pyflare.output.preview": EMAIL}
    )
    attributes = dict(export(masking, memory, span).attributes or {})
    assert attributes["pyflare.input.preview"] == '{"email":"[EMAIL]"}'
    assert attributes["pyflare.output.preview"] == "[EMAIL]"


def test_preview_field_actions_use_the_input_and_output_names(memory) -> None:
    config = PIIConfig(field_actions={"input": "allow", "output": "hash"}, hash_salt="s")
    masking = MaskingSpanExporter(memory, PIIMasker(config))
    span = make_span({"pyflare.input.preview": EMAIL, "pyflare.output.preview": EMAIL})
    attributes = dict(export(masking, memory, span).attributes or {})
    assert attributes["pyflare.input.preview"] == EMAIL
    assert attributes["pyflare.output.preview"].startswith("[EMAIL:")


def test_attributes_that_are_not_content_are_left_alone(masking, memory) -> None:
    span = make_span({"user.id": EMAIL, "http.route": "/chat", "gen_ai.request.model": "m"})
    assert export(masking, memory, span) is span


def test_spans_without_content_pass_through_unchanged(masking, memory) -> None:
    for span in (make_span({}), make_span({"gen_ai.request.model": "gpt-4o"})):
        assert export(masking, memory, span) is span


def test_content_in_events_is_masked(masking, memory) -> None:
    prompt = Event("gen_ai.content.prompt", {"gen_ai.prompt": f"hi, {EMAIL}"}, timestamp=15)
    other = Event("retry", {"attempt": 2}, timestamp=16)
    out = export(masking, memory, make_span({}, events=(prompt, other)))
    masked, kept = out.events
    assert masked.name == "gen_ai.content.prompt"
    assert masked.timestamp == 15
    assert masked.attributes == {"gen_ai.prompt": "hi, [EMAIL]"}
    assert kept is other


def test_field_actions_name_more_attributes_and_override_actions(memory) -> None:
    config = PIIConfig(field_actions={"app.ticket.body": "mask", "input.value": "allow"})
    masking = MaskingSpanExporter(memory, PIIMasker(config))
    out = export(
        masking,
        memory,
        make_span({"app.ticket.body": f"from {EMAIL}", "input.value": f"allowed {EMAIL}"}),
    )
    attributes = dict(out.attributes or {})
    assert attributes["app.ticket.body"] == "from [EMAIL]"
    assert attributes["input.value"] == f"allowed {EMAIL}"


def test_each_value_is_masked_as_its_own_field(memory) -> None:
    seen: list[tuple[str, str | None]] = []

    class ConfiguredMasker:
        config = SimpleNamespace(field_actions={"app.secret_note": "redact"})

        def mask(self, text: str, *, field: str | None = None) -> str:
            seen.append((text, field))
            return "***"

    masking = MaskingSpanExporter(memory, ConfiguredMasker())  # type: ignore[arg-type]
    out = export(masking, memory, make_span({"app.secret_note": "x", "other": "y"}))
    assert dict(out.attributes or {}) == {"app.secret_note": "***", "other": "y"}
    assert seen == [("x", "app.secret_note")]


@pytest.fixture
def fresh_warnings() -> Iterator[None]:
    reset_warnings()
    yield
    reset_warnings()


@pytest.mark.usefixtures("fresh_warnings")
def test_a_failing_masker_never_lets_content_through(
    memory, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenMasker:
        config = SimpleNamespace(field_actions={})

        def mask(self, text: str, *, field: str | None = None) -> str:
            raise RuntimeError("regex exploded")

    masking = MaskingSpanExporter(memory, BrokenMasker())  # type: ignore[arg-type]
    for _ in range(3):
        out = export(masking, memory, make_span({"input.value": EMAIL, "n": 1}))
        assert dict(out.attributes or {}) == {"input.value": MASKING_FAILED, "n": 1}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "regex exploded" in warnings[0].getMessage()


def test_shutdown_and_flush_reach_the_wrapped_exporter(masking, memory) -> None:
    assert masking.force_flush(1000) is True
    masking.shutdown()
    assert masking.export([make_span({})]) is SpanExportResult.FAILURE  # memory is shut down


def test_local_store_exporter_masks_while_converting(tmp_path: Any) -> None:
    from pyflare.exporters.duckdb import DuckDBSpanExporter
    from pyflare.exporters.masking import SpanMasker
    from pyflare.store.duckdb import DuckDBSpanStore

    store = DuckDBSpanStore(tmp_path / "masked.duckdb")
    exporter = DuckDBSpanExporter(
        lambda: store, span_masker=SpanMasker(PIIMasker(), preview_chars=20)
    )
    original = {
        "gen_ai.input.messages": f'[{{"role": "user", "content": "mail {EMAIL}"}}]',
        "pyflare.output.preview": "call +1 415 555 0100 " + "x" * 40,
        "unrelated": EMAIL,  # not content, not named in field_actions: stored as is
    }
    event = Event("gen_ai.content.prompt", attributes={"gen_ai.prompt": EMAIL}, timestamp=15)
    span = make_span(original, events=(event,))
    assert exporter.export([span]) is SpanExportResult.SUCCESS
    (row,) = store.sql("SELECT attributes, output_preview, events FROM traces").to_pylist()
    attributes = dict(row["attributes"])
    assert EMAIL not in attributes["gen_ai.input.messages"]
    assert "[EMAIL]" in attributes["gen_ai.input.messages"]
    assert row["output_preview"] == "call [PHONE] xxxxxxx"  # masked, then cut to 20
    assert attributes["unrelated"] == EMAIL
    assert dict(row["events"][0]["attributes"]) == {"gen_ai.prompt": "[EMAIL]"}
    # The span itself (still referenced by the application) was not changed.
    assert span.attributes["gen_ai.input.messages"] == original["gen_ai.input.messages"]
    exporter.shutdown()
