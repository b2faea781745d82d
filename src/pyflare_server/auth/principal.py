"""Who is calling: the principal a request authenticated as, and auth failures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pyflare_server.auth.permissions import ROLES

__all__ = ["ANONYMOUS", "AuthError", "Principal", "principal_for_roles"]


class AuthError(Exception):
    """A request refused by auth: 401 (who are you?) or 403 (not allowed).

    ``code`` is the problem's machine code (``unauthenticated``, ``invalid_token``,
    ``forbidden``); ``detail`` says what to send instead.
    """

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    ``subject`` identifies it for rate limiting and logs (``key:<key_id>``,
    ``jwt:<sub>``); ``user_id`` is whose costs ``costs:read:own`` shows.
    """

    via: Literal["api_key", "jwt", "anonymous"]
    subject: str
    roles: tuple[str, ...]
    permissions: tuple[str, ...]
    user_id: str | None = None
    key_id: str | None = None


#: Every request when auth is off: it may do anything.
ANONYMOUS = Principal(via="anonymous", subject="anonymous", roles=(), permissions=("*",))


def principal_for_roles(
    roles: tuple[str, ...],
    *,
    via: Literal["api_key", "jwt"],
    subject: str,
    user_id: str | None,
    key_id: str | None = None,
    missing: str = "the credentials",
) -> Principal:
    """A principal with the permissions of the known roles among ``roles``.

    Unknown roles grant nothing (the caller then gets 403 naming them).
    """
    permissions: list[str] = []
    for role in roles:
        permissions.extend(ROLES.get(role, ()))
    if not roles:
        roles = (f"<none in {missing}>",)
    return Principal(
        via=via,
        subject=subject,
        roles=roles,
        permissions=tuple(dict.fromkeys(permissions)),
        user_id=user_id,
        key_id=key_id,
    )
