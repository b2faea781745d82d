"""Wire-compatible views of the OTLP export requests, shaped for fast decoding.

The official ``opentelemetry.proto`` classes give every attribute as a message
with a nested ``AnyValue``; reading them costs several Python-level accesses per
attribute, which at OTLP rates is most of the decoding time. These views parse
the same bytes (field numbers and wire types match ``opentelemetry-proto``)
with the upb runtime but stop at the attributes: each ``KeyValue`` (and a log
body's ``AnyValue``) arrives as its encoded bytes, which PyFlare decodes itself
with a cache of the pairs it has seen (see :mod:`._values`). Strings are
declared as bytes, so a stray invalid UTF-8 sequence costs a replacement
character rather than the whole request, and nested values never recurse in
upb, so depth is PyFlare's limit to enforce rather than protobuf's to trip on.

Fields PyFlare doesn't read (links, exemplars, dropped counts…) are left out;
the parser skips them. Views are proto2 so that optional fields (a histogram's
sum, a log's body) say whether they were sent.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["LogsRequest", "MetricsRequest", "TracesRequest"]

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "pyflare.otlpview"

_TYPES = {
    "bytes": _F.TYPE_BYTES,
    "int32": _F.TYPE_INT32,
    "uint32": _F.TYPE_UINT32,
    "sint32": _F.TYPE_SINT32,
    "uint64": _F.TYPE_UINT64,
    "fixed32": _F.TYPE_FIXED32,
    "fixed64": _F.TYPE_FIXED64,
    "sfixed64": _F.TYPE_SFIXED64,
    "double": _F.TYPE_DOUBLE,
    "bool": _F.TYPE_BOOL,
}

# message name -> fields as (name, number, type, repeated); a type not in _TYPES
# is a message of this file. A "oneof:" prefix on the name puts the field in the
# message's one oneof.
_MESSAGES: dict[str, list[tuple[str, int, str, bool]]] = {
    # common
    "Resource": [("attributes", 1, "bytes", True)],
    "Scope": [("name", 1, "bytes", False), ("version", 2, "bytes", False)],
    # traces
    "TracesRequest": [("resource_spans", 1, "ResourceSpans", True)],
    "ResourceSpans": [
        ("resource", 1, "Resource", False),
        ("scope_spans", 2, "ScopeSpans", True),
    ],
    "ScopeSpans": [("scope", 1, "Scope", False), ("spans", 2, "Span", True)],
    "Span": [
        ("trace_id", 1, "bytes", False),
        ("span_id", 2, "bytes", False),
        ("parent_span_id", 4, "bytes", False),
        ("name", 5, "bytes", False),
        ("kind", 6, "int32", False),
        ("start_time_unix_nano", 7, "fixed64", False),
        ("end_time_unix_nano", 8, "fixed64", False),
        ("attributes", 9, "bytes", True),
        ("events", 11, "Event", True),
        ("status", 15, "Status", False),
    ],
    "Event": [
        ("time_unix_nano", 1, "fixed64", False),
        ("name", 2, "bytes", False),
        ("attributes", 3, "bytes", True),
    ],
    "Status": [("message", 2, "bytes", False), ("code", 3, "int32", False)],
    # metrics
    "MetricsRequest": [("resource_metrics", 1, "ResourceMetrics", True)],
    "ResourceMetrics": [
        ("resource", 1, "Resource", False),
        ("scope_metrics", 2, "ScopeMetrics", True),
    ],
    "ScopeMetrics": [("scope", 1, "Scope", False), ("metrics", 2, "Metric", True)],
    "Metric": [
        ("name", 1, "bytes", False),
        ("unit", 3, "bytes", False),
        ("gauge", 5, "Gauge", False),
        ("sum", 7, "Sum", False),
        ("histogram", 9, "Histogram", False),
        ("exponential_histogram", 10, "ExponentialHistogram", False),
        ("summary", 11, "Summary", False),
    ],
    "Gauge": [("data_points", 1, "NumberDataPoint", True)],
    "Sum": [
        ("data_points", 1, "NumberDataPoint", True),
        ("aggregation_temporality", 2, "int32", False),
        ("is_monotonic", 3, "bool", False),
    ],
    "Histogram": [
        ("data_points", 1, "HistogramDataPoint", True),
        ("aggregation_temporality", 2, "int32", False),
    ],
    "ExponentialHistogram": [
        ("data_points", 1, "ExponentialHistogramDataPoint", True),
        ("aggregation_temporality", 2, "int32", False),
    ],
    "Summary": [("data_points", 1, "SummaryDataPoint", True)],
    "NumberDataPoint": [
        ("attributes", 7, "bytes", True),
        ("start_time_unix_nano", 2, "fixed64", False),
        ("time_unix_nano", 3, "fixed64", False),
        ("oneof:as_double", 4, "double", False),
        ("oneof:as_int", 6, "sfixed64", False),
        ("flags", 8, "uint32", False),
    ],
    "HistogramDataPoint": [
        ("attributes", 9, "bytes", True),
        ("start_time_unix_nano", 2, "fixed64", False),
        ("time_unix_nano", 3, "fixed64", False),
        ("count", 4, "fixed64", False),
        ("sum", 5, "double", False),
        ("bucket_counts", 6, "fixed64", True),
        ("explicit_bounds", 7, "double", True),
        ("flags", 10, "uint32", False),
    ],
    "ExponentialHistogramDataPoint": [
        ("attributes", 1, "bytes", True),
        ("start_time_unix_nano", 2, "fixed64", False),
        ("time_unix_nano", 3, "fixed64", False),
        ("count", 4, "fixed64", False),
        ("sum", 5, "double", False),
        ("scale", 6, "sint32", False),
        ("zero_count", 7, "fixed64", False),
        ("positive", 8, "Buckets", False),
        ("negative", 9, "Buckets", False),
        ("flags", 10, "uint32", False),
        ("zero_threshold", 14, "double", False),
    ],
    "Buckets": [("offset", 1, "sint32", False), ("bucket_counts", 2, "uint64", True)],
    "SummaryDataPoint": [
        ("attributes", 7, "bytes", True),
        ("start_time_unix_nano", 2, "fixed64", False),
        ("time_unix_nano", 3, "fixed64", False),
        ("count", 4, "fixed64", False),
        ("sum", 5, "double", False),
        ("quantile_values", 6, "ValueAtQuantile", True),
        ("flags", 8, "uint32", False),
    ],
    "ValueAtQuantile": [("quantile", 1, "double", False), ("value", 2, "double", False)],
    # logs
    "LogsRequest": [("resource_logs", 1, "ResourceLogs", True)],
    "ResourceLogs": [
        ("resource", 1, "Resource", False),
        ("scope_logs", 2, "ScopeLogs", True),
    ],
    "ScopeLogs": [("scope", 1, "Scope", False), ("log_records", 2, "LogRecord", True)],
    "LogRecord": [
        ("time_unix_nano", 1, "fixed64", False),
        ("observed_time_unix_nano", 11, "fixed64", False),
        ("severity_number", 2, "int32", False),
        ("severity_text", 3, "bytes", False),
        ("body", 5, "bytes", False),
        ("attributes", 6, "bytes", True),
        ("trace_id", 9, "bytes", False),
        ("span_id", 10, "bytes", False),
        ("event_name", 12, "bytes", False),
    ],
}


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="pyflare/otlp_view.proto", package=_PACKAGE, syntax="proto2"
    )
    for message_name, fields in _MESSAGES.items():
        message = file.message_type.add(name=message_name)
        for name, number, type_name, repeated in fields:
            field = message.field.add(
                name=name.removeprefix("oneof:"),
                number=number,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if type_name in _TYPES:
                field.type = _TYPES[type_name]
            else:
                field.type = _F.TYPE_MESSAGE
                field.type_name = f".{_PACKAGE}.{type_name}"
            if name.startswith("oneof:"):
                if not message.oneof_decl:
                    message.oneof_decl.add(name="value")
                field.oneof_index = 0
    return file


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())


def _message(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


TracesRequest: Any = _message("TracesRequest")
MetricsRequest: Any = _message("MetricsRequest")
LogsRequest: Any = _message("LogsRequest")
