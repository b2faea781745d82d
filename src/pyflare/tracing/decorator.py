"""``@pyflare.trace``: one span per call of a function, method or generator.

The wrappers are closures specialised per decorated function (sync, async,
generator, async generator) with the span name, kind and attributes worked
out once at decoration time, because they run on every call of user code.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from typing import Any, ParamSpec, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace

from pyflare import semconv as sc
from pyflare._runtime import STATE, warn_once
from pyflare.errors import InvalidArgumentError
from pyflare.tracing.capture import render_arguments, render_preview
from pyflare.tracing.spans import SpanOptions, record_error

__all__ = ["trace"]

P = ParamSpec("P")
R = TypeVar("R")

_CAPTURE_MODES = ("all", "inputs", "off")
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_OUTPUT_ITEMS = "pyflare.output.items"
_CLOSED_EARLY = "pyflare.output.closed_early"


class _Binder:
    """Maps a call's ``(args, kwargs)`` to parameter names, cheaply.

    ``inspect.Signature.bind`` costs several microseconds; this keeps only what
    capture needs: the names of positional parameters, the ``*args`` name, and
    whether the first parameter is ``self``/``cls`` (not captured).
    """

    __slots__ = ("names", "skip", "varargs")

    def __init__(self, func: Callable[..., Any]) -> None:
        try:
            parameters = list(inspect.signature(func).parameters.values())
        except (TypeError, ValueError):
            parameters = []
        self.names = [p.name for p in parameters if p.kind in _POSITIONAL]
        self.varargs = next(
            (p.name for p in parameters if p.kind is inspect.Parameter.VAR_POSITIONAL), "args"
        )
        self.skip = 1 if self.names[:1] in (["self"], ["cls"]) else 0

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        names = self.names
        bound = dict(zip(names[self.skip :], args[self.skip :], strict=False))
        if len(args) > len(names):
            bound[self.varargs] = args[len(names) :]
        if kwargs:
            bound.update(kwargs)
        return bound


def _capture_input(span: otel_trace.Span, binder: _Binder, args: Any, kwargs: Any) -> None:
    # PII in previews is masked on the way out (pyflare.exporters.masking), in the export
    # thread, so the caller doesn't pay for it.
    try:
        rendered = render_arguments(
            binder.bind(args, kwargs), max_chars=STATE.max_chars + STATE.preview_margin
        )
        span.set_attributes({sc.INPUT_PREVIEW: rendered.preview, sc.INPUT_HASH: rendered.digest})
    except Exception as exc:  # capture must never break the call
        warn_once("capture-input", "PyFlare could not capture a function's input: %r", exc)


def _capture_output(span: otel_trace.Span, value: object) -> None:
    try:
        limit = STATE.max_chars + STATE.preview_margin
        span.set_attribute(sc.OUTPUT_PREVIEW, render_preview(value, max_chars=limit))
    except Exception as exc:
        warn_once("capture-output", "PyFlare could not capture a function's output: %r", exc)


class _Items:
    """Collects what a generator yields, bounded, for the output preview."""

    __slots__ = ("collect", "count", "items", "size", "strings")

    def __init__(self, collect: bool) -> None:
        self.collect = collect  # off: count only, never keep what was yielded alive
        self.count = 0
        self.items: list[object] = []
        self.size = 0
        self.strings = True

    def add(self, item: object) -> None:
        self.count += 1
        if not self.collect or self.size > STATE.max_chars:
            return
        self.items.append(item)
        if isinstance(item, str):
            self.size += len(item)
        else:
            self.strings = False
            self.size += 16

    def finish(self, span: otel_trace.Span) -> None:
        span.set_attribute(_OUTPUT_ITEMS, self.count)
        if STATE.capture_outputs and self.items:
            # Streamed text (LLM tokens) reads best joined; anything else as a list.
            value: object = (
                "".join(str(item) for item in self.items) if self.strings else self.items
            )
            _capture_output(span, value)


def _wrap_function(
    func: Callable[..., Any], name: str, options: SpanOptions, capture: str | None
) -> Callable[..., Any]:
    binder = _Binder(func)
    kind = options.otel_kind
    static = options.attributes
    state = STATE
    inputs_on = capture != "off"
    outputs_on = capture not in ("off", "inputs")
    attach = otel_context.attach
    detach = otel_context.detach
    set_span_in_context = otel_trace.set_span_in_context

    def start(args: Any, kwargs: Any) -> otel_trace.Span:
        span = state.tracer.start_span(name, kind=kind, attributes=static, start_time=state.clock())
        if inputs_on and state.capture_inputs and span.is_recording():
            _capture_input(span, binder, args, kwargs)
        return span

    def outputs(span: otel_trace.Span) -> bool:
        return outputs_on and state.capture_outputs and span.is_recording()

    def finish(span: otel_trace.Span, items: _Items, closed_early: bool) -> None:
        if span.is_recording():
            if outputs(span):
                items.finish(span)
            else:
                span.set_attribute(_OUTPUT_ITEMS, items.count)
            if closed_early:
                span.set_attribute(_CLOSED_EARLY, True)
        span.end(end_time=state.clock())

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            span = start(args, kwargs)
            ctx = set_span_in_context(span)
            items = _Items(outputs(span))
            closed_early = False
            try:
                token = attach(ctx)
                try:
                    agen = func(*args, **kwargs)
                finally:
                    detach(token)
                sent: Any = None
                thrown: BaseException | None = None
                while True:
                    token = attach(ctx)
                    try:
                        if thrown is not None:
                            item = await agen.athrow(thrown)
                            thrown = None
                        else:
                            item = await agen.asend(sent)
                    except StopAsyncIteration:
                        break
                    finally:
                        detach(token)
                    items.add(item)
                    try:
                        sent = yield item
                    except GeneratorExit:
                        closed_early = True
                        token = attach(ctx)
                        try:
                            await agen.aclose()
                        finally:
                            detach(token)
                        raise
                    except BaseException as exc:
                        thrown = exc
            except GeneratorExit:
                raise
            except BaseException as exc:
                record_error(span, exc)
                raise
            finally:
                finish(span, items, closed_early)

        return async_gen_wrapper

    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            span = start(args, kwargs)
            ctx = set_span_in_context(span)
            items = _Items(outputs(span))
            closed_early = False
            result: Any = None
            try:
                token = attach(ctx)
                try:
                    gen = func(*args, **kwargs)
                finally:
                    detach(token)
                sent: Any = None
                thrown: BaseException | None = None
                while True:
                    token = attach(ctx)
                    try:
                        if thrown is not None:
                            item = gen.throw(thrown)
                            thrown = None
                        else:
                            item = gen.send(sent)
                    except StopIteration as stop:
                        result = stop.value
                        break
                    finally:
                        detach(token)
                    items.add(item)
                    try:
                        sent = yield item
                    except GeneratorExit:
                        closed_early = True
                        token = attach(ctx)
                        try:
                            gen.close()
                        finally:
                            detach(token)
                        raise
                    except BaseException as exc:
                        thrown = exc
            except GeneratorExit:
                raise
            except BaseException as exc:
                record_error(span, exc)
                raise
            finally:
                finish(span, items, closed_early)
            return result

        return gen_wrapper

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            span = start(args, kwargs)
            token = attach(set_span_in_context(span))
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                record_error(span, exc)
                raise
            else:
                if outputs(span):
                    _capture_output(span, result)
                return result
            finally:
                detach(token)
                span.end(end_time=state.clock())

        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        span = start(args, kwargs)
        token = attach(set_span_in_context(span))
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            record_error(span, exc)
            raise
        else:
            if outputs(span):
                _capture_output(span, result)
            return result
        finally:
            detach(token)
            span.end(end_time=state.clock())

    return wrapper


def _code_of(func: Any) -> Any:
    """What names a callable: the function inside partials and bound methods."""
    for _ in range(16):  # partials of partials; bounded against odd objects
        inner = getattr(func, "func", None) if isinstance(func, functools.partial) else None
        inner = inner if inner is not None else getattr(func, "__func__", None)
        if inner is None:
            return func
        func = inner
    return func


def _decorate(
    target: Any,
    *,
    name: str | None,
    kind: str | None,
    inference_type: str | None,
    model_id: str | None,
    model_version: str | None,
    capture: str | None,
    attributes: Mapping[str, Any] | None,
) -> Any:
    method_type: type[classmethod[Any, Any, Any]] | type[staticmethod[Any, Any]] | None = None
    func = target
    if isinstance(target, classmethod | staticmethod):
        method_type = type(target)
        func = target.__func__
    if not callable(func):
        raise InvalidArgumentError(
            f"@pyflare.trace decorates functions and methods, got {type(target).__name__} "
            f"{target!r:.80}"
        )
    if inspect.isclass(func):
        raise InvalidArgumentError(
            f"@pyflare.trace decorates functions and methods, not classes ({func.__qualname__}); "
            "decorate the methods to trace instead"
        )
    code = _code_of(func)
    qualname = getattr(code, "__qualname__", None)
    if not isinstance(qualname, str):
        qualname = type(code).__qualname__  # a callable object: name its class
    span_name = name if name is not None else qualname
    options = SpanOptions(
        where=f"@pyflare.trace on {span_name}",
        kind=kind,
        inference_type=inference_type,
        model_id=model_id,
        model_version=model_version,
        attributes=attributes,
    )
    module = getattr(code, "__module__", None)
    # OTel's code.function.name is the fully qualified name.
    options.attributes.setdefault(
        sc.CODE_FUNCTION, f"{module}.{qualname}" if isinstance(module, str) else qualname
    )
    wrapped = _wrap_function(func, span_name, options, capture)
    if method_type is not None:
        return method_type(wrapped)
    return wrapped


@overload
def trace(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def trace(
    name: str | None = None,
    /,
    *,
    kind: str | None = None,
    inference_type: str | None = None,
    model_id: str | None = None,
    model_version: str | None = None,
    capture: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def trace(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    kind: str | None = None,
    inference_type: str | None = None,
    model_id: str | None = None,
    model_version: str | None = None,
    capture: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """Trace every call of a function as a span.

    Use it bare (``@pyflare.trace``), with a span name (``@pyflare.trace("rank")``)
    or with options. Works on sync and async functions, generators and async
    generators (the span covers the whole iteration and ends when it finishes,
    is closed or is abandoned), methods, classmethods and staticmethods.

    Args:
        name: span name; defaults to the function's qualified name.
        kind: what the span does: llm, chain, tool, retriever, embedding, agent,
            reranker, guardrail, evaluator, workflow, task, inference, or an
            OpenTelemetry kind (internal, client, server, producer, consumer).
        inference_type: llm, embedding, classification, regression,
            object_detection or custom.
        model_id, model_version: the model this call runs.
        capture: override content capture for this function: all, inputs or off.
        attributes: static attributes added to every span.

    Exceptions mark the span as an error, are recorded as an event and are
    re-raised unchanged.
    """
    if capture is not None and capture not in _CAPTURE_MODES:
        raise InvalidArgumentError(
            f"@pyflare.trace(capture={capture!r}) is not valid; expected one of "
            f"{', '.join(_CAPTURE_MODES)}"
        )
    if name is not None and (not isinstance(name, str) or not name):
        raise InvalidArgumentError(
            f"@pyflare.trace(name=...) must be a non-empty string, got {name!r}"
        )
    settings: dict[str, Any] = {
        "kind": kind,
        "inference_type": inference_type,
        "model_id": model_id,
        "model_version": model_version,
        "capture": capture,
        "attributes": attributes,
    }
    if isinstance(func, str):
        # @pyflare.trace("span name")
        if name is not None:
            raise InvalidArgumentError("@pyflare.trace got the span name twice")
        span_name = func

        def with_name(target: Any) -> Any:
            return _decorate(target, name=span_name, **settings)

        return with_name
    if func is None:

        def with_options(target: Any) -> Any:
            return _decorate(target, name=name, **settings)

        # Validate options now, so a bad kind fails where it is written.
        SpanOptions(
            where="@pyflare.trace",
            kind=kind,
            inference_type=inference_type,
            model_id=model_id,
            model_version=model_version,
            attributes=attributes,
        )
        return with_options
    return _decorate(func, name=name, **settings)
