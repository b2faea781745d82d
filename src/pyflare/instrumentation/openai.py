"""OpenAI: one span per ``chat.completions.create``, ``responses.create`` and
``embeddings.create`` call, sync and async, streamed or not.

::

    import pyflare
    pyflare.init(instrument="openai")     # or pyflare.instrument("openai")

Each span follows the OpenTelemetry GenAI semantic conventions (name
``"{operation} {model}"``, ``gen_ai.provider.name``, request parameters, response
id/model/finish reasons, usage including cached and reasoning tokens) and adds
PyFlare's fields: input/output previews (per the capture setting; masked on the way
out), the input hash, the names of requested tool calls, and the cost in
micro-dollars when the model has a price (``pyflare.cost.micros``). A failed call
records its status, ``error.type`` and HTTP status; the client's own retries happen
inside the one span. Before each request, hard budgets (``pyflare.budget``) are
checked and may raise ``pyflare.BudgetExceeded``.

Streams: see :mod:`pyflare.instrumentation._openai_stream`. A chat stream carries
token usage only when the caller asks for it (``stream_options={"include_usage":
True}``); otherwise tokens are estimated and flagged. ``instrument(
include_stream_usage=True)`` asks for usage on every chat stream whose caller did
not set ``include_usage`` themselves: exact tokens and cost, but those streams end
with one extra chunk whose ``choices`` list is empty, which code reading
``chunk.choices[0]`` on every chunk must allow for, hence opt-in.

Not covered: the ``.stream()`` and ``.parse()`` helpers (they bypass ``create``),
the legacy completions API, and the response fields of ``with_raw_response`` calls
(their span has the request side only).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from pyflare._runtime import STATE, warn_once
from pyflare.errors import InvalidArgumentError
from pyflare.instrumentation._base import (
    PyFlareInstrumentor,
    enforce_budget,
    note_provider_call,
    record_failure,
    tracer_for,
)
from pyflare.instrumentation._openai_request import CallInfo, endpoint, request_attributes
from pyflare.instrumentation._openai_response import RESPONSE_READERS
from pyflare.instrumentation._openai_stream import (
    AsyncStream,
    ChatChunks,
    ResponseEvents,
    StreamState,
    SyncStream,
)

__all__ = ["OpenAIInstrumentor"]

logger = logging.getLogger("pyflare.instrumentation")

# (module, class, operation): every create() PyFlare wraps, sync and async.
_TARGETS: Final = (
    ("openai.resources.chat.completions", "Completions", "chat"),
    ("openai.resources.chat.completions", "AsyncCompletions", "chat"),
    ("openai.resources.responses", "Responses", "responses"),
    ("openai.resources.responses", "AsyncResponses", "responses"),
    ("openai.resources.embeddings", "Embeddings", "embeddings"),
    ("openai.resources.embeddings", "AsyncEmbeddings", "embeddings"),
)


class _Settings:
    """What the wrappers read on every call, fixed at instrument() time."""

    __slots__ = ("active", "azure", "hosts", "stream_usage", "tracer")

    def __init__(
        self,
        tracer: Callable[[], trace.Tracer],
        stream_usage: bool,
        hosts: Mapping[str, str],
        azure: tuple[type, ...],
    ) -> None:
        self.tracer = tracer
        self.stream_usage = stream_usage
        self.hosts = dict(hosts)
        self.azure = azure
        # False once uninstrumented: a wrapper another library wrapped over keeps
        # passing calls through untouched.
        self.active = True


class _Patch:
    __slots__ = ("cls", "original", "wrapper")

    def __init__(self, cls: type, original: Any, wrapper: Any) -> None:
        self.cls = cls
        self.original = original
        self.wrapper = wrapper


class OpenAIInstrumentor(PyFlareInstrumentor):
    """Traces the ``openai`` client (see the module docstring).

    ``instrument()`` options: ``include_stream_usage`` (bool, default False: ask for
    usage on chat streams, see above), ``providers`` (host -> ``gen_ai.provider.name``
    for OpenAI-compatible servers PyFlare does not recognise), ``tracer_provider``.
    """

    distribution = "openai"
    supported = ">=1.40,<4"
    options = frozenset({"include_stream_usage", "providers"})

    def __init__(self) -> None:
        if not hasattr(self, "_patches"):  # a singleton: __init__ runs on every call
            self._patches: list[_Patch] = []
            self._settings: _Settings | None = None

    def _instrument(self, **kwargs: Any) -> None:
        self.check_options(kwargs)
        stream_usage = kwargs.get("include_stream_usage", False)
        if not isinstance(stream_usage, bool):
            raise InvalidArgumentError(
                f"include_stream_usage must be True or False, got {stream_usage!r}"
            )
        hosts = kwargs.get("providers") or {}
        if not isinstance(hosts, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in hosts.items()
        ):
            raise InvalidArgumentError(
                "providers must map host names to provider names (non-empty strings), "
                f"got {hosts!r}"
            )
        import openai

        azure = tuple(
            cls
            for cls in (
                getattr(openai, "AzureOpenAI", None),
                getattr(openai, "AsyncAzureOpenAI", None),
            )
            if isinstance(cls, type)
        )
        settings = _Settings(
            tracer_for(kwargs.get("tracer_provider")),
            stream_usage,
            {k.lower(): v for k, v in hosts.items()},
            azure,
        )
        patches: list[_Patch] = []
        for module_name, class_name, operation in _TARGETS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:  # an older client without this API
                continue
            cls = getattr(module, class_name, None)
            if not isinstance(cls, type) or "create" not in cls.__dict__:
                continue
            original = cls.__dict__["create"]
            make = _async_wrapper if class_name.startswith("Async") else _sync_wrapper
            wrapper = wrapt.wrap_function_wrapper(
                module, f"{class_name}.create", make(operation, settings)
            )
            patches.append(_Patch(cls, original, wrapper))
        self._patches = patches
        self._settings = settings

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._settings is not None:
            self._settings.active = False
        for patch in self._patches:
            if patch.cls.__dict__.get("create") is patch.wrapper:
                patch.cls.create = patch.original  # type: ignore[attr-defined]
            else:
                logger.info(
                    "another instrumentation wrapped %s.create after PyFlare; PyFlare's "
                    "wrapper stays inside it and passes calls through",
                    patch.cls.__name__,
                )
        self._patches = []
        self._settings = None


def _start(
    operation: str, settings: _Settings, instance: Any, kwargs: dict[str, Any]
) -> tuple[trace.Span, CallInfo, dict[str, Any]]:
    """Check budgets, start the span; returns it, the call's info and the kwargs to send."""
    model = kwargs.get("model")
    model = model if isinstance(model, str) and model else None
    enforce_budget(model)
    note_provider_call(operation)
    start = STATE.clock()
    where = endpoint(getattr(instance, "_client", None), settings.azure, settings.hosts)
    info = CallInfo(operation, model, where.provider, start)
    name = f"{'embeddings' if operation == 'embeddings' else 'chat'} {model or ''}".rstrip()
    span = settings.tracer().start_span(name, kind=SpanKind.CLIENT, start_time=start)
    if span.is_recording():
        if (
            settings.stream_usage
            and operation == "chat"
            and kwargs.get("stream") is True
            and not _has_usage_option(kwargs.get("stream_options"))
        ):
            given = kwargs.get("stream_options")
            kwargs = {
                **kwargs,
                "stream_options": {
                    **(given if isinstance(given, Mapping) else {}),
                    "include_usage": True,
                },
            }
        try:
            span.set_attributes(request_attributes(operation, kwargs, where, info))
        except Exception as exc:
            warn_once("instr-openai-request", "PyFlare could not read an OpenAI request: %r", exc)
    return span, info, kwargs


def _has_usage_option(stream_options: Any) -> bool:
    return isinstance(stream_options, Mapping) and "include_usage" in stream_options


def _finish(span: trace.Span, info: CallInfo, result: Any, settings: _Settings) -> Any:
    """Record a returned result; a stream keeps the span open until it ends."""
    if info.operation != "embeddings" and _is_stream(result):
        chunks = ChatChunks() if info.operation == "chat" else ResponseEvents()
        state = StreamState(span, info, chunks)
        return (
            AsyncStream(result, state)
            if hasattr(result, "__anext__")
            else SyncStream(result, state)
        )
    try:
        if span.is_recording():
            span.set_attributes(RESPONSE_READERS[info.operation](result, info))
    except Exception as exc:
        warn_once("instr-openai-response", "PyFlare could not read an OpenAI response: %r", exc)
    span.end(end_time=STATE.clock())
    return result


def _is_stream(result: Any) -> bool:
    # The client's Stream/AsyncStream: iterable, with the HTTP response attached.
    return (hasattr(result, "__next__") or hasattr(result, "__anext__")) and hasattr(
        result, "response"
    )


def _fail(span: trace.Span, exc: BaseException) -> None:
    record_failure(span, exc)
    span.end(end_time=STATE.clock())


def _sync_wrapper(operation: str, settings: _Settings) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not settings.active:
            return wrapped(*args, **kwargs)
        span, info, kwargs = _start(operation, settings, instance, kwargs)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _fail(span, exc)
            raise
        finally:
            otel_context.detach(token)
        return _finish(span, info, result, settings)

    return wrapper


def _async_wrapper(operation: str, settings: _Settings) -> Callable[..., Any]:
    async def wrapper(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not settings.active:
            return await wrapped(*args, **kwargs)
        span, info, kwargs = _start(operation, settings, instance, kwargs)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _fail(span, exc)
            raise
        finally:
            otel_context.detach(token)
        return _finish(span, info, result, settings)

    return wrapper
