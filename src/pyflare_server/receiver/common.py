"""What the OTLP/HTTP and OTLP/gRPC receivers share: responses and outcomes.

Both receivers decode with :func:`pyflare_server.receiver.decode.decode` and hand
the result to the pipeline; this module turns the outcome into OTLP's answer
(an ``Export*ServiceResponse``, with ``partial_success`` when items were rejected
one by one) or into the error each transport reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from pyflare_server.receiver.decode import Decoded, Encoding, Signal

__all__ = [
    "GRPC_SERVICES",
    "error_body",
    "export_response",
]

# gRPC service names, by signal.
GRPC_SERVICES: dict[Signal, str] = {
    Signal.TRACES: "opentelemetry.proto.collector.trace.v1.TraceService",
    Signal.METRICS: "opentelemetry.proto.collector.metrics.v1.MetricsService",
    Signal.LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
}

_RESPONSES: dict[Signal, Callable[[], Any]] = {
    Signal.TRACES: trace_service_pb2.ExportTraceServiceResponse,
    Signal.METRICS: metrics_service_pb2.ExportMetricsServiceResponse,
    Signal.LOGS: logs_service_pb2.ExportLogsServiceResponse,
}
# The partial-success counter of each response (protobuf field, OTLP/JSON key).
_REJECTED: dict[Signal, tuple[str, str]] = {
    Signal.TRACES: ("rejected_spans", "rejectedSpans"),
    Signal.METRICS: ("rejected_data_points", "rejectedDataPoints"),
    Signal.LOGS: ("rejected_log_records", "rejectedLogRecords"),
}


def export_response(decoded: Decoded, encoding: Encoding, *, note: str = "") -> bytes:
    """The ``Export*ServiceResponse`` for a request, encoded like the request.

    ``partial_success`` is set when items were rejected, or when ``note`` has
    something to tell the client (OTLP allows a message with zero rejected).
    """
    signal = decoded.signal
    message = "; ".join(part for part in (decoded.error_message, note) if part)
    field, key = _REJECTED[signal]
    if encoding is Encoding.JSON:
        body: dict[str, Any] = {}
        if decoded.rejected or message:
            partial: dict[str, Any] = {key: str(decoded.rejected)}  # int64 travels as a string
            if message:
                partial["errorMessage"] = message
            body["partialSuccess"] = partial
        return orjson.dumps(body)
    response = _RESPONSES[signal]()
    if decoded.rejected or message:
        setattr(response.partial_success, field, decoded.rejected)
        if message:
            response.partial_success.error_message = message
    data: bytes = response.SerializeToString()
    return data


def error_body(code: int, message: str, encoding: Encoding) -> bytes:
    """A ``google.rpc.Status`` (``code`` is a gRPC code), encoded like the request."""
    if encoding is Encoding.JSON:
        return orjson.dumps({"code": code, "message": message})
    data: bytes = status_pb2.Status(code=code, message=message).SerializeToString()
    return data
