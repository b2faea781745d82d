"""The OTLP/HTTP receiver: POST /v1/traces, /v1/metrics and /v1/logs.

Protobuf (``application/x-protobuf``) and JSON (``application/json``) bodies,
plain or ``Content-Encoding: gzip``. The body is read with a deadline (a client
that sends slowly gets 408) and a size limit that applies after
decompression (413, cut off as soon as it is passed, so a gzip bomb never
inflates in memory). Each answer is encoded like the request:

==========================================  ==========================================
outcome                                     status
==========================================  ==========================================
stored (some items maybe rejected one       200, ``Export*ServiceResponse`` with
by one: OTLP partial success)               ``partial_success`` when items were rejected
undecodable body, bad gzip                  400, ``google.rpc.Status`` saying what was wrong
content type not protobuf/JSON,             415
unknown Content-Encoding
queue full                                  429 + ``Retry-After``
the store failed                            503 + ``Retry-After``
==========================================  ==========================================

A 200 means stored: the handler answers after the pipeline has committed the
batch.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.rpc import code_pb2
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from pyflare.errors import PyFlareError
from pyflare_server.auth.permissions import requires
from pyflare_server.bodies import BodyError, read_body
from pyflare_server.pipeline.queue import QueueFull
from pyflare_server.receiver.common import error_body, export_response
from pyflare_server.receiver.decode import Decoded, DecodeError, Encoding, Signal

__all__ = ["HttpLimits", "otlp_routes"]

logger = logging.getLogger(__name__)

_CONTENT_TYPES = {
    "application/x-protobuf": Encoding.PROTOBUF,
    "application/protobuf": Encoding.PROTOBUF,
    "application/json": Encoding.JSON,
}
_MEDIA_TYPES = {Encoding.PROTOBUF: "application/x-protobuf", Encoding.JSON: "application/json"}
# Seconds a client is asked to wait after 429/503.
_RETRY_AFTER_S = 1


@dataclass(frozen=True)
class HttpLimits:
    """Limits on one request's body."""

    max_body_bytes: int = 16 * 1024 * 1024  # after decompression
    read_timeout_s: float = 10.0  # to receive the whole body


class _Rejected(Exception):
    """The request is answered with an error before it reaches the pipeline."""

    def __init__(self, status: int, grpc_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.grpc_code = grpc_code
        self.message = message


def _encoding_of(request: Request) -> Encoding:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    encoding = _CONTENT_TYPES.get(media_type)
    if encoding is None:
        shown = repr(content_type) if content_type else "none"
        raise _Rejected(
            415,
            code_pb2.INVALID_ARGUMENT,
            f"unsupported content type {shown}: send application/x-protobuf or application/json",
        )
    return encoding


Decode = Callable[[Signal, bytes, Encoding], Awaitable[Decoded]]
Submit = Callable[[Decoded], Awaitable[object]]


def otlp_routes(
    decode: Decode,
    submit: Submit,
    *,
    limits: HttpLimits | None = None,
    on_request: Callable[[Signal, int], None] | None = None,
) -> list[Route]:
    """The OTLP/HTTP routes.

    ``await decode(signal, body, encoding)`` turns a body into a :class:`Decoded`
    (raising :class:`DecodeError`); ``submit(decoded)`` returns once the batch is
    stored (raising :class:`QueueFull` when the pipeline is full).
    ``on_request(signal, status)`` is told every answer's status.
    """
    limits = limits or HttpLimits()

    def endpoint(signal: Signal) -> Callable[[Request], Awaitable[Response]]:
        # Sending OTLP needs traces:write (metrics:write, logs:write): roles admin, ingest.
        @requires(f"{signal.value}:write")
        async def handle(request: Request) -> Response:
            status, body, encoding, headers = await _handle(request, signal)
            if on_request is not None:
                on_request(signal, status)
            return Response(body, status, headers, media_type=_MEDIA_TYPES[encoding])

        return handle

    async def _handle(
        request: Request, signal: Signal
    ) -> tuple[int, bytes, Encoding, dict[str, str]]:
        encoding = Encoding.PROTOBUF
        try:
            encoding = _encoding_of(request)
            try:
                body = await read_body(
                    request, max_bytes=limits.max_body_bytes, timeout_s=limits.read_timeout_s
                )
            except BodyError as exc:
                grpc_code = (
                    code_pb2.DEADLINE_EXCEEDED if exc.status == 408 else code_pb2.INVALID_ARGUMENT
                )
                raise _Rejected(exc.status, grpc_code, exc.message) from None
            try:
                decoded = await decode(signal, body, encoding)
            except DecodeError as exc:
                raise _Rejected(400, code_pb2.INVALID_ARGUMENT, str(exc)) from None
            await submit(decoded)
        except _Rejected as exc:
            return exc.status, error_body(exc.grpc_code, exc.message, encoding), encoding, {}
        except QueueFull as exc:
            retry = str(max(1, round(exc.retry_after_s)))
            message = f"PyFlare's ingest queue is full; retry after {retry} s"
            return (
                429,
                error_body(code_pb2.UNAVAILABLE, message, encoding),
                encoding,
                {"Retry-After": retry},
            )
        except ClientDisconnect:
            return 400, b"", encoding, {}
        except PyFlareError as exc:
            logger.warning("OTLP %s request failed: %s", signal.value, exc)
            message = f"PyFlare could not store the batch ({exc}); retry later"
            return (
                503,
                error_body(code_pb2.UNAVAILABLE, message, encoding),
                encoding,
                {"Retry-After": str(_RETRY_AFTER_S)},
            )
        return 200, export_response(decoded, encoding), encoding, {}

    return [
        Route(
            f"/v1/{signal.value}", endpoint(signal), methods=["POST"], name=f"otlp_{signal.value}"
        )
        for signal in Signal
    ]
