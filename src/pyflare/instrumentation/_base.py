"""What PyFlare's instrumentors share: the base class, content, errors, cost, budgets.

Content (prompts, completions) goes into span attributes that PyFlare's exporters
mask on the way out (``pyflare.input.preview``, ``gen_ai.input.messages``… see
:mod:`pyflare.exporters.masking`), so instrumented calls never pay for masking.
Previews are cut here to ``capture_max_chars`` plus the masking margin, so a
finding cut by the preview's end is still whole when it is masked.

Cost, budgets and token estimates come from :mod:`pyflare.cost`, imported on the
first call that needs them; without it, spans simply carry no cost.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection
from typing import Any, ClassVar

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,  # the module opts out of type checking, hence the ignore
)
from opentelemetry.trace import Status, StatusCode

from pyflare._runtime import INSTRUMENTATION_NAME, STATE, warn_once
from pyflare._version import __version__
from pyflare.errors import BudgetExceeded, InvalidArgumentError

__all__ = [
    "ERROR_TYPE",
    "HTTP_STATUS",
    "PyFlareInstrumentor",
    "content_digest",
    "enforce_budget",
    "estimate_message_tokens",
    "estimate_tokens",
    "json_text",
    "preview",
    "price_call",
    "record_failure",
]

logger = logging.getLogger("pyflare.instrumentation")

ERROR_TYPE = "error.type"
HTTP_STATUS = "http.response.status_code"


class PyFlareInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """An OpenTelemetry ``BaseInstrumentor`` with PyFlare's conventions.

    Subclasses name the distribution they patch and its supported versions, the
    options their ``instrument()`` takes (``tracer_provider`` always), and implement
    ``_instrument``/``_uninstrument``. ``instrument()`` on a version outside the range
    logs why and patches nothing (BaseInstrumentor's dependency check).
    """

    distribution: ClassVar[str]
    supported: ClassVar[str]  # a version specifier, such as ">=1.40,<4"
    options: ClassVar[frozenset[str]] = frozenset()

    def instrumentation_dependencies(self) -> Collection[str]:
        return (f"{self.distribution} {self.supported}",)

    def check_options(self, kwargs: dict[str, Any]) -> None:
        """Reject options this instrumentor does not take, naming them."""
        unknown = sorted(set(kwargs) - self.options - {"tracer_provider"})
        if unknown:
            raise InvalidArgumentError(
                f"{type(self).__name__}.instrument() got unknown option(s) {', '.join(unknown)}; "
                f"accepted: {', '.join(sorted(self.options | {'tracer_provider'}))}"
            )


def tracer_for(provider: trace.TracerProvider | None) -> Callable[[], trace.Tracer]:
    """How an instrumentor finds its tracer on each call.

    Without an explicit provider it reads ``STATE.tracer`` per call, so spans follow
    whatever ``pyflare.init()`` (or a test capture) installed after instrumenting.
    """
    if provider is None:
        return lambda: STATE.tracer
    tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__)
    return lambda: tracer


def preview(text: str) -> str:
    """``text`` cut to the configured preview length (plus the masking margin)."""
    limit = STATE.max_chars + STATE.preview_margin
    return text if len(text) <= limit else text[:limit]


def content_digest(text: str, *, json: bool = False) -> str:
    """The input hash stored beside a preview, as ``@pyflare.trace`` computes it.

    blake2b-128 (hex) of a tag (``j`` for a JSON rendering, ``t`` for plain text) and
    the text's UTF-8.
    """
    digest = hashlib.blake2b(b"j" if json else b"t", digest_size=16)
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_unset=True)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def json_text(value: Any) -> str:
    """``value`` as compact JSON (pydantic models dumped, anything else as its str)."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=_default).decode()
    except (TypeError, ValueError):
        return str(value)


def record_failure(span: trace.Span, exc: BaseException) -> None:
    """Mark ``span`` failed: status, ``error.type``, the HTTP status when known, an event."""
    try:
        attributes: dict[str, Any] = {ERROR_TYPE: type(exc).__qualname__}
        status_code = getattr(exc, "status_code", None)
        if type(status_code) is int:
            attributes[HTTP_STATUS] = status_code
        span.set_attributes(attributes)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:1000]))
        span.record_exception(exc, escaped=True)
    except Exception as inner:  # telemetry never masks the user's exception
        warn_once("instr-record-error", "PyFlare could not record a failed call: %r", inner)


class _Lazy:
    """pyflare.cost's functions, looked up once (None when unavailable)."""

    loaded = False
    enforce: Callable[[str | None], None] | None = None
    price_book: Callable[[], Any] | None = None
    count_tokens: Callable[[str, str | None], Any] | None = None
    count_message_tokens: Callable[[Any, str | None], Any] | None = None

    @classmethod
    def load(cls) -> None:
        try:
            from pyflare.cost.budgets import enforce

            cls.enforce = enforce
        except ImportError:
            cls.enforce = None
        try:
            from pyflare.cost.prices import PriceBook

            cls.price_book = PriceBook.default
        except ImportError:
            cls.price_book = None
        try:
            from pyflare.cost.tokens import count_message_tokens, count_tokens

            cls.count_tokens = count_tokens
            cls.count_message_tokens = count_message_tokens
        except ImportError:
            cls.count_tokens = cls.count_message_tokens = None
        cls.loaded = True


def enforce_budget(model: str | None) -> None:
    """Raise ``BudgetExceeded`` when a hard budget for this call is spent.

    Called before the request is sent. Any other failure of the check is logged and
    the call goes ahead.
    """
    if not _Lazy.loaded:
        _Lazy.load()
    enforce = _Lazy.enforce
    if enforce is None:
        return
    try:
        enforce(model)
    except BudgetExceeded:
        raise
    except Exception as exc:
        warn_once("instr-budget", "PyFlare's budget check failed; the call goes ahead: %r", exc)


# A framework's model-call span (LangChain's) and the provider call made inside it
# (OpenAI's span) are one model call. The framework puts a list in the context of its
# span; provider instrumentations append to it when they record a call below it, and
# the framework's span then leaves the tokens and the cost to the provider's span.
_PROVIDER_CALLS = otel_context.create_key("pyflare-provider-calls-below")


def with_provider_calls(ctx: otel_context.Context) -> tuple[otel_context.Context, list[str]]:
    """``ctx`` with a fresh list that provider calls recorded inside it are added to."""
    calls: list[str] = []
    return otel_context.set_value(_PROVIDER_CALLS, calls, ctx), calls


def note_provider_call(operation: str) -> None:
    """Tell the enclosing framework model span (if any) that this call has its own span."""
    calls = otel_context.get_value(_PROVIDER_CALLS)
    if isinstance(calls, list):
        calls.append(operation)


def price_call(
    model: str,
    provider: str | None,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int,
    reasoning_tokens: int,
    at_ns: int,
) -> dict[str, Any]:
    """The cost attributes of one call (``pyflare.cost.*``); empty when it can't be priced.

    An unpriced call gets no cost here: the exporter's cost processor marks it.
    """
    if not _Lazy.loaded:
        _Lazy.load()
    if _Lazy.price_book is None:
        return {}
    try:
        cost = _Lazy.price_book().cost(
            model,
            provider=provider,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=min(cached_input_tokens, input_tokens),
            reasoning_tokens=min(reasoning_tokens, output_tokens),
            at_ns=at_ns,
        )
    except Exception as exc:
        warn_once("instr-price", "PyFlare could not price a model call: %r", exc)
        return {}
    return {} if cost is None else dict(cost.span_attributes())


def estimate_tokens(text: str, model: str | None) -> int:
    """Tokens in ``text``: the model's encoding when available, else characters / 4."""
    if not _Lazy.loaded:
        _Lazy.load()
    if _Lazy.count_tokens is not None:
        try:
            return int(_Lazy.count_tokens(text, model).n)
        except Exception as exc:
            warn_once("instr-tokens", "PyFlare could not count tokens: %r", exc)
    return (len(text) + 3) // 4


def estimate_message_tokens(content: Any, model: str | None) -> int:
    """Tokens in a request's content: chat messages as OpenAI counts them, else as text."""
    if not _Lazy.loaded:
        _Lazy.load()
    if _Lazy.count_message_tokens is not None and isinstance(content, list | tuple):
        try:
            return int(_Lazy.count_message_tokens(content, model).n)
        except Exception as exc:
            warn_once("instr-message-tokens", "PyFlare could not count message tokens: %r", exc)
    return estimate_tokens(json_text(content), model)
