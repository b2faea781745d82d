"""The OTLP/gRPC receiver: the trace, metrics and logs ``Export`` services.

Requests arrive as raw bytes (no generated stubs on the hot path) and go
through the same decoder and pipeline as OTLP/HTTP. Status mapping, as OTLP
specifies it:

- stored (maybe with items rejected one by one): OK, ``partial_success`` set;
- undecodable: ``INVALID_ARGUMENT`` with what was wrong;
- queue full or the store failed: ``UNAVAILABLE`` with a ``google.rpc.RetryInfo``
  detail, so OTLP exporters back off and retry.

The message size limit is grpcio's own (``RESOURCE_EXHAUSTED`` past it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from pyflare.errors import PyFlareError
from pyflare_server.pipeline.queue import QueueFull
from pyflare_server.receiver.common import GRPC_SERVICES, export_response
from pyflare_server.receiver.decode import Decoded, DecodeError, Encoding, Signal

__all__ = ["create_grpc_server"]

logger = logging.getLogger(__name__)

Decode = Callable[[Signal, bytes, Encoding], Awaitable[Decoded]]
Submit = Callable[[Decoded], Awaitable[object]]


async def _abort_unavailable(
    context: grpc.aio.ServicerContext[bytes, bytes], message: str, retry_after_s: float
) -> None:
    retry = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(
            seconds=int(retry_after_s), nanos=int((retry_after_s % 1) * 1e9)
        )
    )
    detail = any_pb2.Any()
    detail.Pack(retry)
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail])
    await context.abort(
        grpc.StatusCode.UNAVAILABLE,
        message,
        trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
    )


def _handler(
    signal: Signal,
    decode: Decode,
    submit: Submit,
    on_request: Callable[[Signal, str], None] | None,
) -> Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], Awaitable[bytes]]:
    def record(outcome: str) -> None:
        # Counted before the answer goes out: a client that reads the metrics
        # right after its call must find the call there.
        if on_request is not None:
            on_request(signal, outcome)

    async def export(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        try:
            decoded = await decode(signal, request, Encoding.PROTOBUF)
        except DecodeError as exc:
            record("INVALID_ARGUMENT")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            await submit(decoded)
        except QueueFull as exc:
            record("UNAVAILABLE")
            await _abort_unavailable(
                context, "PyFlare's ingest queue is full; retry later", exc.retry_after_s
            )
        except PyFlareError as exc:
            record("UNAVAILABLE")
            logger.warning("OTLP/gRPC %s request failed: %s", signal.value, exc)
            await _abort_unavailable(
                context, f"PyFlare could not store the batch ({exc}); retry later", 1.0
            )
        record("OK")
        return export_response(decoded, Encoding.PROTOBUF)

    return export


def create_grpc_server(
    decode: Decode,
    submit: Submit,
    *,
    address: str,
    max_message_bytes: int = 16 * 1024 * 1024,
    max_concurrent_streams: int = 100,
    on_request: Callable[[Signal, str], None] | None = None,
    interceptors: Sequence[Any] = (),
) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server with the three OTLP services, bound to ``address``.

    ``interceptors`` (``grpc.aio.ServerInterceptor``) run before each call, such as
    the auth check. Returns the server (not started) and the bound port (useful
    with port 0).
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_concurrent_streams", max_concurrent_streams),
            ("grpc.so_reuseport", 0),
        ],
        compression=None,
        interceptors=list(interceptors) or None,
    )
    handlers = [
        grpc.method_handlers_generic_handler(
            service,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    _handler(signal, decode, submit, on_request)
                )
            },
        )
        for signal, service in GRPC_SERVICES.items()
    ]
    server.add_generic_rpc_handlers(handlers)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise PyFlareError(f"cannot listen for OTLP/gRPC on {address}: {exc}") from exc
    if port == 0:
        raise PyFlareError(f"cannot listen for OTLP/gRPC on {address}: the port is in use")
    return server, port
