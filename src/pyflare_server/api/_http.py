"""What every REST resource shares: JSON bodies, problem+json errors, store calls off the loop.

Every error the API answers is ``application/problem+json`` (RFC 9457)::

    {"type": "urn:pyflare:problem:invalid_argument", "title": "Bad Request",
     "status": 400, "detail": "limit must be an integer from 1 to 1000, got '0'",
     "instance": "/api/v1/traces", "code": "invalid_argument"}

``detail`` says what was wrong and what to do; ``code`` is the machine-readable
kind (``invalid_argument``, ``not_found``, ``unauthenticated``, ``forbidden``,
``rate_limited``, ``unavailable``, …) and ``type`` is the same kind as a URN.
Middleware and other resources build these bodies with :func:`problem_response`
(or raise :class:`ApiError` inside an :func:`endpoint`).
"""

from __future__ import annotations

import functools
import http
import logging
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from pyflare._time import iso_ns
from pyflare.errors import InvalidArgumentError, QueryError, StoreError

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ApiError",
    "call_store",
    "endpoint",
    "error_response",
    "http_exception_handler",
    "iso_ns",
    "json_response",
    "problem",
    "problem_response",
    "problem_type",
]

logger = logging.getLogger("pyflare_server.api")

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
_TYPE_PREFIX: Final = "urn:pyflare:problem:"
# The code of an error raised by Starlette itself (unknown path, wrong method, …).
_HTTP_CODES: Final[Mapping[int, str]] = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}

_T = TypeVar("_T")


class ApiError(Exception):
    """A request the API answers with a problem+json error body (4xx/5xx), not a crash.

    ``headers`` go on the response (``Retry-After``, ``WWW-Authenticate``, ``Allow``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def _default(value: Any) -> Any:
    # Stores may sum integers into decimals (DuckDB's HUGEINT); JSON wants numbers.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_response(
    content: Any,
    status: int = 200,
    *,
    media_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type=media_type,
        headers=dict(headers) if headers else None,
    )


def problem_type(code: str) -> str:
    """The ``type`` URI of the problems with machine code ``code``."""
    return _TYPE_PREFIX + code


def problem(status: int, code: str, detail: str, *, instance: str | None = None) -> dict[str, Any]:
    """The RFC 9457 problem object (plus ``code``) for an error."""
    try:
        title = http.HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance is not None:
        body["instance"] = instance
    return body


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An ``application/problem+json`` response; ``instance`` is the request's path."""
    return json_response(
        problem(status, code, detail, instance=instance),
        status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


#: The name resources have long used for :func:`problem_response`.
error_response = problem_response


async def call_store(function: Callable[..., _T], *args: Any) -> _T:
    """Run a (blocking) store call in a worker thread; store failures become 503s."""
    try:
        return await run_in_threadpool(function, *args)
    except InvalidArgumentError as exc:
        raise ApiError(400, "invalid_argument", str(exc)) from exc
    except (StoreError, QueryError) as exc:
        logger.warning("the store failed a read: %s", exc)
        raise ApiError(
            503,
            "unavailable",
            f"the store could not answer: {exc}; retry later",
            headers={"Retry-After": "1"},
        ) from exc


Handler = Callable[[Request], Awaitable[Response]]


def endpoint(handler: Handler) -> Handler:
    """Turn the :class:`ApiError` a handler raises into its problem+json response."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(
                exc.status, exc.code, exc.message, instance=request.url.path, headers=exc.headers
            )

    return wrapped


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown path, method not allowed) as problem+json.

    Register it for :class:`~starlette.exceptions.HTTPException` on an app serving the API.
    """
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = exc.headers if isinstance(exc, HTTPException) else None
    code = _HTTP_CODES.get(status, "error")
    if status == 404:
        detail = f"no resource at {request.url.path}; the API's paths are in /api/v1/openapi.json"
    elif status == 405:
        allowed = (headers or {}).get("Allow", "")
        detail = f"{request.method} is not allowed on {request.url.path}; use {allowed or 'another method'}"
    else:
        detail = str(getattr(exc, "detail", "")) or "the server could not answer"
    return problem_response(status, code, detail, instance=request.url.path, headers=headers)
