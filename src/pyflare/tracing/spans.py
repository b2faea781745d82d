"""Spans by hand: ``pyflare.span()``, ``record_usage()``, ``set_model()``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from pyflare import semconv as sc
from pyflare._runtime import STATE, warn_once
from pyflare.errors import InvalidArgumentError

__all__ = [
    "SpanOptions",
    "record_error",
    "record_usage",
    "set_model",
    "span",
]

_OTEL_KINDS = {
    "internal": SpanKind.INTERNAL,
    "client": SpanKind.CLIENT,
    "server": SpanKind.SERVER,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}
_ATTRIBUTE_TYPES = (str, bool, int, float)


class SpanOptions:
    """Validated options shared by ``@trace`` and ``span()``: computed once."""

    __slots__ = ("attributes", "otel_kind")

    def __init__(
        self,
        *,
        where: str,
        kind: str | None,
        inference_type: str | None,
        model_id: str | None,
        model_version: str | None,
        attributes: Mapping[str, Any] | None,
    ) -> None:
        static: dict[str, Any] = {}
        self.otel_kind = SpanKind.INTERNAL
        if kind is not None:
            if not isinstance(kind, str) or kind.lower() not in sc.SPAN_KINDS:
                raise InvalidArgumentError(
                    f"{where}: unknown kind {kind!r}; expected one of {', '.join(sc.SPAN_KINDS)}"
                )
            kind = kind.lower()
            self.otel_kind = _OTEL_KINDS[sc.SPAN_KINDS[kind]]
            if kind not in _OTEL_KINDS:
                static[sc.SPAN_KIND] = kind
                static[sc.OI_SPAN_KIND] = kind.upper()
        if inference_type is not None:
            if not isinstance(inference_type, str) or inference_type not in sc.INFERENCE_TYPES:
                raise InvalidArgumentError(
                    f"{where}: unknown inference_type {inference_type!r}; expected one of "
                    f"{', '.join(sc.INFERENCE_TYPES)}"
                )
            static[sc.INFERENCE_TYPE] = inference_type
        for label, value, key in (
            ("model_id", model_id, sc.MODEL_ID),
            ("model_version", model_version, sc.MODEL_VERSION),
        ):
            if value is None:
                continue
            if not isinstance(value, str) or not value:
                raise InvalidArgumentError(
                    f"{where}: {label} must be a non-empty string, got {value!r}"
                )
            static[key] = value
        if attributes is not None:
            static.update(check_attributes(attributes, where=where))
        self.attributes = static


def check_attributes(attributes: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Validate user attributes: string keys, OTel-compatible values."""
    if not isinstance(attributes, Mapping):
        raise InvalidArgumentError(
            f"{where}: attributes must be a mapping, got {type(attributes).__name__}"
        )
    checked: dict[str, Any] = {}
    for key, value in attributes.items():
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(
                f"{where}: attribute keys must be non-empty strings, got {key!r}"
            )
        if isinstance(value, _ATTRIBUTE_TYPES):
            checked[key] = value
        elif isinstance(value, list | tuple) and all(
            isinstance(v, _ATTRIBUTE_TYPES) for v in value
        ):
            checked[key] = tuple(value)
        else:
            raise InvalidArgumentError(
                f"{where}: attribute {key!r} has a {type(value).__name__} value; "
                "expected str, bool, int, float or a list of them"
            )
    return checked


def record_error(span: trace.Span, exc: BaseException) -> None:
    """Mark ``span`` failed with ``exc``: status error and an exception event."""
    try:
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:1000]))
        span.record_exception(exc, escaped=True)
    except Exception as inner:  # telemetry must never mask the user's exception
        warn_once("record-error", "PyFlare could not record an exception on a span: %r", inner)


@contextmanager
def span(
    name: str,
    *,
    kind: str | None = None,
    inference_type: str | None = None,
    model_id: str | None = None,
    model_version: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[trace.Span]:
    """Time a block as a span, a child of the current one; yields the OTel span.

    An exception leaving the block marks the span as an error, records it as an
    event and propagates unchanged.
    """
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"pyflare.span() needs a non-empty name, got {name!r}")
    options = SpanOptions(
        where=f"pyflare.span({name!r})",
        kind=kind,
        inference_type=inference_type,
        model_id=model_id,
        model_version=model_version,
        attributes=attributes,
    )
    clock = STATE.clock
    current = STATE.tracer.start_span(
        name, kind=options.otel_kind, attributes=options.attributes, start_time=clock()
    )
    token = otel_context.attach(trace.set_span_in_context(current))
    try:
        yield current
    except BaseException as exc:
        record_error(current, exc)
        raise
    finally:
        otel_context.detach(token)
        current.end(end_time=clock())


def _token_count(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(
            f"pyflare.record_usage({name}=...) must be a non-negative integer, got {value!r}"
        )
    return value


def record_usage(
    *,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    total_tokens: int | None = None,
    model: str | None = None,
    provider: str | None = None,
) -> None:
    """Record an LLM call's token usage on the current span (hand instrumentation).

    Marks the span as an ``llm`` inference. Outside a recording span it does
    nothing (and says so once in the log).
    """
    counts = {
        sc.INPUT_TOKENS: _token_count("input_tokens", input_tokens),
        sc.OUTPUT_TOKENS: _token_count("output_tokens", output_tokens),
        sc.TOTAL_TOKENS: _token_count("total_tokens", total_tokens),
    }
    for label, value in (("model", model), ("provider", provider)):
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidArgumentError(
                f"pyflare.record_usage({label}=...) must be a non-empty string, got {value!r}"
            )
    current = trace.get_current_span()
    if not current.is_recording():
        warn_once(
            "record-usage-no-span",
            "pyflare.record_usage() was called outside a recording span; usage not recorded",
        )
        return
    if counts[sc.TOTAL_TOKENS] is None and input_tokens is not None and output_tokens is not None:
        counts[sc.TOTAL_TOKENS] = input_tokens + output_tokens
    attributes: dict[str, Any] = {k: v for k, v in counts.items() if v is not None}
    if model is not None:
        attributes[sc.MODEL_ID] = model
    if provider is not None:
        attributes[sc.PROVIDER] = provider
    existing = getattr(current, "attributes", None) or {}
    if sc.INFERENCE_TYPE not in existing:
        attributes[sc.INFERENCE_TYPE] = "llm"
    current.set_attributes(attributes)


def set_model(
    model_id: str | None = None,
    *,
    model_version: str | None = None,
    inference_type: str | None = None,
) -> None:
    """Set the model fields of the current span (when they are known only at run time)."""
    options = SpanOptions(
        where="pyflare.set_model()",
        kind=None,
        inference_type=inference_type,
        model_id=model_id,
        model_version=model_version,
        attributes=None,
    )
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(options.attributes)
