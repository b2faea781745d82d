"""The ClickHouse store's metric queries: metric names and one metric as time series.

The arguments are checked by the same code as the DuckDB store's
(:func:`pyflare.store._duckdb_metrics.check_series`); the SQL says the same in
ClickHouse: ``pNN`` is the interpolated quantile (``quantileExactInclusive``,
DuckDB's ``quantile_cont``), ``last`` the value of the latest point. A LEFT
JOIN of every (series, bucket) onto the aggregates runs with
``join_use_nulls = 1`` so empty buckets have a NULL value, as in DuckDB.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyflare.errors import QueryError
from pyflare.store._duckdb_metrics import SeriesRequest

__all__ = ["SERIES_SETTINGS", "names_query", "series_query"]

SERIES_SETTINGS: Mapping[str, Any] = {"join_use_nulls": 1}

_AGGREGATES: Mapping[str, str] = {
    "avg": "avg(p.value)",
    "sum": "sum(p.value)",
    "min": "min(p.value)",
    "max": "max(p.value)",
    "count": "count(p.value)",
    "p50": "quantileExactInclusive(0.5)(p.value)",
    "p90": "quantileExactInclusive(0.9)(p.value)",
    "p95": "quantileExactInclusive(0.95)(p.value)",
    "p99": "quantileExactInclusive(0.99)(p.value)",
    "last": "argMax(p.value, p.timestamp)",
}


def names_query(
    since_ns: int | None,
    until_ns: int | None,
    service: str | None,
    model_id: str | None,
    limit: int,
) -> tuple[str, dict[str, Any]]:
    """SQL and parameters of ``metric_names``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise QueryError(f"limit must be a non-negative integer, got {limit!r}")
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    for clause, name, value in (
        ("m.timestamp >= fromUnixTimestamp64Nano({since:Int64})", "since", since_ns),
        ("m.timestamp < fromUnixTimestamp64Nano({until:Int64})", "until", until_ns),
        ("m.service_name = {service:String}", "service", service),
        ("m.model_id = {model:String}", "model", model_id),
    ):
        if value is not None:
            where.append(clause)
            params[name] = int(value) if name in ("since", "until") else str(value)
    where_sql = ("WHERE " + " AND ".join(where)) if where else ""
    sql = f"""
        SELECT m.metric_name AS metric_name,
               argMax(m.value_type, m.timestamp) AS value_type,
               argMax(m.unit, m.timestamp) AS unit,
               arraySort(groupUniqArray(toString(m.service_name))) AS services,
               toInt64(count()) AS points,
               max(m.timestamp) AS last_seen
        FROM metrics AS m {where_sql}
        GROUP BY m.metric_name
        ORDER BY metric_name
        LIMIT {{limit:UInt64}}
    """
    return sql, params


def series_query(request: SeriesRequest) -> tuple[str, dict[str, Any]]:
    """SQL and parameters of ``metric_series`` (the request checked by ``check_series``)."""
    groups = list(request.group_by)
    where = [
        "metric_name = {name:String}",
        "timestamp >= fromUnixTimestamp64Nano({since:Int64})",
        "timestamp < fromUnixTimestamp64Nano({until:Int64})",
    ]
    params: dict[str, Any] = {
        "name": request.name,
        "since": request.since_ns,
        "until": request.until_ns,
        "step": request.step_ns,
        "max_series": request.max_series,
        "buckets": request.buckets,
    }
    for index, (column, value) in enumerate(request.filters):
        where.append(f"{column} = {{f{index}:String}}")
        params[f"f{index}"] = value
    selected = "".join(f"toNullable(toString({g})) AS {g}, " for g in groups)
    group_list = "".join(f"p.{g}, " for g in groups)
    series_columns = "".join(f"{g}, " for g in groups)
    order = ", ".join(f"{g} ASC NULLS FIRST" for g in groups) or "1"
    joined = "".join(f" AND isNotDistinctFrom(g.{g}, a.{g})" for g in groups)
    sql = f"""
        WITH pts AS (
            SELECT {selected}
                   intDiv(toUnixTimestamp64Nano(timestamp) - {{since:Int64}}, {{step:Int64}}) AS k,
                   value, timestamp
            FROM metrics WHERE {" AND ".join(where)}
        ),
        series AS (
            SELECT DISTINCT {series_columns} 1 AS _one FROM pts
            ORDER BY {order} LIMIT {{max_series:UInt64}}
        ),
        grid AS (
            SELECT {series_columns} arrayJoin(range(toUInt64({{buckets:UInt64}}))) AS k
            FROM series
        ),
        agg AS (
            SELECT {group_list} p.k AS k,
                   toFloat64({_AGGREGATES[request.aggregation]}) AS v,
                   toInt64(count()) AS n
            FROM pts AS p GROUP BY {group_list} p.k
        )
        SELECT fromUnixTimestamp64Nano(toInt64({{since:Int64}} + g.k * {{step:Int64}})) AS bucket,
               {"".join(f"g.{g} AS {g}, " for g in groups)}
               a.v AS value, toInt64(ifNull(a.n, 0)) AS points
        FROM grid AS g LEFT JOIN agg AS a ON g.k = a.k{joined}
        ORDER BY {"".join(f"g.{g} ASC NULLS FIRST, " for g in groups)} g.k
    """
    return sql, params
