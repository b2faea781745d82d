"""Canonical span, metric and log rows for the pipeline tests, built straight as Arrow."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import pyarrow as pa

from pyflare.records import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
_span_ids = itertools.count(1)


def tid(n: int) -> str:
    """A trace id whose low 64 bits are ``n``."""
    return f"{n:032x}"


def span_rows(
    n: int,
    *,
    trace_ids: Sequence[str] | None = None,
    spans_per_trace: int = 10,
    service: str | Sequence[str] = "svc",
    attributes: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
    resource: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
    start_ns: int = T0,
) -> pa.Table:
    """``n`` spans, ``spans_per_trace`` to a trace; span ids unique across calls.

    ``service``, ``attributes`` and ``resource`` are one value for every row or
    one per row.
    """
    if trace_ids is None:
        first = next(_span_ids)
        trace_ids = [tid(first * 1_000_003 + i // spans_per_trace) for i in range(n)]
    rows = []
    for i in range(n):
        span_id = next(_span_ids)
        svc = service if isinstance(service, str) else service[i]
        if attributes is None or isinstance(attributes, Mapping):
            attrs = attributes or {}
        else:
            attrs = attributes[i]
        res = {"service.name": svc} if resource is None else resource
        res = res if isinstance(res, Mapping) else res[i]
        rows.append(
            {
                "trace_id": trace_ids[i],
                "span_id": f"{span_id:016x}",
                "parent_span_id": None,
                "start_time": start_ns + i,
                "end_time": start_ns + i + 1000,
                "duration_ns": 1000,
                "service_name": svc,
                "operation_name": "op",
                "span_kind": "internal",
                "status_code": "unset",
                "attributes": list(attrs.items()),
                "resource": list(res.items()),
                "events": [],
                "_ingested_at": start_ns // 1000,
            }
        )
    return pa.Table.from_pylist(rows, schema=SPAN_SCHEMA)


def metric_rows(n: int, *, service: str = "svc") -> pa.Table:
    """``n`` gauge points of one metric."""
    rows = [
        {
            "metric_name": "queue.depth",
            "service_name": service,
            "timestamp": T0 + i,
            "value_type": "gauge",
            "value": float(i),
            "histogram_buckets": [],
            "quantiles": [],
            "attributes": [],
            "resource": [("service.name", service)],
            "_ingested_at": T0 // 1000,
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=METRIC_SCHEMA)


def log_rows(n: int, *, service: str = "svc") -> pa.Table:
    """``n`` INFO log records."""
    rows = [
        {
            "timestamp": T0 + i,
            "severity_number": 9,
            "severity_text": "INFO",
            "body": f"line {i}",
            "service_name": service,
            "attributes": [],
            "resource": [("service.name", service)],
            "_ingested_at": T0 // 1000,
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=LOG_SCHEMA)
