"""Auth, rate limiting and CORS, built from the settings for :class:`~pyflare_server.app.ServerCore`.

Nothing is checked until :meth:`AuthWiring.middleware` or
:meth:`AuthWiring.grpc_interceptors` is first called (when the listeners are
built), so bad auth settings (an unreadable JWT key, a bad Redis URL) stop the
server at startup with a :class:`~pyflare.errors.ConfigError`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from pyflare.store.base import SpanStore
from pyflare_server.auth.authenticator import Authenticator
from pyflare_server.auth.exposure import auth_enabled
from pyflare_server.auth.grpc_auth import GrpcAuthInterceptor
from pyflare_server.auth.middleware import AuthMiddleware, Guard
from pyflare_server.ratelimit import limiter_from_settings
from pyflare_server.settings import ServerSettings

__all__ = ["AuthWiring"]

logger = logging.getLogger(__name__)


class AuthWiring:
    """The guard shared by every listener of one server."""

    def __init__(self, settings: ServerSettings, store: SpanStore) -> None:
        self.settings = settings
        self.store = store
        self.enabled = auth_enabled(settings)

    @functools.cached_property
    def guard(self) -> Guard:
        auth = self.settings.server.auth
        authenticator = Authenticator(auth, self.store) if self.enabled else None
        if authenticator is not None and not authenticator.accepts_jwt:
            self._warn_without_keys()
        return Guard(authenticator, limiter_from_settings(self.settings.server.rate_limit))

    def _warn_without_keys(self) -> None:
        try:
            has_keys = bool(self.store.api_keys())
        except Exception:  # a store without keys support: the requests will say so
            logger.debug("listing API keys failed", exc_info=True)
            return
        if not has_keys:
            logger.warning(
                "auth is on and there are no API keys yet: every request but the public "
                "ones (/health, /metrics) is refused. Create a key with "
                "`pyflare keys create --role admin`"
            )

    def middleware(self, routes: list[BaseRoute]) -> Middleware:
        """The auth middleware checking requests against ``routes``' permissions."""
        return Middleware(AuthMiddleware, routes=routes, guard=self.guard)

    def api_cors(self) -> list[Middleware]:
        """CORS on the query API (``server.api.cors.allowed_origins``)."""
        origins = list(self.settings.server.api.cors.allowed_origins)
        if not origins:
            return []
        return [
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST", "PUT", "DELETE"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    self.settings.server.auth.api_key_header,
                ],
                expose_headers=["Retry-After", "WWW-Authenticate"],
                max_age=7200,
            )
        ]

    def grpc_interceptors(self) -> list[Any]:
        """The OTLP/gRPC server's interceptors (none while auth is off)."""
        authenticator = self.guard.authenticator
        return [] if authenticator is None else [GrpcAuthInterceptor(authenticator)]

    async def close(self) -> None:
        if "guard" in self.__dict__:  # built: it may hold a Redis connection
            await self.guard.close()
