"""The DuckDB store's cost tables: cost rows, their summaries, and cost rewrites.

:class:`~pyflare.store.duckdb.DuckDBSpanStore` delegates its cost methods here:
these functions check the arguments, build the SQL and run it on the
connection the store hands them, the store holding its lock around them.

A span has at most one cost row: writing a row for a span that has one
replaces it (delete and insert in one transaction), which is what a
recompute needs. Sums skip NULLs and stay NULL when no row of a group knows
the value, so an unpriced call counts in ``requests`` and ``unpriced_requests``
and never as $0. DuckDB sums BIGINTs to HUGEINT: every sum is cast back to
BIGINT (int64 micro-dollars reach past nine trillion dollars).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pyflare.errors import StoreError
from pyflare.records import COST_SCHEMA, SPAN_SCHEMA
from pyflare.store._cost_checks import (
    breakdown_column,
    checked_after,
    checked_filters,
    checked_group_by,
    checked_limit,
    checked_range,
)
from pyflare.store.batches import conform, first_of_each_span

__all__ = [
    "breakdown_query",
    "daily_query",
    "model_spans_query",
    "replace_costs",
    "summary_query",
    "update_span_costs",
]

logger = logging.getLogger(__name__)

_VIEW = "_pyflare_cost_batch"
# An Arrow scan runs one thread per record batch: split writes so both cores work.
_SCAN_CHUNK_ROWS = 4096
_PERIODS = {"hour": "date_trunc('hour', \"timestamp\")", "day": "date_trunc('day', \"timestamp\")"}
_TOTALS = """
    count(*) AS requests,
    CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
    CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
    CAST(sum(total_tokens) AS BIGINT) AS total_tokens,
    CAST(sum(total_cost_micros) AS BIGINT) AS cost_micros,
    count(*) - count(total_cost_micros) AS unpriced_requests,
    count(*) FILTER (WHERE tokens_estimated) AS estimated_token_requests
"""
# The columns that update_span_costs() rewrites on a stored span.
_COST_COLUMNS = ("input_tokens", "output_tokens", "total_tokens", "cost_micros", "attributes")


def _time_range(
    since_ns: int | None, until_ns: int | None, column: str
) -> tuple[list[str], list[Any]]:
    since, until = checked_range(since_ns, until_ns)
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append(f"{column} >= make_timestamp_ns(?)")
        params.append(since)
    if until is not None:
        where.append(f"{column} < make_timestamp_ns(?)")
        params.append(until)
    return where, params


def summary_query(
    since_ns: int | None,
    until_ns: int | None,
    group_by: Sequence[str],
    filters: Mapping[str, str],
) -> tuple[str, list[Any]]:
    """The SQL and parameters of :meth:`SpanStore.cost_summary`."""
    group_by = checked_group_by(group_by)
    where, params = _time_range(since_ns, until_ns, '"timestamp"')
    for name, value in checked_filters(filters):
        where.append(f"{name} = ?")
        params.append(value)
    columns = [f'{_PERIODS[g]} AS "{g}"' if g in _PERIODS else g for g in group_by]
    quoted = [f'"{g}"' for g in group_by]
    periods = [f'"{g}"' for g in group_by if g in _PERIODS]
    others = [f'"{g}" NULLS LAST' for g in group_by if g not in _PERIODS]
    order = [*periods, "cost_micros DESC NULLS LAST", "requests DESC", *others]
    sql = (
        f"SELECT {', '.join([*columns, _TOTALS])} FROM costs"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + (f" GROUP BY {', '.join(quoted)}" if group_by else "")
        + f" ORDER BY {', '.join(order)}"
    )
    return sql, params


def breakdown_query(
    dimension: str, since_ns: int | None, until_ns: int | None, limit: int
) -> tuple[str, list[Any]]:
    """The SQL and parameters of :meth:`SpanStore.cost_breakdown`."""
    column = breakdown_column(dimension)
    limit = checked_limit(limit)
    sql, params = summary_query(since_ns, until_ns, [column], {})
    return f"{sql} LIMIT ?", [*params, limit]


def daily_query(
    since_ns: int | None, until_ns: int | None, model_id: str | None, team: str | None
) -> tuple[str, list[Any]]:
    """The SQL and parameters of :meth:`SpanStore.daily_costs`."""
    filters = {k: v for k, v in (("model_id", model_id), ("team", team)) if v is not None}
    inner, params = summary_query(since_ns, until_ns, ["day"], filters)
    sql = (
        'SELECT CAST("day" AS DATE) AS "day", coalesce(cost_micros, 0) AS cost_micros, requests '
        f'FROM ({inner}) ORDER BY "day"'
    )
    return sql, params


def model_spans_query(
    since_ns: int | None,
    until_ns: int | None,
    after: tuple[int, str, str] | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The SQL and parameters of :meth:`SpanStore.model_spans`."""
    where, params = _time_range(since_ns, until_ns, "start_time")
    cursor = checked_after(after)
    if cursor is not None:
        where.append("(start_time, trace_id, span_id) > (make_timestamp_ns(?), ?, ?)")
        params += list(cursor)
    limit = checked_limit(limit)
    sql = (
        f"SELECT * FROM traces WHERE {' AND '.join(['model_id IS NOT NULL', *where])} "
        "ORDER BY start_time, trace_id, span_id LIMIT ?"
    )
    return sql, [*params, limit]


def _last_of_each_span(batch: pa.Table) -> pa.Table:
    if pc.count_distinct(batch.column("span_id")).as_py() == batch.num_rows:
        return batch
    reversed_rows = pa.array(range(batch.num_rows - 1, -1, -1), pa.int64())
    return first_of_each_span(batch.take(reversed_rows))


def _range_literals(column: pa.ChunkedArray) -> tuple[int, int]:
    lo, hi = pc.min_max(column.cast(pa.int64())).values()
    return int(lo.as_py()), int(hi.as_py())


def _in_transaction(
    con: duckdb.DuckDBPyConnection, batch: pa.Table, statements: Sequence[str], what: str, path: str
) -> int:
    """Run ``statements`` over ``batch`` (as ``_VIEW``) in one transaction; the last one's count."""
    chunked = pa.Table.from_batches(batch.to_batches(max_chunksize=_SCAN_CHUNK_ROWS))
    con.register(_VIEW, chunked)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            count = 0
            for statement in statements:
                rows = con.execute(statement).fetchall()
                count = int(rows[0][0]) if rows else 0
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"{what} in {path} failed: {exc}") from exc
        return count
    finally:
        try:
            con.unregister(_VIEW)
        except duckdb.Error:
            logger.debug("unregistering the cost batch failed", exc_info=True)


def replace_costs(con: duckdb.DuckDBPyConnection, path: str, batch: pa.Table) -> int:
    """Store cost rows, replacing the rows of spans already there; rows written."""
    batch = conform(batch, COST_SCHEMA, "cost")
    if batch.num_rows == 0:
        return 0
    batch = _last_of_each_span(batch)
    lo, hi = _range_literals(batch.column("timestamp"))
    # A span's cost row keeps its timestamp (the span's start), so only rows in the
    # batch's time range can be replaced: DuckDB prunes the rest by min/max.
    delete = (
        f'DELETE FROM costs c USING {_VIEW} b WHERE c."timestamp" BETWEEN '
        f"make_timestamp_ns({lo}) AND make_timestamp_ns({hi}) "
        "AND c.trace_id = b.trace_id AND c.span_id = b.span_id"
    )
    insert = f"INSERT INTO costs SELECT * FROM {_VIEW}"
    return _in_transaction(
        con, batch, [delete, insert], f"writing {batch.num_rows} cost rows", path
    )


def update_span_costs(con: duckdb.DuckDBPyConnection, path: str, batch: pa.Table) -> int:
    """Rewrite the token, cost and attribute columns of stored spans; spans changed."""
    batch = conform(batch, SPAN_SCHEMA, "canonical span")
    if batch.num_rows == 0:
        return 0
    batch = _last_of_each_span(batch).select(["trace_id", "span_id", "start_time", *_COST_COLUMNS])
    lo, hi = _range_literals(batch.column("start_time"))
    assignments = ", ".join(f"{c} = b.{c}" for c in _COST_COLUMNS)
    changed = " OR ".join(f"t.{c} IS DISTINCT FROM b.{c}" for c in _COST_COLUMNS)
    update = (
        f"UPDATE traces t SET {assignments} FROM {_VIEW} b WHERE t.start_time BETWEEN "
        f"make_timestamp_ns({lo}) AND make_timestamp_ns({hi}) "
        f"AND t.trace_id = b.trace_id AND t.span_id = b.span_id AND ({changed})"
    )
    return _in_transaction(
        con, batch, [update], f"rewriting the costs of {batch.num_rows} spans", path
    )
