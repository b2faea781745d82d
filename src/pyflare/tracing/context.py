"""Who and what a span is for: user, session, feature, team, environment.

The values live in OpenTelemetry baggage, so they follow the current context
into child spans, asyncio tasks, threads (see :mod:`pyflare.tracing.threads`)
and, through the W3C ``baggage`` header, into other processes. A span
processor copies them onto every span when it starts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

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


@contextmanager
def context(
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    feature_id: str | None = None,
    team: str | None = None,
    environment: str | None = None,
    attributes: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Tag every span started inside the block with who and what it is for.

    ``attributes`` adds further string tags under their own keys. Nested blocks
    add to (and override) the outer ones. Usable as a decorator on sync code.
    """
    values = {
        CONTEXT_KEYS["user_id"]: user_id,
        CONTEXT_KEYS["session_id"]: session_id,
        CONTEXT_KEYS["feature_id"]: feature_id,
        CONTEXT_KEYS["team"]: team,
        CONTEXT_KEYS["environment"]: environment,
    }
    names = {v: k for k, v in CONTEXT_KEYS.items()}
    ctx: Context = otel_context.get_current()
    for key, value in values.items():
        if value is not None:
            ctx = baggage.set_baggage(key, _check(names[key], value), ctx)
    if attributes is not None:
        if not isinstance(attributes, Mapping):
            raise InvalidArgumentError(
                "pyflare.context(attributes=...) must be a mapping of strings to strings"
            )
        for key, value in attributes.items():
            if not isinstance(key, str) or not key:
                raise InvalidArgumentError(
                    f"pyflare.context(attributes=...) keys must be non-empty strings, got {key!r}"
                )
            ctx = baggage.set_baggage(key, _check(key, value), ctx)
        extra = otel_context.get_value(_EXTRA_KEYS, ctx)
        known: frozenset[str] = extra if isinstance(extra, frozenset) else frozenset()
        ctx = otel_context.set_value(_EXTRA_KEYS, known | frozenset(attributes), ctx)
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


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
