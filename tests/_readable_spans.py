"""Finished OTel SDK spans built by hand, for tests of stores, records and the API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

T0 = 1_767_225_600_000_000_123  # 2026-01-01T00:00:00.000000123Z: ns must survive
MS = 1_000_000


def make_span(
    trace: int,
    span: int,
    *,
    parent: int | None = None,
    name: str = "op",
    start: int = T0,
    duration: int = MS,
    service: str = "svc",
    status: StatusCode = StatusCode.UNSET,
    message: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    events: Sequence[Event] = (),
    resource: Mapping[str, Any] | None = None,
) -> ReadableSpan:
    return ReadableSpan(
        name=name,
        context=SpanContext(trace, span, is_remote=False),
        parent=None if parent is None else SpanContext(trace, parent, is_remote=False),
        resource=Resource({"service.name": service, **(resource or {})}),
        attributes=dict(attributes or {}),
        events=list(events),
        kind=kind,
        status=Status(status, message),
        start_time=start,
        end_time=start + duration,
    )
