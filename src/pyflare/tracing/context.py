"""Who and what a span is for: user, session, feature, team, environment.

The values live in OpenTelemetry baggage, so they follow the current context
into child spans, asyncio tasks, threads (see :mod:`pyflare.tracing.threads`)
and, through the W3C ``baggage`` header, into other processes. A span
processor copies them onto every span when it starts.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from contextvars import Token
from typing import Any, Final, ParamSpec, TypeVar

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.context import Context

from pyflare import semconv as sc
from pyflare.errors import InvalidArgumentError

__all__ = ["CONTEXT_KEYS", "context", "context_tags", "current_context"]

#: Argument of :func:`context` -> span attribute and baggage key.
CONTEXT_KEYS: Final[dict[str, str]] = {
    "user_id": sc.USER_ID,
    "session_id": sc.SESSION_ID,
    "feature_id": sc.FEATURE_ID,
    "team": sc.TEAM,
    "environment": sc.ENVIRONMENT,
}
_BAGGAGE_KEYS: Final = frozenset(CONTEXT_KEYS.values())
_MAX_VALUE_CHARS = 256
P = ParamSpec("P")
R = TypeVar("R")
# Extra tag keys set through context(attributes=...) in this process. Other
# baggage (from upstream services) is not copied onto spans: it may carry
# anything, and only PyFlare's own keys have a known meaning.
_EXTRA_KEYS = otel_context.create_key("pyflare-context-extra-keys")


def _check(name: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidArgumentError(
            f"pyflare.context({name}=...) must be a string, got {type(value).__name__}"
        )
    text = str(value)
    if not text or len(text) > _MAX_VALUE_CHARS:
        raise InvalidArgumentError(
            f"pyflare.context({name}=...) must be 1 to {_MAX_VALUE_CHARS} characters, "
            f"got {len(text)}"
        )
    return text


class context:  # lower case: it is used like a function, with pyflare.context(...)
    """Tag every span started inside a block, or a call, with who and what it is for.

    ``with pyflare.context(user_id="u1", session_id="s9"): ...`` or, as a
    decorator, ``@pyflare.context(feature_id="search")`` on a sync or async
    function. ``attributes`` adds further string tags under their own keys.
    Nested contexts add to (and override) the outer ones. Values are checked
    here, where they are written.
    """

    __slots__ = ("_extra", "_tags", "_tokens")

    def __init__(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        feature_id: str | None = None,
        team: str | None = None,
        environment: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        given = {
            "user_id": user_id,
            "session_id": session_id,
            "feature_id": feature_id,
            "team": team,
            "environment": environment,
        }
        tags = [(CONTEXT_KEYS[name], _check(name, v)) for name, v in given.items() if v is not None]
        extra: frozenset[str] = frozenset()
        if attributes is not None:
            if not isinstance(attributes, Mapping):
                raise InvalidArgumentError(
                    "pyflare.context(attributes=...) must be a mapping of strings to strings"
                )
            for key, value in attributes.items():
                if not isinstance(key, str) or not key:
                    raise InvalidArgumentError(
                        "pyflare.context(attributes=...) keys must be non-empty strings, "
                        f"got {key!r}"
                    )
                tags.append((key, _check(key, value)))
            extra = frozenset(attributes)
        self._tags = tuple(tags)
        self._extra = extra
        self._tokens: list[Token[Context]] = []

    def _attach(self) -> Token[Context]:
        ctx: Context = otel_context.get_current()
        for key, value in self._tags:
            ctx = baggage.set_baggage(key, value, ctx)
        if self._extra:
            known = otel_context.get_value(_EXTRA_KEYS, ctx)
            previous: frozenset[str] = known if isinstance(known, frozenset) else frozenset()
            ctx = otel_context.set_value(_EXTRA_KEYS, previous | self._extra, ctx)
        return otel_context.attach(ctx)

    def __enter__(self) -> None:
        self._tokens.append(self._attach())

    def __exit__(self, *exc_info: object) -> None:
        otel_context.detach(self._tokens.pop())

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise InvalidArgumentError(
                "@pyflare.context can't decorate a generator (its body runs between the "
                "caller's steps); use `with pyflare.context(...)` inside it instead"
            )
        if not callable(func):
            raise InvalidArgumentError(
                f"@pyflare.context decorates functions, got {type(func).__name__}"
            )
        attach = self._attach
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                token = attach()
                try:
                    return await func(*args, **kwargs)
                finally:
                    otel_context.detach(token)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            token = attach()
            try:
                return func(*args, **kwargs)
            finally:
                otel_context.detach(token)

        return wrapper


def current_context() -> dict[str, str]:
    """The context values in effect here: PyFlare's keys and extra tags."""
    ctx = otel_context.get_current()
    return context_tags(ctx)


def context_tags(ctx: Context | None) -> dict[str, str]:
    """The tags to copy onto a span started in ``ctx`` (None: the current context)."""
    entries = baggage.get_all(ctx)
    if not entries:
        return {}
    extra = otel_context.get_value(_EXTRA_KEYS, ctx)
    known: frozenset[str] = extra if isinstance(extra, frozenset) else frozenset()
    return {
        k: str(v)
        for k, v in entries.items()
        if k in _BAGGAGE_KEYS or k.startswith("pyflare.") or k in known
    }
