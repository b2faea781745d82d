"""The scaled span store: ClickHouse through ``clickhouse-connect``.

The same :class:`~pyflare.store.base.SpanStore` as the local DuckDB store,
with the spec's tables (:mod:`._clickhouse_schema`) in one database. Writes are
Arrow inserts (``insert_arrow``). They are idempotent twice over: a write skips
the spans already stored (so it can say how many were new), and the traces
table is a ReplacingMergeTree, so a span written by two workers at once still
collapses into one; every read runs with ``final = 1``, which collapses what
the background merges have not yet. Any ``clickhouse_connect`` client works:
an HTTP one for a ClickHouse server, or ``get_client(dsn="chdb:///path")`` for
the engine in-process (tests and single-machine setups).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pyflare.errors import QueryError, StoreError
from pyflare.records import COST_SCHEMA, DRIFT_RESULT_SCHEMA, LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from pyflare.store._duckdb_drift import check_drift_type, check_reference, checked_results
from pyflare.store._duckdb_metrics import check_series
from pyflare.store.base import MAX_SQL_ROWS, TraceQuery
from pyflare.store.batches import conform, first_of_each_span
from pyflare.store.tree import tree_order
from pyflare_server.storage import _clickhouse_costs as costs
from pyflare_server.storage._clickhouse_arrow import last_of_each_span, naive_utc, span_keys
from pyflare_server.storage._clickhouse_keys import KeyTable
from pyflare_server.storage._clickhouse_metrics import SERIES_SETTINGS, names_query, series_query
from pyflare_server.storage._clickhouse_schema import Retention
from pyflare_server.storage._clickhouse_sql import guarded_clickhouse
from pyflare_server.storage._clickhouse_traces import count_sql, summary_sql
from pyflare_server.storage._clickhouse_writes import CostWriter, migrate

__all__ = ["ClickHouseSpanStore"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# ClickHouse's code for a query stopped by max_execution_time.
_TIMEOUT_CODES = ("TIMEOUT_EXCEEDED", "Code: 159.")
_SPEC_RETENTION = Retention()
_READ_SETTINGS: dict[str, Any] = {"final": 1, "session_timezone": "UTC"}


class ClickHouseSpanStore:
    """:class:`~pyflare.store.base.SpanStore` on a ClickHouse database.

    ``client`` is a ``clickhouse_connect`` client; the store owns it (``close()``
    closes it). ``database`` is created when missing and migrated to the
    current schema; ``retention`` sets the tables' TTLs (None: keep forever).
    """

    def __init__(
        self,
        client: Any,
        *,
        database: str = "pyflare",
        retention: Retention | None = _SPEC_RETENTION,
        label: str | None = None,
    ) -> None:
        if not isinstance(database, str) or not _NAME.match(database):
            raise StoreError(
                f"the ClickHouse database name {database!r} is not usable; use letters, "
                "digits and underscores, starting with a letter (e.g. pyflare)"
            )
        self.database = database
        self.label = label or f"clickhouse database {database}"
        self._client = client
        self._lock = threading.RLock()
        self._closed = False
        self._last_reference_ns = 0
        try:
            client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            client.database = database
            migrate(self._command, self._read_rows, retention or Retention(None, None, None, None))
        except StoreError:
            self._release()
            raise
        except Exception as exc:
            self._release()
            raise StoreError(f"cannot open the {self.label}: {exc}") from exc
        self._costs = CostWriter(self._read, self._insert, self._command)
        self._keys = KeyTable(self._read, self._insert)

    # -- the client ----------------------------------------------------------

    def _release(self) -> None:
        self._closed = True
        try:
            self._client.close()
        except Exception:
            logger.debug("closing the ClickHouse client failed", exc_info=True)

    def _ensure_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store ({self.label}) is closed")

    def _command(self, sql: str, params: Mapping[str, Any] | None = None, **settings: Any) -> None:
        self._ensure_open()
        try:
            self._client.command(
                sql, parameters=dict(params or {}), settings={"session_timezone": "UTC", **settings}
            )
        except Exception as exc:
            raise StoreError(f"ClickHouse ({self.label}) refused a statement: {exc}") from exc

    def _read(self, sql: str, params: Mapping[str, Any] | None = None, **settings: Any) -> pa.Table:
        self._ensure_open()
        try:
            table = self._client.query_arrow(
                sql, parameters=dict(params or {}), settings={**_READ_SETTINGS, **settings}
            )
        except Exception as exc:
            raise QueryError(f"query failed: {exc}") from exc
        return naive_utc(table)

    def _read_rows(self, sql: str) -> list[tuple[Any, ...]]:
        self._ensure_open()
        return [tuple(row) for row in self._client.query(sql).result_rows]

    def _insert(self, table: str, batch: pa.Table, what: str) -> None:
        self._ensure_open()
        try:
            self._client.insert_arrow(table, batch, settings={"session_timezone": "UTC"})
        except Exception as exc:
            raise StoreError(
                f"writing {batch.num_rows} {what} to the {self.label} failed: {exc}"
            ) from exc

    # -- writing -------------------------------------------------------------

    def write(self, batch: pa.Table) -> int:
        batch = conform(batch, SPAN_SCHEMA, "canonical span")
        with self._lock:
            self._ensure_open()
            if batch.num_rows == 0:
                return 0
            batch = first_of_each_span(batch)
            new = self._not_stored(batch)
            if new.num_rows:
                self._insert("traces", new, "spans")
            return int(new.num_rows)

    def _not_stored(self, batch: pa.Table) -> pa.Table:
        """The rows of ``batch`` whose span is not in the store yet."""
        lo, hi = pc.min_max(batch.column("start_time").cast(pa.int64())).values()
        stored = self._read(
            "SELECT trace_id, span_id FROM traces "
            "WHERE start_time BETWEEN fromUnixTimestamp64Nano({lo:Int64}) "
            "AND fromUnixTimestamp64Nano({hi:Int64}) AND trace_id IN {traces:Array(String)}",
            {
                "lo": int(lo.as_py()),
                "hi": int(hi.as_py()),
                "traces": pc.unique(batch.column("trace_id")).to_pylist(),
            },
            final=0,
        )
        if stored.num_rows == 0:
            return batch
        known = pc.is_in(span_keys(batch), value_set=span_keys(stored).combine_chunks())
        return batch.filter(pc.invert(known))

    def write_metrics(self, batch: pa.Table) -> int:
        return self._append("metrics", conform(batch, METRIC_SCHEMA, "metrics"), "metric points")

    def write_logs(self, batch: pa.Table) -> int:
        return self._append("logs", conform(batch, LOG_SCHEMA, "logs"), "log records")

    def _append(self, table: str, batch: pa.Table, what: str) -> int:
        with self._lock:
            self._ensure_open()
            if batch.num_rows:
                self._insert(table, batch, what)
            return int(batch.num_rows)

    # -- reading -------------------------------------------------------------

    def traces(self, query: TraceQuery) -> pa.Table:
        return self._read(*summary_sql(query))

    def count_traces(self, query: TraceQuery) -> int:
        table = self._read(*count_sql(query))
        return int(table.column("n")[0].as_py())

    def spans(self, trace_id: str) -> pa.Table:
        table = self._read(
            "SELECT * FROM traces WHERE trace_id = {trace:String} ORDER BY start_time, span_id",
            {"trace": str(trace_id).lower()},
        )
        return tree_order(table.cast(SPAN_SCHEMA))

    def sql(
        self,
        query: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        max_rows: int = MAX_SQL_ROWS,
        dialect: str = "duckdb",
        timeout_s: float | None = None,
    ) -> pa.Table:
        self._ensure_open()
        text, values = guarded_clickhouse(
            query, params, dialect=dialect, max_rows=max_rows, database=self.database
        )
        # readonly=2: no writes whatever the guard let through; settings may still be set.
        # Not on chdb: its client applies per-query settings with SET and restores them
        # after, which readonly itself forbids, so the whole session would stay read-only.
        settings: dict[str, Any] = {} if _in_process(self._client) else {"readonly": 2}
        if timeout_s is not None:
            if (
                isinstance(timeout_s, bool)
                or not isinstance(timeout_s, int | float)
                or timeout_s <= 0
            ):
                raise QueryError(
                    f"timeout_s must be a positive number of seconds, got {timeout_s!r}"
                )
            settings.update(max_execution_time=timeout_s, timeout_overflow_mode="throw")
        try:
            return self._read(text, values, **settings)
        except QueryError as exc:
            if timeout_s is not None and any(code in str(exc) for code in _TIMEOUT_CODES):
                raise QueryError(
                    f"the query ran longer than {timeout_s:g} s and was stopped; narrow its "
                    "time range, add filters or aggregate more"
                ) from exc
            raise

    # -- drift ----------------------------------------------------------------

    def write_drift_results(self, batch: pa.Table) -> int:
        return self._append("drift_results", checked_results(batch), "drift results")

    def drift_results(
        self,
        model_id: str,
        *,
        drift_type: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 1000,
    ) -> pa.Table:
        if drift_type is not None:
            check_drift_type(drift_type, QueryError)
        if limit < 0:
            raise QueryError(f"limit must not be negative, got {limit}")
        where = ["model_id = {model:String}"]
        params: dict[str, Any] = {"model": model_id, "limit": int(limit)}
        for clause, name, value in (
            ("drift_type = {drift_type:String}", "drift_type", drift_type),
            ("window_end >= fromUnixTimestamp64Nano({since:Int64})", "since", since_ns),
            ("window_end < fromUnixTimestamp64Nano({until:Int64})", "until", until_ns),
        ):
            if value is not None:
                where.append(clause)
                params[name] = value
        table = self._read(
            f"SELECT * FROM drift_results WHERE {' AND '.join(where)} "
            "ORDER BY window_end DESC, computed_at DESC LIMIT {limit:UInt64}",
            params,
        )
        return table.cast(DRIFT_RESULT_SCHEMA)

    def models_with_drift(self) -> list[str]:
        table = self._read(
            "SELECT DISTINCT model_id FROM (SELECT model_id FROM drift_results "
            "UNION ALL SELECT model_id FROM drift_references) ORDER BY model_id"
        )
        return [str(m) for m in table.column("model_id").to_pylist()]

    def put_drift_reference(
        self,
        model_id: str,
        drift_type: str,
        state: bytes,
        *,
        n_samples: int,
        dataset_version: str | None = None,
    ) -> dict[str, Any]:
        check_reference(model_id, drift_type, state, n_samples)
        with self._lock:
            self._ensure_open()
            # Strictly increasing within a process, so the latest upload is the active one.
            created = max(time.time_ns(), self._last_reference_ns + 1)
            row = pa.table(
                {
                    "model_id": [model_id],
                    "drift_type": [drift_type],
                    "created_at": pa.array([created], pa.timestamp("ns")),
                    "dataset_version": pa.array([dataset_version], pa.string()),
                    "n_samples": pa.array([n_samples], pa.int64()),
                    "state": pa.array([bytes(state)], pa.binary()),
                }
            )
            self._insert("drift_references", row, "drift reference")
            self._last_reference_ns = created
        return _reference_meta(model_id, drift_type, created, dataset_version, n_samples)

    def drift_reference(
        self, model_id: str, drift_type: str
    ) -> tuple[bytes, dict[str, Any]] | None:
        check_drift_type(drift_type, QueryError)
        # hex: the state is binary, and ClickHouse's Strings come back as text.
        rows = self._read(
            "SELECT hex(state) AS state, toUnixTimestamp64Nano(created_at) AS created, "
            "dataset_version, n_samples FROM drift_references "
            "WHERE model_id = {model:String} AND drift_type = {drift_type:String} "
            "ORDER BY created_at DESC LIMIT 1",
            {"model": model_id, "drift_type": drift_type},
        ).to_pylist()
        if not rows:
            return None
        row = rows[0]
        meta = _reference_meta(
            model_id, drift_type, int(row["created"]), row["dataset_version"], int(row["n_samples"])
        )
        return bytes.fromhex(row["state"]), meta

    # -- costs (SQL: _clickhouse_costs; writes: _clickhouse_writes) ------------

    def write_costs(self, batch: pa.Table) -> int:
        batch = conform(batch, COST_SCHEMA, "cost")
        with self._lock:
            self._ensure_open()
            if batch.num_rows == 0:
                return 0
            return self._costs.replace(last_of_each_span(batch))

    def cost_summary(
        self,
        since_ns: int | None,
        until_ns: int | None,
        group_by: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
    ) -> pa.Table:
        return self._read(*costs.summary_query(since_ns, until_ns, group_by, filters or {}))

    def cost_breakdown(
        self, dimension: str, since_ns: int | None, until_ns: int | None, limit: int = 10
    ) -> pa.Table:
        return self._read(*costs.breakdown_query(dimension, since_ns, until_ns, limit))

    def daily_costs(
        self,
        since_ns: int | None,
        until_ns: int | None,
        model_id: str | None = None,
        team: str | None = None,
    ) -> pa.Table:
        return self._read(*costs.daily_query(since_ns, until_ns, model_id, team))

    def model_spans(
        self,
        since_ns: int | None,
        until_ns: int | None,
        *,
        after: tuple[int, str, str] | None = None,
        limit: int = 10_000,
    ) -> pa.Table:
        sql, params = costs.model_spans_query(since_ns, until_ns, after, limit)
        return self._read(sql, params).cast(SPAN_SCHEMA)

    def update_span_costs(self, batch: pa.Table) -> int:
        batch = conform(batch, SPAN_SCHEMA, "canonical span")
        with self._lock:
            self._ensure_open()
            if batch.num_rows == 0:
                return 0
            stage = f"_pyflare_stage_{uuid.uuid4().hex}"
            return self._costs.rewrite_spans(last_of_each_span(batch), stage)

    # -- api keys (_clickhouse_keys) ----------------------------------------------

    def put_api_key(self, record: Mapping[str, Any]) -> None:
        with self._lock:
            self._ensure_open()
            self._keys.put(record)

    def api_keys(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        return self._keys.all(include_revoked=include_revoked)

    def api_key(self, key_id: str) -> dict[str, Any] | None:
        return self._keys.get(key_id)

    def revoke_api_key(self, key_id: str, *, at_ns: int) -> bool:
        with self._lock:
            self._ensure_open()
            return self._keys.revoke(key_id, at_ns)

    # -- metric queries (_clickhouse_metrics) ----------------------------------------

    def metric_names(
        self,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        service: str | None = None,
        model_id: str | None = None,
        limit: int = 1000,
    ) -> pa.Table:
        return self._read(*names_query(since_ns, until_ns, service, model_id, limit))

    def metric_series(self, name: str, **arguments: Any) -> pa.Table:
        request = check_series(name, **arguments)
        sql, params = series_query(request)
        return self._read(sql, params, **SERIES_SETTINGS)

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._release()

    def __enter__(self) -> ClickHouseSpanStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ClickHouseSpanStore({self.label!r})"


def _in_process(client: Any) -> bool:
    """Whether ``client`` drives the in-process engine (chdb) rather than a server."""
    try:
        from clickhouse_connect.driver._chdbclient import ChdbClient
    except ImportError:  # chdb not installed: no client can be one
        return False
    return isinstance(client, ChdbClient)


def _reference_meta(
    model_id: str, drift_type: str, created_ns: int, dataset_version: str | None, n_samples: int
) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "drift_type": drift_type,
        "created_at_ns": created_ns,
        "dataset_version": dataset_version,
        "n_samples": n_samples,
    }
