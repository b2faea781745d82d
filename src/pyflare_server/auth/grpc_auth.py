"""Auth on the OTLP/gRPC receiver: the same credentials as HTTP, in the call's metadata.

Exporters send ``x-api-key: pf_…`` (or the configured header, lowercased) or
``authorization: Bearer …``; the OpenTelemetry SDKs take them from
``OTEL_EXPORTER_OTLP_HEADERS``. A refused call ends with ``UNAUTHENTICATED`` or
``PERMISSION_DENIED`` and the reason, before its body is decoded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc

from pyflare_server.auth.authenticator import Authenticator
from pyflare_server.auth.permissions import allows
from pyflare_server.auth.principal import AuthError
from pyflare_server.receiver.common import GRPC_SERVICES

__all__ = ["GrpcAuthInterceptor"]

_STATUS = {401: grpc.StatusCode.UNAUTHENTICATED, 403: grpc.StatusCode.PERMISSION_DENIED}


def _refusal(code: grpc.StatusCode, detail: str) -> grpc.RpcMethodHandler[bytes, bytes]:
    async def refuse(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await context.abort(code, detail)
        raise AssertionError("unreachable")  # pragma: no cover - abort raises

    return grpc.unary_unary_rpc_method_handler(refuse)


class GrpcAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Checks each OTLP Export call's credentials and the ``<signal>:write`` permission."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator
        self._needed: Mapping[str, str] = {
            f"/{service}/Export": f"{signal.value}:write"
            for signal, service in GRPC_SERVICES.items()
        }

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        needed = self._needed.get(handler_call_details.method)
        if needed is None:  # not an OTLP service: gRPC answers UNIMPLEMENTED
            return await continuation(handler_call_details)
        metadata = {
            str(key).lower(): value
            for key, value in (handler_call_details.invocation_metadata or ())
            if isinstance(value, str)
        }
        authenticator = self._authenticator
        try:
            principal = await authenticator.authenticate(authenticator.credentials(metadata))
        except AuthError as exc:
            return _refusal(_STATUS.get(exc.status, grpc.StatusCode.UNAVAILABLE), exc.detail)
        if not allows(principal.permissions, needed):
            return _refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{needed} is needed; your role ({', '.join(principal.roles)}) does not "
                "grant it (the ingest and admin roles do)",
            )
        return await continuation(handler_call_details)
