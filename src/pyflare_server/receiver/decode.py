"""OTLP export requests (protobuf or JSON) into PyFlare's rows.

:func:`decode` turns the (already decompressed) body of an OTLP export request
into one Arrow table: span rows (:data:`~pyflare.records.SPAN_SCHEMA`) with the
ML columns filled as the SDK fills them, metric points
(:data:`~pyflare.records.METRIC_SCHEMA`) or log records
(:data:`~pyflare.records.LOG_SCHEMA`).

A request that can't be read at all raises :class:`DecodeError` (HTTP 400,
gRPC INVALID_ARGUMENT). Items that are wrong on their own (a span with a bad
id, say) are left out and counted in :attr:`Decoded.rejected` for OTLP's
partial success. Values past :class:`DecodeLimits` are cut and the item is
flagged with ``pyflare.truncated``.

Protobuf is parsed with upb through views shaped for speed (:mod:`._pbviews`);
JSON with orjson, read straight into rows (OTLP/JSON: hex ids, int64 as strings
or numbers, enums as integers, unknown fields ignored; lowerCamelCase keys, and
the proto field names too). ``json_format`` never runs here: it is ~50 times slower.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
import pyarrow as pa
from google.protobuf.message import DecodeError as ProtobufDecodeError

from pyflare_server.receiver import _pbviews
from pyflare_server.receiver._decoding import TRUNCATED, DecodeError, DecodeLimits, ItemError
from pyflare_server.receiver._logs import LOG_BODY, Logs, json_logs, pb_logs
from pyflare_server.receiver._metrics import Metrics, json_metrics, pb_metrics
from pyflare_server.receiver._spans import Spans
from pyflare_server.receiver._traces import json_spans, pb_spans

__all__ = [
    "LOG_BODY",
    "TRUNCATED",
    "DecodeError",
    "DecodeLimits",
    "Decoded",
    "Encoding",
    "Signal",
    "decode",
]


class Signal(StrEnum):
    """What an OTLP request carries."""

    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"


class Encoding(StrEnum):
    """How an OTLP request is encoded."""

    PROTOBUF = "protobuf"
    JSON = "json"


@dataclass(frozen=True)
class Decoded:
    """The rows of one request and what was rejected from it."""

    signal: Signal
    batch: pa.Table
    """Accepted items as rows of SPAN_SCHEMA, METRIC_SCHEMA or LOG_SCHEMA."""
    rejected: int
    """Items rejected one by one (OTLP partial success)."""
    error_message: str
    """Why items were rejected (the first few reasons), or ""."""


_WHAT = {Signal.TRACES: "spans", Signal.METRICS: "data points", Signal.LOGS: "log records"}
_REQUESTS = {
    Signal.TRACES: "ExportTraceServiceRequest",
    Signal.METRICS: "ExportMetricsServiceRequest",
    Signal.LOGS: "ExportLogsServiceRequest",
}
_VIEWS = {
    Signal.TRACES: _pbviews.TracesRequest,
    Signal.METRICS: _pbviews.MetricsRequest,
    Signal.LOGS: _pbviews.LogsRequest,
}
_DEFAULT_LIMITS = DecodeLimits()


def decode(
    signal: Signal,
    body: bytes,
    encoding: Encoding,
    *,
    limits: DecodeLimits = _DEFAULT_LIMITS,
    mask_attributes: Callable[[dict[str, Any]], None] | None = None,
    ingested_at_ns: int | None = None,
) -> Decoded:
    """Decode an OTLP export request of ``signal`` into rows.

    ``mask_attributes`` (``SpanMasker.mask_in_place``) masks, in place, the
    attributes of every span and span event whose instrumentation scope is not
    PyFlare's own (the PyFlare SDK masks before it sends), and the attributes
    and bodies of all log records, before anything is read from them. A log
    body is masked as ``{LOG_BODY: body}``: a mask that decides by key what is
    content should count :data:`LOG_BODY` as content.
    ``ingested_at_ns`` stamps ``_ingested_at`` (now by default).
    """
    signal = Signal(signal)
    encoding = Encoding(encoding)
    request = _parse(signal, body, encoding)
    builder: Spans | Metrics | Logs
    try:
        if signal is Signal.TRACES:
            builder = Spans(limits, mask_attributes, ingested_at_ns)
            (pb_spans if encoding is Encoding.PROTOBUF else json_spans)(request, builder)
        elif signal is Signal.METRICS:
            builder = Metrics(limits, ingested_at_ns)
            (pb_metrics if encoding is Encoding.PROTOBUF else json_metrics)(request, builder)
        else:
            builder = Logs(limits, mask_attributes, ingested_at_ns)
            (pb_logs if encoding is Encoding.PROTOBUF else json_logs)(request, builder)
    except ItemError as exc:
        # Only the request's own structure raises this far: an item's problems reject the item.
        kind = "a protobuf" if encoding is Encoding.PROTOBUF else "an OTLP/JSON"
        raise DecodeError(f"not {kind} {_REQUESTS[signal]}: {exc}") from None
    except RecursionError:
        raise DecodeError(f"the {_REQUESTS[signal]} is nested too deeply") from None
    rejections = builder.rejections
    return Decoded(
        signal=signal,
        batch=builder.table(),
        rejected=rejections.count,
        error_message=rejections.message(_WHAT[signal]),
    )


def _parse(signal: Signal, body: bytes, encoding: Encoding) -> Any:
    if encoding is Encoding.PROTOBUF:
        try:
            return _VIEWS[signal].FromString(body)
        except (ProtobufDecodeError, RecursionError, ValueError) as exc:
            raise DecodeError(f"not a protobuf {_REQUESTS[signal]}: {exc}") from None
    if not body.strip():
        return {}
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not an OTLP/JSON {_REQUESTS[signal]}: invalid JSON: {exc}") from None
    if type(request) is not dict:
        raise DecodeError(
            f"not an OTLP/JSON {_REQUESTS[signal]}: the body must be a JSON object, "
            f"got {type(request).__name__}"
        )
    return request
