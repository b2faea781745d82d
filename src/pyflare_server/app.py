"""The server's parts, wired: store, pipeline, receivers, query API.

:class:`ServerCore` owns the store, the pipeline and the self-metrics, and
hands out the routes of each listener: OTLP/HTTP (:4318), the query API
(:8080) and the OTLP/gRPC server (:4317). :func:`create_app` puts every route
on one Starlette app with a lifespan that starts and drains the pipeline, which
is what tests and embedders want; ``pyflare server`` (:mod:`pyflare_server.server`)
serves each listener on its own port.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pyflare._version import __version__
from pyflare.store.base import SpanStore
from pyflare_server import api
from pyflare_server.api import costs, query, ws
from pyflare_server.api._http import http_exception_handler
from pyflare_server.auth.permissions import PUBLIC, requires
from pyflare_server.auth.wiring import AuthWiring
from pyflare_server.pipeline._notifications import drift_notifications
from pyflare_server.pipeline.broadcast import Hub
from pyflare_server.pipeline.cost import cost_stage
from pyflare_server.pipeline.drift import drift_processor
from pyflare_server.pipeline.queue import SpanQueue
from pyflare_server.pipeline.runner import Pipeline
from pyflare_server.receiver.decode import Decoded, DecodeLimits, Encoding, Signal, decode
from pyflare_server.receiver.otlp_grpc import create_grpc_server
from pyflare_server.receiver.otlp_http import HttpLimits, otlp_routes
from pyflare_server.receiver.workers import DecodePool
from pyflare_server.settings import ServerSettings
from pyflare_server.storage.factory import open_server_store
from pyflare_server.telemetry import ServerTelemetry

__all__ = ["ServerCore", "create_app"]

logger = logging.getLogger(__name__)

_MIB = 1024 * 1024


class ServerCore:
    """Store, pipeline and self-metrics, and the routes that use them."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        store: SpanStore | None = None,
        queue: SpanQueue | None = None,
    ) -> None:
        self.settings = settings
        self._owns_store = store is None
        self.store: SpanStore = (
            store if store is not None else open_server_store(settings.server.store)
        )
        self.telemetry = ServerTelemetry()
        pii = settings.collector.pii
        masker = pii.span_masker()
        self._decode_limits = DecodeLimits()
        self._mask = masker.mask_in_place if masker is not None else None
        workers = settings.collector.otlp.decode_workers
        if workers is None:
            workers = min(4, (os.cpu_count() or 1) - 1)
        self._pool = (
            DecodePool(workers, self._decode_limits, pii, settings.collector.enricher)
            if workers
            else None
        )
        # Cost runs before drift, which reads the spans as they will be stored.
        self.cost = cost_stage(settings.collector.cost, self.store)
        self._budgets = settings.collector.cost.budget_rules()
        self._drift = drift_processor(settings.collector.drift, self.store)
        # The live stream (WebSocket /api/v1/ws) hears of every successful store write.
        self.hub = Hub(settings.server.api.ws_max_queue)
        if self._drift is not None:
            hub = self.hub
            self._drift.on_results = lambda rows: hub.publish_threadsafe(drift_notifications(rows))
        if queue is None and settings.collector.kafka.brokers:
            # The scaled mode: receivers hand batches to Kafka; `pyflare worker` stores them.
            from pyflare_server.pipeline.kafka import KafkaQueue

            queue = KafkaQueue(settings.collector.kafka, telemetry=self.telemetry)
        self.pipeline = Pipeline(
            settings,
            self.store,
            queue=queue,
            telemetry=self.telemetry,
            processors=[p for p in (self.cost, self._drift) if p is not None],
            enrich=self._pool is None,  # the decode workers enrich
            on_stored=self.hub.stored,
        )
        self.started_at = time.time()
        self._ready = False

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        if self._pool is not None:
            await self._pool.start()
        await self.pipeline.start()
        self._ready = True

    async def close(self) -> None:
        """Drain what was accepted into the store, then release it."""
        self._ready = False
        await self.auth.close()
        try:
            await self.pipeline.close()
            if self._drift is not None:
                # Windows still open hold drift results nothing else would write.
                try:
                    await asyncio.to_thread(self._drift.flush)
                except Exception:
                    logger.exception("writing the last drift windows failed")
        finally:
            if self._pool is not None:
                self._pool.close()
            if self._owns_store:
                self.store.close()

    # -- decoding and submitting ------------------------------------------------

    async def decode(self, signal: Signal, body: bytes, encoding: Encoding) -> Decoded:
        """Decode in a worker process when there are workers, else right here."""
        if self._pool is not None:
            return await self._pool.decode(signal, body, encoding)
        return decode(
            signal, body, encoding, limits=self._decode_limits, mask_attributes=self._mask
        )

    async def submit(self, decoded: Decoded) -> object:
        return await self.pipeline.submit(decoded)

    # -- routes --------------------------------------------------------------

    def otlp_routes(self) -> list[BaseRoute]:
        """POST /v1/traces, /v1/metrics, /v1/logs."""
        http = self.settings.collector.otlp.http
        limits = HttpLimits(
            max_body_bytes=int(http.max_body_mib * _MIB), read_timeout_s=http.read_timeout_s
        )
        requests = self.telemetry.requests

        def count(signal: Signal, status: int) -> None:
            requests.labels(signal.value, "http", str(status)).inc()

        return [*otlp_routes(self.decode, self.submit, limits=limits, on_request=count)]

    def api_routes(self) -> list[BaseRoute]:
        """The query API under /api/v1."""
        return [
            *api.routes(self.store),
            *costs.routes(self.store, self._budgets),
            *query.routes(self.store, self.settings.server.api),
            *ws.routes(self.hub),
        ]

    def service_routes(self) -> list[BaseRoute]:
        """GET /health and GET /metrics (Prometheus), on every listener."""
        return [
            Route("/health", self._health, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
        ]

    def otlp_middleware(self) -> list[Middleware]:
        origins = list(self.settings.collector.otlp.http.cors.allowed_origins)
        if not origins:
            return []
        return [
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["POST"],
                allow_headers=["*"],
                max_age=7200,
            )
        ]

    def grpc_server(self, address: str | None = None) -> tuple[grpc.aio.Server, int]:
        grpc_settings = self.settings.collector.otlp.grpc
        return create_grpc_server(
            self.decode,
            self.submit,
            address=address or grpc_settings.endpoint,
            max_message_bytes=int(grpc_settings.max_recv_msg_size_mib * _MIB),
            max_concurrent_streams=grpc_settings.max_concurrent_streams,
            interceptors=self.auth.grpc_interceptors(),
            on_request=lambda signal, outcome: self.telemetry.requests.labels(
                signal.value, "grpc", outcome
            ).inc(),
        )

    # -- auth, rate limiting, CORS on the API (pyflare_server.auth) ---------------

    @functools.cached_property
    def auth(self) -> AuthWiring:
        """Credentials, roles and rate limits for every listener (see pyflare_server.auth)."""
        return AuthWiring(self.settings, self.store)

    def secured(
        self, routes: list[BaseRoute], cors: list[Middleware] | None = None
    ) -> list[Middleware]:
        """``cors`` (default: the API's) then the auth middleware checking ``routes``."""
        return [*(self.auth.api_cors() if cors is None else cors), self.auth.middleware(routes)]

    @requires(PUBLIC)
    async def _health(self, request: Request) -> Response:
        body: dict[str, Any] = {
            "status": "ok" if self._ready else "starting",
            "live": True,
            "ready": self._ready,
            "version": __version__,
            "uptime_s": round(time.time() - self.started_at, 3),
            "queue_depth_rows": self.pipeline.depth(),
        }
        return JSONResponse(body, status_code=200 if self._ready else 503)

    @requires(PUBLIC)
    async def _metrics(self, request: Request) -> Response:
        data, content_type = self.telemetry.render()
        return Response(data, media_type=content_type)


def create_app(
    settings: ServerSettings | None = None,
    *,
    store: SpanStore | None = None,
    queue: SpanQueue | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Starlette:
    """One ASGI app with every route (OTLP/HTTP, the query API, health, metrics).

    Its lifespan starts the pipeline and, on shutdown, drains it into the store.
    The :class:`ServerCore` is at ``app.state.core``.
    """
    settings = settings or ServerSettings.load(overrides=overrides or {})
    core = ServerCore(settings, store=store, queue=queue)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await core.start()
        try:
            yield
        finally:
            await core.close()

    routes = [*core.otlp_routes(), *core.api_routes(), *core.service_routes()]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=core.secured(routes),
        # Unknown paths and wrong methods answer problem+json, as the API's own errors do.
        exception_handlers={HTTPException: http_exception_handler},
    )
    app.state.core = core
    return app
