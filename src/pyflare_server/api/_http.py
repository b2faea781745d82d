"""What every REST resource shares: JSON bodies, error bodies, store calls off the loop."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pyflare.errors import InvalidArgumentError, QueryError, StoreError

__all__ = ["ApiError", "call_store", "endpoint", "error_response", "iso_ns", "json_response"]

logger = logging.getLogger("pyflare_server.api")

_T = TypeVar("_T")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class ApiError(Exception):
    """A request the API answers with an error body (4xx), not a crash."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _default(value: Any) -> Any:
    # Stores may sum integers into decimals (DuckDB's HUGEINT); JSON wants numbers.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_response(content: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
    )


def error_response(status: int, code: str, message: str) -> Response:
    """``{"error": {"code": ..., "message": ...}}`` with ``status``."""
    return json_response({"error": {"code": code, "message": message}}, status)


def iso_ns(ns: int) -> str:
    """UTC nanoseconds as ISO 8601 with all nine digits: ``2026-01-01T00:00:00.000000123Z``."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    moment = _EPOCH + dt.timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


async def call_store(function: Callable[..., _T], *args: Any) -> _T:
    """Run a (blocking) store call in a worker thread; store failures become 503s."""
    try:
        return await run_in_threadpool(function, *args)
    except InvalidArgumentError as exc:
        raise ApiError(400, "invalid_argument", str(exc)) from exc
    except (StoreError, QueryError) as exc:
        logger.warning("the store failed a read: %s", exc)
        raise ApiError(503, "unavailable", f"the store could not answer: {exc}") from exc


Handler = Callable[[Request], Awaitable[Response]]


def endpoint(handler: Handler) -> Handler:
    """Turn the :class:`ApiError` a handler raises into its JSON error response."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message)

    return wrapped
