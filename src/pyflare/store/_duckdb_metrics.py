"""The DuckDB store's metric queries: which metrics exist, and one metric as time series.

:class:`~pyflare.store.duckdb.DuckDBSpanStore` delegates ``metric_names`` and
``metric_series`` here: :func:`check_series` checks the arguments (every store
applies the same rules; it is plain Python), the ``*_query`` functions build
the SQL with every value bound as a parameter.

A series is one combination of the ``group_by`` columns among the points of
the metric in ``[since_ns, until_ns)`` that pass the filters. Its buckets start
at ``since_ns`` and are ``step_ns`` wide; every bucket of the range is in the
answer, with a NULL value and 0 points when the series has no point in it.
Series come ordered by their group values (NULLs first), at most
``max_series`` of them; a metric without points in the range has no series.
The aggregations work on the points' ``value`` (a histogram's or summary's
mean): ``last`` is the value of the latest point, ``count`` the number of
points with a value, ``pNN`` the continuous quantile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyflare.errors import QueryError
from pyflare.store.base import MAX_METRIC_BUCKETS, METRIC_AGGREGATIONS, METRIC_GROUP_COLUMNS

__all__ = ["SeriesRequest", "check_series", "names_query", "series_query"]

_AGGREGATES: Mapping[str, str] = {
    "avg": 'avg("value")',
    "sum": 'sum("value")',
    "min": 'min("value")',
    "max": 'max("value")',
    "count": 'count("value")',
    "p50": 'quantile_cont("value", 0.5)',
    "p90": 'quantile_cont("value", 0.9)',
    "p95": 'quantile_cont("value", 0.95)',
    "p99": 'quantile_cont("value", 0.99)',
    "last": 'arg_max("value", "timestamp")',
}


@dataclass(frozen=True)
class SeriesRequest:
    """The checked arguments of ``metric_series``."""

    name: str
    since_ns: int
    until_ns: int
    step_ns: int
    aggregation: str
    group_by: tuple[str, ...]
    filters: tuple[tuple[str, str], ...]
    max_series: int

    @property
    def buckets(self) -> int:
        return math.ceil((self.until_ns - self.since_ns) / self.step_ns)


def check_series(
    name: str,
    *,
    since_ns: int,
    until_ns: int,
    step_ns: int,
    aggregation: str = "avg",
    group_by: Sequence[str] = (),
    filters: Mapping[str, str] | None = None,
    max_series: int = 100,
) -> SeriesRequest:
    """The arguments of ``metric_series`` checked; ``QueryError`` naming the bad one."""
    if not isinstance(name, str) or not name:
        raise QueryError(f"the metric name must be a non-empty string, got {name!r}")
    for label, value in (("since_ns", since_ns), ("until_ns", until_ns), ("step_ns", step_ns)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise QueryError(f"{label} must be an integer (ns), got {value!r}")
    if until_ns <= since_ns:
        raise QueryError(f"until_ns ({until_ns}) must be after since_ns ({since_ns})")
    if step_ns <= 0:
        raise QueryError(f"step_ns must be positive, got {step_ns}")
    if aggregation not in _AGGREGATES:
        raise QueryError(
            f"aggregation {aggregation!r} is not one of {', '.join(METRIC_AGGREGATIONS)}"
        )
    groups = tuple(group_by)
    for column in groups:
        if column not in METRIC_GROUP_COLUMNS:
            raise QueryError(f"group_by {column!r} is not one of {', '.join(METRIC_GROUP_COLUMNS)}")
    if len(set(groups)) != len(groups):
        raise QueryError(f"group_by names a column twice: {list(groups)}")
    pairs = tuple(sorted((filters or {}).items()))
    for column, wanted in pairs:
        if column not in METRIC_GROUP_COLUMNS:
            raise QueryError(f"filter {column!r} is not one of {', '.join(METRIC_GROUP_COLUMNS)}")
        if not isinstance(wanted, str):
            raise QueryError(f"filter {column} must be a string, got {wanted!r}")
    if isinstance(max_series, bool) or not isinstance(max_series, int) or max_series < 1:
        raise QueryError(f"max_series must be a positive integer, got {max_series!r}")
    request = SeriesRequest(
        name, since_ns, until_ns, step_ns, aggregation, groups, pairs, max_series
    )
    if request.buckets > MAX_METRIC_BUCKETS:
        raise QueryError(
            f"{request.buckets} buckets of {step_ns} ns is more than {MAX_METRIC_BUCKETS}; "
            "use a larger step or a shorter range"
        )
    return request


def names_query(
    since_ns: int | None,
    until_ns: int | None,
    service: str | None,
    model_id: str | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """SQL and parameters of ``metric_names``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise QueryError(f"limit must be a non-negative integer, got {limit!r}")
    where: list[str] = []
    params: list[Any] = []
    if since_ns is not None:
        where.append('"timestamp" >= make_timestamp_ns(?)')
        params.append(int(since_ns))
    if until_ns is not None:
        where.append('"timestamp" < make_timestamp_ns(?)')
        params.append(int(until_ns))
    if service is not None:
        where.append("service_name = ?")
        params.append(service)
    if model_id is not None:
        where.append("model_id = ?")
        params.append(model_id)
    where_sql = ("WHERE " + " AND ".join(where)) if where else ""
    sql = f"""
        SELECT metric_name,
               arg_max(value_type, "timestamp") AS value_type,
               arg_max(unit, "timestamp") AS unit,
               list_sort(list(DISTINCT service_name)) AS services,
               CAST(count(*) AS BIGINT) AS points,
               max("timestamp") AS last_seen
        FROM metrics {where_sql}
        GROUP BY metric_name
        ORDER BY metric_name
        LIMIT ?
    """
    return sql, [*params, limit]


def series_query(request: SeriesRequest) -> tuple[str, list[Any]]:
    """SQL and parameters of ``metric_series`` (:func:`check_series` first)."""
    groups = [f'"{column}"' for column in request.group_by]
    where = [
        "metric_name = ?",
        '"timestamp" >= make_timestamp_ns(?)',
        '"timestamp" < make_timestamp_ns(?)',
    ]
    where_params: list[Any] = [request.name, request.since_ns, request.until_ns]
    for column, value in request.filters:
        where.append(f'"{column}" = ?')
        where_params.append(value)
    group_list = "".join(f"{g}, " for g in groups)
    order = ", ".join(f"{g} NULLS FIRST" for g in groups) or "1"
    joined = "".join(f" AND g.{g} IS NOT DISTINCT FROM a.{g}" for g in groups)
    sql = f"""
        WITH pts AS (
            SELECT {group_list}
                   CAST((epoch_ns("timestamp") - ?) // ? AS BIGINT) AS k,
                   "value", "timestamp"
            FROM metrics WHERE {" AND ".join(where)}
        ),
        series AS (
            SELECT DISTINCT {group_list} 1 AS _one FROM pts ORDER BY {order} LIMIT ?
        ),
        grid AS (
            SELECT s.*, r.range AS k FROM series s CROSS JOIN range(0, ?) r
        ),
        agg AS (
            SELECT {group_list} k, CAST({_AGGREGATES[request.aggregation]} AS DOUBLE) AS v,
                   CAST(count(*) AS BIGINT) AS n
            FROM pts GROUP BY {group_list} k
        )
        SELECT make_timestamp_ns(? + g.k * ?) AS bucket,
               {"".join(f"g.{g}, " for g in groups)}
               a.v AS "value", coalesce(a.n, 0) AS points
        FROM grid g LEFT JOIN agg a ON g.k = a.k{joined}
        ORDER BY {"".join(f"g.{g} NULLS FIRST, " for g in groups)} g.k
    """
    params = [
        request.since_ns,
        request.step_ns,
        *where_params,
        request.max_series,
        request.buckets,
        request.since_ns,
        request.step_ns,
    ]
    return sql, params
