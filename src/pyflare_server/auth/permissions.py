"""Roles, permissions and the permission every route declares (spec §7).

A permission is ``resource:action`` (``traces:read``), optionally narrowed
(``costs:read:own``: only the caller's own costs). A role grants a list of them,
where ``*`` matches everything and ``alerts:*`` every action on alerts. Every route's
endpoint declares the one permission it needs with :func:`requires`; a test walks
the app's routes and fails on any endpoint without one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final, TypeVar

__all__ = [
    "PUBLIC",
    "ROLES",
    "allows",
    "permission_of",
    "requires",
]

#: Declared by endpoints anyone may call (health checks).
PUBLIC: Final = "public"

#: The spec's roles and what each may do.
ROLES: Final[Mapping[str, tuple[str, ...]]] = {
    "admin": ("*",),
    "developer": (
        "traces:read",
        "metrics:read",
        "costs:read",
        "drift:read",
        "alerts:read",
        "query:execute",
    ),
    "viewer": ("traces:read", "metrics:read", "costs:read:own", "drift:read"),
    "operator": ("traces:read", "metrics:read", "alerts:*", "drift:read", "drift:configure"),
    # Not in the spec: what OpenTelemetry SDKs and Collectors sending OTLP need, and
    # nothing else, so a key deployed with every service cannot read anything back.
    "ingest": ("traces:write", "metrics:write", "logs:write"),
}

_F = TypeVar("_F", bound=Callable[..., object])
_ATTRIBUTE: Final = "__pyflare_permission__"


def requires(permission: str) -> Callable[[_F], _F]:
    """Mark an endpoint with the permission a caller needs (or :data:`PUBLIC`)."""
    if not permission or not isinstance(permission, str):
        raise ValueError(f"a permission is a non-empty string, got {permission!r}")

    def mark(endpoint: _F) -> _F:
        setattr(endpoint, _ATTRIBUTE, permission)
        return endpoint

    return mark


def permission_of(endpoint: object) -> str | None:
    """The permission ``endpoint`` declared with :func:`requires`, or None."""
    value = getattr(endpoint, _ATTRIBUTE, None)
    return value if isinstance(value, str) else None


def allows(granted: Iterable[str], needed: str) -> bool:
    """Whether permissions ``granted`` cover ``needed``.

    ``*`` covers everything; ``alerts:*`` covers ``alerts:read`` and
    ``alerts:acknowledge``; ``costs:read`` covers ``costs:read:own`` (all costs
    include one's own), never the other way round.
    """
    if needed == PUBLIC:
        return True
    wanted = needed.split(":")
    for permission in granted:
        parts = permission.split(":")
        if parts == ["*"]:
            return True
        if len(parts) <= len(wanted) and all(
            p == w or (p == "*" and i == len(parts) - 1)
            for i, (p, w) in enumerate(zip(parts, wanted, strict=False))
        ):
            return True
    return False
