"""The ASGI middleware that authenticates, rate-limits and authorizes every request.

It finds the route a request is for (as Starlette's router will), reads the
permission its endpoint declared with :func:`~pyflare_server.auth.permissions.requires`
and then:

1. :data:`~pyflare_server.auth.permissions.PUBLIC` routes (``/health``,
   ``/metrics``) go straight through;
2. with auth on, the credentials are checked (failures are 401 with
   ``WWW-Authenticate``, after rate limiting so guessing keys is throttled too);
3. API routes (``/api/…``) take a token from the caller's bucket (429 +
   ``Retry-After``); the OTLP receivers have their own back-pressure;
4. the principal's roles must grant the permission (403 otherwise). A route
   needing ``costs:read`` is open to a caller with only ``costs:read:own``:
   ``request.state.cost_owner`` is then the caller's user id and the costs
   resource shows that user's costs only (403 when the caller has no user id).

``request.state.principal`` is the caller. An endpoint that declared no
permission is refused (403) while auth is on: a forgotten declaration must not
open a route. Errors are problem+json; a refused WebSocket handshake is closed
with 1008 (auth) or 1013 (rate limit) and the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.datastructures import Headers, QueryParams
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from pyflare_server.api._http import problem_response
from pyflare_server.auth.authenticator import Authenticator
from pyflare_server.auth.permissions import PUBLIC, allows, permission_of
from pyflare_server.auth.principal import ANONYMOUS, AuthError, Principal
from pyflare_server.ratelimit import Limiter

__all__ = ["AuthMiddleware", "Guard", "find_endpoint", "grant"]

logger = logging.getLogger(__name__)

_OWN = ":own"


class Guard:
    """What the middleware checks with: an authenticator (None: auth off) and a limiter."""

    def __init__(self, authenticator: Authenticator | None, limiter: Limiter | None) -> None:
        self.authenticator = authenticator
        self.limiter = limiter

    async def close(self) -> None:
        if self.limiter is not None:
            await self.limiter.close()


def find_endpoint(routes: Sequence[BaseRoute], scope: Scope) -> object | None:
    """The endpoint (or mounted app) Starlette's router would pick for ``scope``.

    A full match wins; else the first partial one (a wrong method, answered 405).
    """
    partial: object | None = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            inner = find_endpoint(route.routes, {**scope, **child}) if route.routes else None
            found = inner if inner is not None else route.app
        else:
            found = getattr(route, "endpoint", None)
        if match is Match.FULL:
            return found
        if partial is None:
            partial = found
    return partial


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:unknown"


def grant(principal: Principal, needed: str) -> tuple[bool, bool]:
    """(allowed, own_only): own_only when just the ``:own`` form of ``needed`` is granted."""
    base = needed.removesuffix(_OWN)
    if allows(principal.permissions, base):
        return True, False
    return allows(principal.permissions, base + _OWN), True


class AuthMiddleware:
    """Checks each request against the permission its route declares (see the module doc)."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute], guard: Guard) -> None:
        self.app = app
        self.routes = routes
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        endpoint = find_endpoint(self.routes, scope)
        if endpoint is None:  # the router answers 404
            await self.app(scope, receive, send)
            return
        needed = permission_of(endpoint)
        if needed == PUBLIC:
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._check(scope, needed)
        except AuthError as exc:
            await self._refuse(scope, send, exc.status, exc.code, exc.detail, {})
            return
        except _Limited as exc:
            headers = {"Retry-After": str(exc.retry_after_s)}
            detail = (
                f"too many requests from this caller; retry after {exc.retry_after_s} s "
                "(limits: server.rate_limit)"
            )
            await self._refuse(scope, send, 429, "rate_limited", detail, headers)
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        await self.app(scope, receive, send)

    async def _check(self, scope: Scope, needed: str | None) -> Principal:
        authenticator = self.guard.authenticator
        failure: AuthError | None = None
        principal = ANONYMOUS
        if authenticator is not None:
            try:
                headers = Headers(scope=scope)
                query = QueryParams(scope["query_string"]) if scope["type"] == "websocket" else None
                principal = await authenticator.authenticate(
                    authenticator.credentials(headers, query)
                )
            except AuthError as exc:
                failure = exc
        authenticated = failure is None and principal is not ANONYMOUS
        await self._limit(scope, principal.subject if authenticated else _client(scope))
        if failure is not None:
            raise failure
        if authenticator is None:
            return principal
        if needed is None:
            logger.error("refused %s: its endpoint declares no permission", scope.get("path"))
            raise AuthError(
                403, "forbidden", "this route declares no permission, so nobody may call it"
            )
        allowed, own_only = grant(principal, needed)
        if not allowed:
            raise AuthError(
                403,
                "forbidden",
                f"{needed} is needed; your role ({', '.join(principal.roles)}) does not grant it",
            )
        if own_only:
            if principal.user_id is None:
                raise AuthError(
                    403,
                    "forbidden",
                    f"your role may read its own {needed.split(':', 1)[0]} only, and your "
                    "credentials carry no user id (a key's --user-id, a token's sub)",
                )
            scope.setdefault("state", {})["cost_owner"] = principal.user_id
        return principal

    async def _limit(self, scope: Scope, caller: str) -> None:
        limiter = self.guard.limiter
        if limiter is None or not str(scope.get("path", "")).startswith("/api/"):
            return
        verdict = await limiter.take(caller)
        if not verdict.allowed:
            raise _Limited(verdict.retry_after_s)

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        status: int,
        code: str,
        detail: str,
        headers: Mapping[str, str],
    ) -> None:
        if scope["type"] == "websocket":
            close_code = 1013 if status in (429, 503) else 1008
            # A close reason is at most 123 bytes.
            reason = detail.encode()[:123].decode(errors="ignore")
            await send({"type": "websocket.close", "code": close_code, "reason": reason})
            return
        all_headers: dict[str, Any] = dict(headers)
        if status == 401:
            challenge = 'Bearer realm="pyflare"'
            if code in ("invalid_token", "invalid_key"):
                challenge += ', error="invalid_token"'
            all_headers["WWW-Authenticate"] = challenge
        response = problem_response(
            status, code, detail, instance=str(scope.get("path", "")), headers=all_headers
        )
        await response(scope, _no_receive, send)


class _Limited(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s


async def _no_receive() -> dict[str, Any]:  # pragma: no cover - responses never read
    return {"type": "http.disconnect"}
