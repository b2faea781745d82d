"""Credentials to a :class:`Principal`: API keys (hashed in the store) and JWT bearer tokens.

A request presents one of:

- the API key header (``server.auth.api_key_header``, ``X-API-Key``);
- ``Authorization: Bearer pf_…`` (an API key);
- ``Authorization: Bearer <JWT>`` when ``server.auth.jwt.enabled``;
- for WebSocket handshakes only (browsers cannot set headers there), the
  ``api_key`` or ``access_token`` query parameter.

Key records are looked up in the store (off the event loop) and kept
``cache_s`` seconds, so a revoked key stops working within that time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pyflare.errors import PyFlareError
from pyflare.store.base import SpanStore
from pyflare_server.auth.keys import matches, split_key
from pyflare_server.auth.principal import AuthError, Principal, principal_for_roles
from pyflare_server.auth.tokens import TokenVerifier
from pyflare_server.settings import AuthSettings

__all__ = ["Authenticator", "Credentials"]

logger = logging.getLogger(__name__)

_MAX_CACHED = 10_000


class Credentials:
    """What a request presented: an API key, a bearer token, or nothing."""

    __slots__ = ("api_key", "token")

    def __init__(self, api_key: str | None = None, token: str | None = None) -> None:
        self.api_key = api_key
        self.token = token


class Authenticator:
    """Checks credentials against the store's keys and the JWT settings."""

    def __init__(
        self,
        settings: AuthSettings,
        store: SpanStore,
        *,
        cache_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.header_name = settings.api_key_header
        self.header = self.header_name.lower()
        self._store = store
        self._tokens = TokenVerifier(settings.jwt) if settings.jwt.enabled else None
        self._cache_s = cache_s
        self._clock = clock
        self._now_ns = now_ns
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    @property
    def accepts_jwt(self) -> bool:
        return self._tokens is not None

    def credentials(
        self, headers: Mapping[str, str], query: Mapping[str, str] | None = None
    ) -> Credentials:
        """Pick the credentials out of (lowercase-named) headers, or the query of a handshake."""
        key = headers.get(self.header)
        if key is not None:
            return Credentials(api_key=key.strip())
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise AuthError(
                    401,
                    "unauthenticated",
                    "the Authorization header must read 'Bearer <API key or token>'",
                )
            value = value.strip()
            return (
                Credentials(api_key=value) if value.startswith("pf_") else Credentials(token=value)
            )
        if query is not None:
            if query.get("api_key"):
                return Credentials(api_key=query["api_key"])
            if query.get("access_token"):
                token = query["access_token"]
                return (
                    Credentials(api_key=token)
                    if token.startswith("pf_")
                    else Credentials(token=token)
                )
        return Credentials()

    def _missing(self) -> AuthError:
        how = f"an API key in the {self.header_name} header or 'Authorization: Bearer pf_…'"
        if self._tokens is not None:
            how += ", or a JWT as 'Authorization: Bearer <token>'"
        return AuthError(
            401,
            "unauthenticated",
            f"this endpoint needs credentials: send {how} (create keys with `pyflare keys create`)",
        )

    async def authenticate(self, credentials: Credentials) -> Principal:
        """The caller's principal; :class:`AuthError` (401) when the credentials fail."""
        if credentials.api_key is not None:
            return await self._key(credentials.api_key)
        if credentials.token is not None:
            if self._tokens is None:
                raise AuthError(
                    401,
                    "invalid_token",
                    "this server does not accept JWTs (server.auth.jwt.enabled is off) and "
                    "the bearer value is not a PyFlare API key (pf_…)",
                )
            return self._tokens.verify(credentials.token)
        raise self._missing()

    async def _key(self, key: str) -> Principal:
        key_id = split_key(key)
        if key_id is None:
            raise AuthError(
                401, "invalid_key", "the API key is malformed: PyFlare keys read pf_<id>_<secret>"
            )
        record = await self._record(key_id)
        if record is None or not matches(key, str(record["key_hash"])):
            raise AuthError(401, "invalid_key", f"unknown API key {key_id}")
        if record.get("revoked_at_ns") is not None:
            raise AuthError(
                401,
                "invalid_key",
                f"the API key {key_id} was revoked; create another with `pyflare keys create`",
            )
        expires = record.get("expires_at_ns")
        if expires is not None and self._now_ns() >= int(expires):
            raise AuthError(
                401,
                "invalid_key",
                f"the API key {key_id} has expired; create another with `pyflare keys create`",
            )
        return principal_for_roles(
            (str(record["role"]),),
            via="api_key",
            subject=f"key:{key_id}",
            user_id=record.get("user_id"),
            key_id=key_id,
        )

    async def _record(self, key_id: str) -> dict[str, Any] | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._cache_s:
            return cached[1]
        try:
            record = await asyncio.to_thread(self._store.api_key, key_id)
        except PyFlareError as exc:
            logger.warning("looking up API key %s failed: %s", key_id, exc)
            raise AuthError(
                503, "unavailable", "the key store could not answer; retry later"
            ) from exc
        if record is not None and self._cache_s > 0:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[key_id] = (now, record)
        else:
            self._cache.pop(key_id, None)
        return record
