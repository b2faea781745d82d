"""The metrics resource: which metrics exist, and one metric as time series.

- ``GET /api/v1/metrics``: the metrics with points in ``[start_time,
  end_time)`` (default: the last 24 hours), filtered by ``service`` and
  ``model_id``, sorted by name, at most ``limit``.
- ``GET /api/v1/metrics/timeseries``: metric ``name`` in ``[start_time,
  end_time)`` (default: the last hour) in buckets of ``step`` (a duration such
  as ``30s``, ``5m``; by default the smallest of 1s, 5s, 10s, 15s, 30s, 1m, 5m,
  10m, 15m, 30m, 1h, 3h, 6h, 12h, 1d, 7d giving at most
  :data:`TARGET_BUCKETS`), aggregated by ``aggregation`` (avg, sum, min, max,
  count, p50, p90, p95, p99, last), one series per value of the ``group_by``
  columns (service_name, model_id, model_version, environment; repeat the
  parameter or give a comma list), keeping points whose ``service``,
  ``model_id``, ``model_version`` and ``environment`` equal the given ones.
  Every bucket of the range is in each series, ``value`` null where it has no
  point. A counter's values are what its points carry (cumulative or delta, as
  sent), not a rate.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from starlette.datastructures import QueryParams
from starlette.routing import Route

from pyflare._time import parse_duration_ns
from pyflare.errors import InvalidArgumentError
from pyflare.store.base import MAX_METRIC_BUCKETS, METRIC_AGGREGATIONS, METRIC_GROUP_COLUMNS
from pyflare_server.api._http import call_store, endpoint, iso_ns, json_response
from pyflare_server.api._models import MetricList, MetricSeries
from pyflare_server.api._params import instant, integer, invalid, records, single
from pyflare_server.api.openapi import Operation, Param, documented
from pyflare_server.auth.permissions import requires

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from pyflare.store.base import SpanStore

__all__ = ["TARGET_BUCKETS", "auto_step", "parse_series", "routes"]

S: Final = 1_000_000_000
TARGET_BUCKETS: Final = 300
MAX_LIST: Final = 1000
MAX_SERIES: Final = 1000
DEFAULT_SERIES: Final = 100
_MAX_TEXT: Final = 512
_STEPS: Final = tuple(
    n * S
    for n in (1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 10800, 21600, 43200, 86400, 604800)
)
# The filter parameters and the metric column each keeps.
_FILTERS: Final = {
    "service": "service_name",
    "model_id": "model_id",
    "model_version": "model_version",
    "environment": "environment",
}
_TIME_TEXT: Final = "ISO 8601, a duration back from now (15m) or nanoseconds since the epoch"
_TEXT: Final = {"type": "string", "minLength": 1, "maxLength": _MAX_TEXT}
_TIME: Final = {"type": "string", "minLength": 1}

_LIST = Operation(
    "List the metrics",
    MetricList,
    (
        Param("start_time", _TIME, f"Points at or after (default 24h ago): {_TIME_TEXT}"),
        Param("end_time", _TIME, f"Points before (default now): {_TIME_TEXT}"),
        Param("service", _TEXT, "Only points of this service"),
        Param("model_id", _TEXT, "Only points of this model"),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIST, "default": MAX_LIST}),
    ),
    tags=("metrics",),
)
_SERIES = Operation(
    "One metric as time series",
    MetricSeries,
    (
        Param("name", _TEXT, "The metric's name", required=True),
        Param("start_time", _TIME, f"Default 1h ago: {_TIME_TEXT}"),
        Param("end_time", _TIME, f"Default now: {_TIME_TEXT}"),
        Param("step", _TIME, "Bucket width: 30s, 5m, 1h (default: about 300 buckets)"),
        Param("aggregation", {"type": "string", "enum": list(METRIC_AGGREGATIONS)}),
        Param(
            "group_by",
            {"type": "string", "pattern": "^[a-z_]+(,[a-z_]+)*$"},
            f"One series per value of: {', '.join(METRIC_GROUP_COLUMNS)}",
            repeated=True,
        ),
        *(
            Param(name, _TEXT, f"Only points whose {column} is this")
            for name, column in _FILTERS.items()
        ),
        Param(
            "max_series",
            {"type": "integer", "minimum": 1, "maximum": MAX_SERIES, "default": DEFAULT_SERIES},
        ),
    ),
    tags=("metrics",),
)


def routes(store: SpanStore) -> list[Route]:
    """The metrics resource's routes, reading from ``store``."""

    @requires("metrics:read")
    @documented(_LIST)
    @endpoint
    async def list_metrics(request: Request) -> Response:
        arguments = parse_list(request.query_params)
        table = await call_store(lambda: store.metric_names(**arguments))
        return json_response({"metrics": [_info(row) for row in records(table)]})

    @requires("metrics:read")
    @documented(_SERIES)
    @endpoint
    async def timeseries(request: Request) -> Response:
        arguments = parse_series(request.query_params)
        name = arguments.pop("name")
        table = await call_store(lambda: store.metric_series(name, **arguments))
        return json_response(_series_body(name, arguments, records(table)))

    return [
        Route("/api/v1/metrics", list_metrics, methods=["GET"], name="list_metrics"),
        Route("/api/v1/metrics/timeseries", timeseries, methods=["GET"], name="metric_timeseries"),
    ]


# -- parameters ----------------------------------------------------------------


def _text(values: dict[str, str], name: str) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if not value.strip():
        raise invalid(f"{name} must not be empty; leave it out to not filter on it")
    if len(value) > _MAX_TEXT:
        raise invalid(f"{name} is longer than {_MAX_TEXT} characters")
    return value


def _window(values: dict[str, str], default_s: int, now_ns: int) -> tuple[int, int]:
    for name in ("start_time", "end_time"):
        _text(values, name)
    until = instant("end_time", values["end_time"], now_ns) if "end_time" in values else now_ns
    since = (
        instant("start_time", values["start_time"], now_ns)
        if "start_time" in values
        else until - default_s * S
    )
    if until <= since:
        raise invalid(f"end_time ({iso_ns(until)}) must be after start_time ({iso_ns(since)})")
    return since, until


def parse_list(params: QueryParams, *, now_ns: int | None = None) -> dict[str, Any]:
    """``SpanStore.metric_names`` keyword arguments from a list query string."""
    values = single(params, ("start_time", "end_time", "service", "model_id", "limit"))
    since, until = _window(values, 86400, time.time_ns() if now_ns is None else now_ns)
    return {
        "since_ns": since,
        "until_ns": until,
        "service": _text(values, "service"),
        "model_id": _text(values, "model_id"),
        "limit": integer("limit", values.get("limit", str(MAX_LIST)), 1, MAX_LIST),
    }


def auto_step(span_ns: int) -> int:
    """The smallest step of the ladder giving at most :data:`TARGET_BUCKETS` buckets."""
    for step in _STEPS:
        if span_ns <= step * TARGET_BUCKETS:
            return step
    return -(-span_ns // MAX_METRIC_BUCKETS)


def parse_series(params: QueryParams, *, now_ns: int | None = None) -> dict[str, Any]:
    """``name`` plus ``SpanStore.metric_series`` keyword arguments from a query string."""
    group_by: list[str] = []
    for given in params.getlist("group_by"):
        for column in given.split(","):
            column = column.strip()
            if column not in METRIC_GROUP_COLUMNS:
                raise invalid(
                    f"group_by {column!r} is not one of {', '.join(METRIC_GROUP_COLUMNS)}"
                )
            if column in group_by:
                raise invalid(f"group_by names {column!r} twice")
            group_by.append(column)
    others = QueryParams([(k, v) for k, v in params.multi_items() if k != "group_by"])
    allowed = ("name", "start_time", "end_time", "step", "aggregation", "max_series", *_FILTERS)
    values = single(others, allowed)
    name = _text(values, "name")
    if name is None:
        raise invalid("name is required: the metric's name (GET /api/v1/metrics lists them)")
    since, until = _window(values, 3600, time.time_ns() if now_ns is None else now_ns)
    step = auto_step(until - since)
    if "step" in values:
        try:
            step = parse_duration_ns(values["step"].strip(), name="step")
        except InvalidArgumentError as exc:
            raise invalid(str(exc)) from None
        if step <= 0:
            raise invalid(f"step must be positive, got {values['step']!r}")
        buckets = -(-(until - since) // step)
        if buckets > MAX_METRIC_BUCKETS:
            raise invalid(
                f"step={values['step']} makes {buckets} buckets, more than {MAX_METRIC_BUCKETS}; "
                f"use a step of at least {-(-(until - since) // MAX_METRIC_BUCKETS) / S:g}s "
                "or a shorter range"
            )
    aggregation = values.get("aggregation", "avg")
    if aggregation not in METRIC_AGGREGATIONS:
        raise invalid(
            f"aggregation must be one of {', '.join(METRIC_AGGREGATIONS)}, got {aggregation!r}"
        )
    filters = {
        column: value
        for parameter, column in _FILTERS.items()
        if (value := _text(values, parameter)) is not None
    }
    return dict(
        name=name,
        since_ns=since,
        until_ns=until,
        step_ns=step,
        aggregation=aggregation,
        group_by=tuple(group_by),
        filters=filters,
        max_series=integer(
            "max_series", values.get("max_series", str(DEFAULT_SERIES)), 1, MAX_SERIES
        ),
    )


# -- answers -------------------------------------------------------------------


def _info(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["metric_name"],
        "value_type": row["value_type"],
        "unit": row["unit"],
        "services": row["services"],
        "points": row["points"],
        "last_seen": iso_ns(row["last_seen"]),
        "last_seen_ns": row["last_seen"],
    }


def _series_body(
    name: str, arguments: dict[str, Any], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    group_by = list(arguments["group_by"])
    series: list[dict[str, Any]] = []
    current: tuple[Any, ...] | None = None
    for row in rows:
        labels = tuple(row[column] for column in group_by)
        if not series or labels != current:
            current = labels
            series.append({"labels": dict(zip(group_by, labels, strict=True)), "points": []})
        series[-1]["points"].append(
            {
                "time": iso_ns(row["bucket"]),
                "time_ns": row["bucket"],
                "value": row["value"],
                "points": row["points"],
            }
        )
    return {
        "name": name,
        "aggregation": arguments["aggregation"],
        "step_ns": arguments["step_ns"],
        "step_seconds": arguments["step_ns"] / S,
        "start_time": iso_ns(arguments["since_ns"]),
        "end_time": iso_ns(arguments["until_ns"]),
        "start_time_ns": arguments["since_ns"],
        "end_time_ns": arguments["until_ns"],
        "group_by": group_by,
        "series": series,
    }
