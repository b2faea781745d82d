"""``pyflare server``: OTLP/HTTP, OTLP/gRPC and the query API in one process.

Every listener runs on one asyncio loop (uvloop when installed); DuckDB writes
happen on a worker thread. SIGTERM or SIGINT stops the listeners from taking
new requests, lets those in flight finish, drains what the pipeline accepted
into the store and closes it, so nothing answered with 200 is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from pyflare.errors import PyFlareError
from pyflare.store.base import SpanStore
from pyflare_server.app import ServerCore
from pyflare_server.auth.exposure import check_exposure
from pyflare_server.settings import ServerSettings, split_endpoint

__all__ = ["Listeners", "run_server", "serve"]

logger = logging.getLogger(__name__)

_SWITCH_INTERVAL_S = 0.0005


class _Uvicorn(uvicorn.Server):
    """A uvicorn server that leaves signals to :func:`serve`.

    uvicorn's own handlers re-raise the signal once it stops, which would end
    the process before the pipeline drains.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class Listeners:
    """Where the server listens (ports as bound, which matters with port 0)."""

    otlp_http: str
    otlp_grpc: str
    api: str


def _uvicorn(app: Starlette, endpoint: str, settings: ServerSettings) -> _Uvicorn:
    host, port = split_endpoint(endpoint)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        # uvicorn's own INFO lines repeat what PyFlare logs; keep its warnings.
        log_level="debug" if settings.server.log_level == "debug" else "warning",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    return _Uvicorn(config)


async def serve(
    settings: ServerSettings,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[Listeners, ServerCore], None] | None = None,
    store: SpanStore | None = None,
) -> None:
    """Run the server until ``stop`` is set (or SIGTERM/SIGINT in the main thread).

    ``store`` replaces the one ``settings.server.store`` names (the caller keeps
    ownership of it).
    """
    # Auth off on an exposed address needs server.auth.insecure (--insecure).
    check_exposure(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    with contextlib.suppress(ValueError, NotImplementedError, RuntimeError):
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    core = ServerCore(settings, store=store)
    try:
        await core.start()
        otlp_routes = [*core.otlp_routes(), *core.service_routes()]
        otlp_app = Starlette(
            routes=otlp_routes, middleware=core.secured(otlp_routes, core.otlp_middleware())
        )
        api_routes = [*core.api_routes(), *core.service_routes()]
        api_app = Starlette(routes=api_routes, middleware=core.secured(api_routes))
        http_socket = _bind(settings.otlp_http_endpoint, "OTLP/HTTP", "--otlp-http-port")
        api_socket = _bind(settings.api_endpoint, "the API", "--api-port")
        http_server = _uvicorn(otlp_app, settings.otlp_http_endpoint, settings)
        api_server = _uvicorn(api_app, settings.api_endpoint, settings)
        grpc_server, grpc_port = core.grpc_server(settings.otlp_grpc_endpoint)
        await grpc_server.start()
        tasks = [
            asyncio.create_task(http_server.serve([http_socket]), name="otlp-http"),
            asyncio.create_task(api_server.serve([api_socket]), name="api"),
        ]
        try:
            await _wait_started(tasks, (http_server, api_server))
            listeners = Listeners(
                otlp_http=_address(http_socket),
                otlp_grpc=f"{split_endpoint(settings.otlp_grpc_endpoint)[0]}:{grpc_port}",
                api=_address(api_socket),
            )
            logger.info(
                "PyFlare server: OTLP/HTTP %s, OTLP/gRPC %s, API %s, store %s",
                listeners.otlp_http,
                listeners.otlp_grpc,
                listeners.api,
                settings.server.store,
            )
            if on_ready is not None:
                on_ready(listeners, core)
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopped and task.exception() is not None:
                    raise PyFlareError(f"a listener stopped: {task.exception()}")
            stopped.cancel()
        finally:
            # Stop taking requests; those in flight finish (they wait on the pipeline).
            http_server.should_exit = True
            api_server.should_exit = True
            await grpc_server.stop(grace=10)
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await core.close()  # drains the pipeline into the store, then closes it
        for sig in installed:
            loop.remove_signal_handler(sig)
        logger.info("PyFlare server stopped; everything accepted is stored")


async def _wait_started(tasks: list[asyncio.Task[None]], servers: tuple[_Uvicorn, ...]) -> None:
    while not all(server.started for server in servers):
        for task in tasks:
            if task.done():
                exc = task.exception()
                raise PyFlareError(
                    f"a PyFlare listener failed to start ({task.get_name()}): "
                    f"{exc or 'it exited; is the port in use?'}"
                )
        await asyncio.sleep(0.01)


def _bind(endpoint: str, what: str, flag: str) -> socket.socket:
    """A listening socket for ``endpoint``, or a clear error naming the flag to change."""
    host, port = split_endpoint(endpoint)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise PyFlareError(
            f"cannot listen for {what} on {host}:{port}: {exc.strerror or exc}; "
            f"choose another port with {flag}"
        ) from exc
    sock.setblocking(False)
    return sock


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def run_server(
    settings: ServerSettings, on_ready: Callable[[Listeners, ServerCore], None] | None = None
) -> None:
    """Run the server in this thread until SIGTERM/SIGINT."""
    # The store writer thread gives the GIL up and takes it back many times per
    # insert (DuckDB's Arrow scan calls into Python); at the default 5 ms switch
    # interval each take-back waits out the event loop's turn, which made writes
    # several times slower under load. A short interval keeps both moving.
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    try:
        import uvloop

        uvloop.run(serve(settings, on_ready=on_ready))
    except ImportError:  # pragma: no cover - uvloop is part of the server extra on POSIX
        asyncio.run(serve(settings, on_ready=on_ready))
