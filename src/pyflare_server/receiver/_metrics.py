"""OTLP metrics (protobuf and JSON) into metric point rows (:data:`~pyflare.records.METRIC_SCHEMA`).

One row per data point. ``value_type`` is ``gauge`` for gauges and
non-monotonic sums, ``counter`` for monotonic sums, ``histogram`` for explicit
and exponential histograms, ``summary`` for summaries. ``value`` is the
point's number, and for histograms and summaries their mean (sum / count; null
when either is unknown or the count is 0). Exponential histograms are stored
with explicit upper bounds: the negative buckets (most negative first), the
zero bucket up to the zero threshold, the positive buckets, then +inf. The
model columns come from the point's attributes, read like a span's
(``gen_ai.request.model``…), and ``environment`` from the resource's
``deployment.environment.name`` (or the older ``deployment.environment``).

A point is rejected on its own when its time is missing or its buckets don't
match its bounds.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pyarrow as pa

from pyflare.mlfields import ml_fields
from pyflare.records import METRIC_SCHEMA
from pyflare_server.receiver._decoding import DecodeLimits, ItemError, Rejections
from pyflare_server.receiver._jsonfields import (
    field,
    json_float,
    json_int,
    json_list,
    json_object,
    json_text,
    json_time,
)
from pyflare_server.receiver._jsonvalues import (
    json_attributes,
)
from pyflare_server.receiver._pbvalues import (
    kv_cache,
    pb_attributes,
)
from pyflare_server.receiver._values import (
    Attributes,
    Entry,
    attribute_map,
    resource_entry,
)

__all__ = ["Metrics", "json_metrics", "pb_metrics"]

_INT64_MAX = 2**63 - 1
_MAX_BUCKETS = 10_000
_TEMPORALITIES = (None, "delta", "cumulative")
_INF = math.inf

# (value_type, temporality, value, count, sum, buckets, quantiles) of one data point.
_Point = tuple[str, str | None, float | None, int | None, float | None, list[Any], list[Any]]


class Metrics:
    """Columns of metric point rows, filled point by point and turned into one table."""

    def __init__(self, limits: DecodeLimits, ingested_at_ns: int | None) -> None:
        self.limits = limits
        self.ingested_at_ns = ingested_at_ns
        self.rejections = Rejections()
        self.rows: list[dict[str, Any]] = []
        self.resource: tuple[list[tuple[str, str]], str, str | None] = ([], "", None)

    def set_resource(self, attributes: Attributes) -> None:
        keys, values, service = resource_entry(attributes, self.limits)
        by_key = dict(zip(keys, values, strict=True))
        environment = by_key.get("deployment.environment.name") or by_key.get(
            "deployment.environment"
        )
        self.resource = (list(by_key.items()), service, environment)

    def add(
        self,
        name: str,
        unit: str,
        scope: str,
        attributes: Attributes,
        start: int,
        time_ns: int,
        point: _Point,
    ) -> None:
        if time_ns <= 0:
            raise ItemError("timeUnixNano is missing")
        if time_ns > _INT64_MAX or start > _INT64_MAX:
            raise ItemError("a time is past the year 2262 (out of the int64 nanosecond range)")
        values, pairs = attribute_map(attributes, self.limits, None)
        ml = ml_fields(values) if values else {}
        pairs_resource, service, environment = self.resource
        value_type, temporality, value, count, total, buckets, quantiles = point
        self.rows.append(
            {
                "metric_name": name,
                "service_name": service,
                "model_id": ml.get("model_id"),
                "model_version": ml.get("model_version"),
                "environment": environment,
                "timestamp": time_ns,
                "start_time": start or None,
                "value_type": value_type,
                "temporality": temporality,
                "value": value,
                "histogram_count": count,
                "histogram_sum": total,
                "histogram_buckets": buckets,
                "quantiles": quantiles,
                "unit": unit or None,
                "scope_name": scope or None,
                "attributes": pairs,
                "resource": pairs_resource,
                "_ingested_at": 0,
            }
        )

    def table(self) -> pa.Table:
        now_ns = self.ingested_at_ns if self.ingested_at_ns is not None else time.time_ns()
        now_us = now_ns // 1000
        for row in self.rows:
            row["_ingested_at"] = now_us
        return pa.Table.from_pylist(self.rows, schema=METRIC_SCHEMA)


def _mean(count: int | None, total: float | None) -> float | None:
    return total / count if count and total is not None else None


def _count(value: int) -> int:
    if value > _INT64_MAX:
        raise ItemError(f"count {value} is out of the int64 range")
    return value


def _explicit(bounds: list[float], counts: list[int]) -> list[dict[str, Any]]:
    if not counts:
        return []
    if len(counts) != len(bounds) + 1:
        raise ItemError(
            f"{len(counts)} bucket counts for {len(bounds)} explicit bounds (want bounds + 1)"
        )
    if len(counts) > _MAX_BUCKETS:
        raise ItemError(f"{len(counts)} buckets, more than {_MAX_BUCKETS}")
    return [
        {"upper_bound": bound, "count": _count(count)}
        for bound, count in zip([*bounds, _INF], counts, strict=True)
    ]


def _power(base: float, exponent: int) -> float:
    try:
        return float(base**exponent)
    except OverflowError:
        return _INF


def _exponential(
    scale: int,
    zero_count: int,
    zero_threshold: float,
    positive: tuple[int, list[int]],
    negative: tuple[int, list[int]],
) -> list[dict[str, Any]]:
    """Base-2 exponential buckets as explicit upper bounds (see the module docstring)."""
    if len(positive[1]) + len(negative[1]) > _MAX_BUCKETS:
        raise ItemError(f"more than {_MAX_BUCKETS} buckets")
    if not -10 <= scale <= 20:
        raise ItemError(f"scale {scale} is outside OTLP's range -10..20")
    base = 2.0 ** (2.0**-scale)
    buckets: list[dict[str, Any]] = []
    offset, counts = negative
    # Negative bucket i holds (-base**(i+1), -base**i]; the most negative comes first.
    for index in reversed(range(len(counts))):
        buckets.append(
            {"upper_bound": -_power(base, offset + index), "count": _count(counts[index])}
        )
    if zero_count or positive[1] or negative[1]:
        buckets.append({"upper_bound": zero_threshold, "count": _count(zero_count)})
    offset, counts = positive
    for index, count in enumerate(counts):
        buckets.append({"upper_bound": _power(base, offset + index + 1), "count": _count(count)})
    if buckets and buckets[-1]["upper_bound"] != _INF:
        buckets.append({"upper_bound": _INF, "count": 0})
    return buckets


# -- protobuf ----------------------------------------------------------------------------


def pb_metrics(request: Any, metrics: Metrics) -> None:
    """Add the data points of a parsed ``MetricsRequest`` view (see :mod:`._pbviews`)."""
    limits = metrics.limits
    cache = kv_cache(limits)
    for r, resource_metrics in enumerate(request.resource_metrics):
        metrics.set_resource(pb_attributes(resource_metrics.resource.attributes, limits, cache))
        for s, scope_metrics in enumerate(resource_metrics.scope_metrics):
            scope = scope_metrics.scope.name.decode("utf-8", "replace")
            for m, metric in enumerate(scope_metrics.metrics):
                where = f"resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}]"
                _pb_metric(metric, scope, metrics, where, cache)


def _pb_metric(
    metric: Any, scope: str, metrics: Metrics, where: str, cache: dict[bytes, Entry]
) -> None:
    limits = metrics.limits
    name = metric.name.decode("utf-8", "replace")[: limits.max_attribute_chars]
    unit = metric.unit.decode("utf-8", "replace")[: limits.max_attribute_chars]
    data = _pb_data(metric)
    if data is None:
        return
    kind, message = data
    temporality: str | None = None
    if kind != "gauge" and kind != "summary":
        number = message.aggregation_temporality
        temporality = _TEMPORALITIES[number] if 0 <= number < 3 else None
    for p, point in enumerate(message.data_points):
        try:
            metrics.add(
                name,
                unit,
                scope,
                pb_attributes(point.attributes, limits, cache),
                point.start_time_unix_nano,
                point.time_unix_nano,
                _pb_point(kind, message, point, temporality),
            )
        except ItemError as exc:
            metrics.rejections.add(f"{where}.{kind}.dataPoints[{p}]", str(exc))


def _pb_data(metric: Any) -> tuple[str, Any] | None:
    for kind in ("gauge", "sum", "histogram", "exponential_histogram", "summary"):
        if metric.HasField(kind):
            return kind, getattr(metric, kind)
    return None


def _pb_point(kind: str, message: Any, point: Any, temporality: str | None) -> _Point:
    if kind == "gauge" or kind == "sum":
        which = point.WhichOneof("value")
        value = None if which is None else float(getattr(point, which))
        value_type = "counter" if kind == "sum" and message.is_monotonic else "gauge"
        return value_type, temporality if kind == "sum" else None, value, None, None, [], []
    count = _count(point.count)
    total = point.sum if point.HasField("sum") else None
    if kind == "summary":
        quantiles = [{"quantile": q.quantile, "value": q.value} for q in point.quantile_values]
        return "summary", None, _mean(count, total), count, total, [], quantiles
    if kind == "histogram":
        buckets = _explicit(list(point.explicit_bounds), list(point.bucket_counts))
    else:
        buckets = _exponential(
            point.scale,
            point.zero_count,
            point.zero_threshold,
            (point.positive.offset, list(point.positive.bucket_counts)),
            (point.negative.offset, list(point.negative.bucket_counts)),
        )
    return "histogram", temporality, _mean(count, total), count, total, buckets, []


# -- JSON --------------------------------------------------------------------------------

_KINDS = (
    ("gauge", "gauge", "gauge"),
    ("sum", "sum", "sum"),
    ("histogram", "histogram", "histogram"),
    ("exponential_histogram", "exponentialHistogram", "exponential_histogram"),
    ("summary", "summary", "summary"),
)
_TEMPORALITY_WORDS = {
    "AGGREGATION_TEMPORALITY_UNSPECIFIED": 0,
    "AGGREGATION_TEMPORALITY_DELTA": 1,
    "AGGREGATION_TEMPORALITY_CUMULATIVE": 2,
}


def json_metrics(request: Any, metrics: Metrics) -> None:
    """Add the data points of a decoded OTLP/JSON ``ExportMetricsServiceRequest``."""
    limits = metrics.limits
    resources = json_list(request, "resourceMetrics", "resource_metrics", "")
    for r, resource_metrics in enumerate(resources):
        where = f"resourceMetrics[{r}]"
        resource_metrics = json_object(resource_metrics, where)
        resource = json_object(resource_metrics.get("resource") or {}, f"{where}.resource")
        try:
            metrics.set_resource(json_attributes(resource.get("attributes"), limits))
        except ItemError as exc:
            raise ItemError(f"{where}.resource: {exc}") from None
        for s, scope_metrics in enumerate(
            json_list(resource_metrics, "scopeMetrics", "scope_metrics", where)
        ):
            where_scope = f"{where}.scopeMetrics[{s}]"
            scope_metrics = json_object(scope_metrics, where_scope)
            scope = json_object(scope_metrics.get("scope") or {}, f"{where_scope}.scope")
            scope_name, _ = json_text(scope.get("name"), "scope.name", limits)
            for m, metric in enumerate(json_list(scope_metrics, "metrics", "metrics", where_scope)):
                _json_metric(metric, scope_name, metrics, f"{where_scope}.metrics[{m}]")


def _json_metric(metric: Any, scope: str, metrics: Metrics, where: str) -> None:
    limits = metrics.limits
    metric = json_object(metric, where)
    name, _ = json_text(metric.get("name"), f"{where}.name", limits)
    unit, _ = json_text(metric.get("unit"), f"{where}.unit", limits)
    found = _json_data(metric)
    if found is None:
        return
    kind, camel, data = found
    data = json_object(data, f"{where}.{camel}")
    temporality: str | None = None
    if kind != "gauge" and kind != "summary":
        number = data.get("aggregationTemporality", data.get("aggregation_temporality"))
        if type(number) is str:
            number = _TEMPORALITY_WORDS.get(number, number)
        try:
            number = 0 if number is None else json_int(number, "aggregationTemporality")
        except ItemError as exc:
            raise ItemError(f"{where}.{camel}: {exc}") from None
        temporality = _TEMPORALITIES[number] if 0 <= number < 3 else None
    monotonic = field(data, "isMonotonic", "is_monotonic") is True
    for p, point in enumerate(json_list(data, "dataPoints", "data_points", f"{where}.{camel}")):
        try:
            point = json_object(point, "a data point")
            attributes = json_attributes(point.get("attributes"), limits)
            start = json_time(field(point, "startTimeUnixNano", "start_time_unix_nano"), "start")
            time_ns = json_time(field(point, "timeUnixNano", "time_unix_nano"), "timeUnixNano")
            parsed = _json_point(kind, point, temporality, monotonic)
            metrics.add(name, unit, scope, attributes, start, time_ns, parsed)
        except ItemError as exc:
            metrics.rejections.add(f"{where}.{camel}.dataPoints[{p}]", str(exc))


def _json_data(metric: dict[str, Any]) -> tuple[str, str, Any] | None:
    """(kind, its OTLP/JSON name, its data) of a metric, or None when it has none."""
    for kind, camel, snake in _KINDS:
        data = field(metric, camel, snake)
        if data is not None:
            return kind, camel, data
    return None


def _json_counts(value: Any, what: str) -> list[int]:
    if value is None:
        return []
    if type(value) is not list:
        raise ItemError(f"{what} must be a list")
    return [json_int(count, what) for count in value]


def _json_point(
    kind: str, point: dict[str, Any], temporality: str | None, monotonic: bool
) -> _Point:
    if kind == "gauge" or kind == "sum":
        value: float | None = None
        as_double = field(point, "asDouble", "as_double")
        as_int = field(point, "asInt", "as_int")
        if as_double is not None:
            value = json_float(as_double, "asDouble")
        elif as_int is not None:
            value = float(json_int(as_int, "asInt"))
        value_type = "counter" if kind == "sum" and monotonic else "gauge"
        return value_type, temporality if kind == "sum" else None, value, None, None, [], []
    raw_count = point.get("count")
    count = 0 if raw_count is None else _count(json_int(raw_count, "count"))
    raw_sum = point.get("sum")
    total = None if raw_sum is None else json_float(raw_sum, "sum")
    if kind == "summary":
        quantiles = []
        for item in json_list(point, "quantileValues", "quantile_values", "dataPoint"):
            item = json_object(item, "a quantile value")
            quantiles.append(
                {
                    "quantile": json_float(item.get("quantile", 0.0), "quantile"),
                    "value": json_float(item.get("value", 0.0), "value"),
                }
            )
        return "summary", None, _mean(count, total), count, total, [], quantiles
    if kind == "histogram":
        bounds = [
            json_float(bound, "explicitBounds")
            for bound in json_list(point, "explicitBounds", "explicit_bounds", "dataPoint")
        ]
        counts = _json_counts(field(point, "bucketCounts", "bucket_counts"), "bucketCounts")
        buckets = _explicit(bounds, counts)
    else:
        buckets = _exponential(
            json_int(point.get("scale", 0), "scale"),
            json_int(field(point, "zeroCount", "zero_count") or 0, "zeroCount"),
            json_float(field(point, "zeroThreshold", "zero_threshold") or 0.0, "zeroThreshold"),
            _json_side(point.get("positive"), "positive"),
            _json_side(point.get("negative"), "negative"),
        )
    return "histogram", temporality, _mean(count, total), count, total, buckets, []


def _json_side(value: Any, what: str) -> tuple[int, list[int]]:
    if value is None:
        return 0, []
    side = json_object(value, what)
    offset = json_int(side.get("offset", 0), f"{what}.offset")
    return offset, _json_counts(
        field(side, "bucketCounts", "bucket_counts"), f"{what}.bucketCounts"
    )
