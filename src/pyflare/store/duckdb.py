"""The local span store: one DuckDB file, no infrastructure.

DuckDB lets one process own a file. A second process gets
:class:`~pyflare.errors.StoreLockedError` naming the file and the holder.
Writes are batched Arrow inserts (never row by row) and idempotent: a span
already stored (same trace_id, span_id) is skipped, the way ClickHouse's
ReplacingMergeTree collapses redelivered rows. Metric points and log records are
appended as they come; the drift tables are :mod:`pyflare.store._duckdb_drift`'s,
the cost tables :mod:`pyflare.store._duckdb_costs`'s.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pyflare.config import store_path
from pyflare.errors import QueryError, QueryTimeoutError, StoreError, StoreLockedError
from pyflare.records import DRIFT_RESULT_SCHEMA, LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from pyflare.store import _duckdb_costs as costs
from pyflare.store import _duckdb_keys as keys
from pyflare.store import _duckdb_metrics as metric_sql
from pyflare.store._duckdb_drift import (
    MODELS_WITH_DRIFT_SQL,
    check_drift_type,
    check_reference,
    checked_results,
    insert_reference,
    read_reference,
    results_query,
)
from pyflare.store._trace_sql import INDEX_UPSERT, page_filters, summaries_sql
from pyflare.store.base import MAX_SQL_ROWS, PYFLARE_TABLES, TraceQuery
from pyflare.store.batches import conform, first_of_each_span, shared_resource
from pyflare.store.schema import check_version, migrate, schema_version
from pyflare.store.tree import tree_order

if TYPE_CHECKING:
    from pyflare.store.duckdb_vectors import DuckDBVectorStore

__all__ = ["DuckDBSpanStore", "parse_store_url"]

logger = logging.getLogger(__name__)

_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")
# The WAL size at which DuckDB checkpoints. Each checkpoint rewrites the table's
# last, partly filled row group, so at the default (16 MiB) a busy exporter spends
# more time checkpointing than inserting; 64 MiB halves that for little memory.
_CHECKPOINT_THRESHOLD = "64MiB"
# Rows per row group (DuckDB's default is 122,880). Smaller groups make each
# checkpoint's rewrite of the last one cheap and prune time ranges more finely.
_ROW_GROUP_ROWS = 16_384
_CATALOG = "pyflare"
# An Arrow scan runs one thread per record batch: split writes so both cores work.
_SCAN_CHUNK_ROWS = 4096
_INDEX_VIEW = "_pyflare_index_batch"
_BATCH_VIEW = "_pyflare_batch"


def parse_store_url(url: str) -> str:
    """The DuckDB database path of a ``duckdb:///path`` URL (see `pyflare.config.store_path`)."""
    try:
        return store_path(url)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def _run(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None
) -> list[Any]:
    """Execute and drain the result (DuckDB wants results finished before the next call)."""
    rows: list[Any] = con.execute(sql, params).fetchall()
    return rows


def _arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    to_table = getattr(relation, "to_arrow_table", None) or relation.arrow
    table: pa.Table = to_table()
    return table


class DuckDBSpanStore:
    """:class:`~pyflare.store.base.SpanStore` on a DuckDB file (or ``:memory:``)."""

    def __init__(
        self, path: str | os.PathLike[str] = ":memory:", *, read_only: bool = False
    ) -> None:
        self.path = os.fspath(path)
        self._lock = threading.RLock()
        self._closed = False
        self._last_reference_ns = 0
        if self.path != ":memory:" and not read_only:
            directory = Path(self.path).expanduser().resolve().parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the store directory {directory} for {self.path}: "
                    f"{exc.strerror or exc}; choose a writable location with "
                    "store='duckdb:///path/to/file.duckdb' or PYFLARE_STORE"
                ) from exc
        try:
            self._con = self._connect(read_only)
        except duckdb.IOException as exc:
            raise self._translate_open_error(exc) from exc
        except duckdb.Error as exc:
            if "already attached" in str(exc) or "different configuration" in str(exc):
                raise StoreError(
                    f"the store {self.path} is already open in this process; use the store "
                    "object that opened it (pyflare.traces() and pyflare.sql() do)"
                ) from exc
            raise StoreError(f"cannot open the DuckDB store {self.path}: {exc}") from exc
        try:
            if read_only:
                check_version(self._con, self.path)
            else:
                migrate(self._con, self.path)
        except BaseException:
            # Release the file: a store that failed to open must not keep it locked.
            self._closed = True
            self._con.close()
            raise

    # -- opening -------------------------------------------------------------

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        config: dict[str, str | bool | int | float | list[str]] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "checkpoint_threshold": _CHECKPOINT_THRESHOLD,
        }
        if self.path == ":memory:":
            config["enable_external_access"] = False
            config["lock_configuration"] = True
            return duckdb.connect(self.path, read_only=read_only, config=config)
        # The file is attached (rather than opened by connect()) to set its row group size.
        con = duckdb.connect(":memory:", config=config)
        try:
            literal = "'" + str(Path(self.path).expanduser()).replace("'", "''") + "'"
            options = f"ROW_GROUP_SIZE {_ROW_GROUP_ROWS}" + (", READ_ONLY" if read_only else "")
            _run(con, f"ATTACH {literal} AS {_CATALOG} ({options})")
            _run(con, f"USE {_CATALOG}")
            # External access (files, URLs, extensions) goes off once the store's own
            # file is attached: the store only ever reads its own tables, so SQL typed
            # by a user can't reach the disk or network.
            _run(con, "SET enable_external_access = false")
            _run(con, "SET lock_configuration = true")
        except BaseException:
            con.close()
            raise
        return con

    def _translate_open_error(self, exc: duckdb.Error) -> StoreError:
        message = str(exc)
        holder = _LOCK_HOLDER.search(message)
        if holder is not None:
            return StoreLockedError(
                f"the PyFlare store {self.path} is locked by another process: "
                f"{holder['program']} (PID {holder['pid']}). DuckDB lets one process own a file: "
                "stop that process, read the data from inside it (pyflare.traces(), pyflare.sql()), "
                "or give this process its own file with store='duckdb:///other.duckdb'."
            )
        if "Could not set lock" in message:
            return StoreLockedError(
                f"the PyFlare store {self.path} is locked by another process ({message}). "
                "Stop that process or use another store file."
            )
        return StoreError(f"cannot open the DuckDB store {self.path}: {message}")

    @property
    def schema_version(self) -> int:
        with self._lock:
            self._ensure_open()
            return schema_version(self._con)

    def _ensure_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")

    # -- writing -------------------------------------------------------------

    def write(self, batch: pa.Table) -> int:
        batch = conform(batch, SPAN_SCHEMA, "canonical span")
        with self._lock:
            self._ensure_open()
            if batch.num_rows == 0:
                return 0
            batch = first_of_each_span(batch)
            lo, hi = pc.min_max(batch.column("start_time").cast(pa.int64())).values()
            # Skip spans already stored. Only rows in the batch's time range can collide;
            # the range goes in as literals (integers from Arrow) so DuckDB prunes the
            # row groups outside it by their min/max instead of scanning the table.
            con = self._con
            _run(con, "BEGIN TRANSACTION")
            try:
                inserted = self._insert(
                    "traces",
                    batch,
                    f"""
                    WHERE NOT EXISTS (
                        SELECT 1 FROM traces t
                        WHERE t.start_time BETWEEN make_timestamp_ns({int(lo.as_py())})
                                               AND make_timestamp_ns({int(hi.as_py())})
                          AND t.trace_id = b.trace_id AND t.span_id = b.span_id
                    )
                    """,
                    "spans",
                )
                self._index_traces(batch)
                try:
                    _run(con, "COMMIT")
                except duckdb.Error as exc:
                    raise StoreError(
                        f"writing {batch.num_rows} spans to {self.path} failed: {exc}"
                    ) from exc
            except BaseException:
                self._rollback()
                raise
            return inserted

    def _rollback(self) -> None:
        # A failed statement (a full disk) may have ended the transaction already;
        # the error that matters is the one being raised, not this one.
        try:
            _run(self._con, "ROLLBACK")
        except duckdb.Error:
            logger.debug("rollback after a failed write", exc_info=True)

    def _index_traces(self, batch: pa.Table) -> None:
        """Merge the batch's traces into trace_index (what listing filters on)."""
        index = batch.select(
            [
                "trace_id",
                "parent_span_id",
                "start_time",
                "end_time",
                "service_name",
                "status_code",
                "model_id",
            ]
        )
        con = self._con
        try:
            con.register(_INDEX_VIEW, index)
            _run(con, INDEX_UPSERT.format(view=_INDEX_VIEW))
        except duckdb.Error as exc:
            raise StoreError(
                f"indexing {batch.num_rows} spans' traces in {self.path} failed: {exc}"
            ) from exc
        finally:
            try:
                con.unregister(_INDEX_VIEW)
            except duckdb.Error:
                logger.debug("unregistering the index batch failed", exc_info=True)

    def write_metrics(self, batch: pa.Table) -> int:
        return self._append("metrics", conform(batch, METRIC_SCHEMA, "metrics"), "metric points")

    def write_logs(self, batch: pa.Table) -> int:
        return self._append("logs", conform(batch, LOG_SCHEMA, "logs"), "log records")

    def _append(self, table: str, batch: pa.Table, what: str) -> int:
        with self._lock:
            self._ensure_open()
            if batch.num_rows == 0:
                return 0
            return self._insert(table, batch, "", what)

    def _insert(self, table: str, batch: pa.Table, where: str, what: str) -> int:
        """INSERT the rows of ``batch`` (with the table's columns) that pass ``where``."""
        names = batch.column_names
        # A batch from one process has one resource on every row. Then the map goes
        # in once, as a constant, rather than row by row: DuckDB checks every map it
        # loads from Arrow, and the resource is as large as a span's attributes.
        shared = shared_resource(batch.column("resource")) if "resource" in names else None
        params: list[Any] | None = None
        columns = "*"
        if shared is not None:
            batch = batch.drop_columns(["resource"])
            params = list(shared)
            columns = ", ".join(
                "map(?::VARCHAR[], ?::VARCHAR[])" if name == "resource" else f'b."{name}"'
                for name in names
            )
        sql = f"INSERT INTO {table} SELECT {columns} FROM {_BATCH_VIEW} AS b {where}"
        con = self._con
        chunked = pa.Table.from_batches(batch.to_batches(max_chunksize=_SCAN_CHUNK_ROWS))
        try:
            con.register(_BATCH_VIEW, chunked)
            inserted = _run(con, sql, params)
            return int(inserted[0][0]) if inserted else 0
        except duckdb.Error as exc:
            raise StoreError(
                f"writing {batch.num_rows} {what} to {self.path} failed: {exc}"
            ) from exc
        finally:
            try:
                con.unregister(_BATCH_VIEW)
            except duckdb.Error:
                logger.debug("unregistering the write batch failed", exc_info=True)

    # -- reading -------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        with self._lock:
            self._ensure_open()
            try:
                return _arrow(self._con.sql(sql, params=params))
            except duckdb.Error as exc:
                raise QueryError(f"query failed: {exc}") from exc

    def traces(self, query: TraceQuery) -> pa.Table:
        if query.limit < 0 or query.offset < 0:
            raise QueryError(
                f"limit and offset must not be negative, got {query.limit} and {query.offset}"
            )
        where_sql, params = page_filters(query)
        page = self._query(
            "SELECT trace_id, epoch_ns(start_time) AS start_ns, epoch_ns(end_time) AS end_ns "
            f"FROM trace_index {where_sql} ORDER BY start_time DESC, trace_id LIMIT ? OFFSET ?",
            [*params, int(query.limit), int(query.offset)],
        )
        if page.num_rows == 0:
            return self._query(summaries_sql(0, 0) + " LIMIT 0", [[]])
        earliest = pc.min(page.column("start_ns")).as_py()
        latest = pc.max(page.column("end_ns")).as_py()
        ids = page.column("trace_id").to_pylist()
        return self._query(summaries_sql(earliest, latest), [ids])

    def count_traces(self, query: TraceQuery) -> int:
        where_sql, params = page_filters(query)
        sql = f"SELECT count(*) AS n FROM trace_index {where_sql}"
        return int(self._query(sql, params).column("n")[0].as_py())

    def spans(self, trace_id: str) -> pa.Table:
        trace_id = trace_id.lower()
        bounds = self._query(
            "SELECT epoch_ns(start_time) AS lo, epoch_ns(end_time) AS hi FROM trace_index "
            "WHERE trace_id = ?",
            [trace_id],
        )
        if bounds.num_rows == 0:
            return tree_order(self._query("SELECT * FROM traces LIMIT 0").cast(SPAN_SCHEMA))
        # Every span of the trace starts between its start and its end: literal bounds
        # let DuckDB read only the row groups of that stretch of time.
        lo, hi = bounds.column("lo")[0].as_py(), bounds.column("hi")[0].as_py()
        table = self._query(
            f"SELECT * FROM traces WHERE start_time BETWEEN make_timestamp_ns({int(lo)}) "
            f"AND make_timestamp_ns({int(hi)}) AND trace_id = ? ORDER BY start_time, span_id",
            [trace_id],
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
        from pyflare.store.sqlguard import guard_select

        guarded = guard_select(
            query,
            allowed_tables=PYFLARE_TABLES,
            read_dialect=dialect,
            write_dialect="duckdb",
            max_rows=max_rows,
        )
        if timeout_s is None:
            return self._query(guarded.sql, params)
        return self._query_with_timeout(guarded.sql, params, timeout_s)

    def _query_with_timeout(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None, timeout_s: float
    ) -> pa.Table:
        # On a cursor of its own, outside the store's lock: a long query neither
        # waits for writes nor holds them up, and interrupt() stops only it.
        with self._lock:
            self._ensure_open()
            cursor = self._con.cursor()
        if self.path != ":memory:":
            cursor.execute(f"USE {_CATALOG}")  # a cursor starts in the default catalog
        timer = threading.Timer(timeout_s, cursor.interrupt)
        timer.daemon = True
        timer.start()
        try:
            return _arrow(cursor.sql(sql, params=params))
        except duckdb.InterruptException as exc:
            raise QueryTimeoutError(
                f"the query ran longer than {timeout_s:g} s and was stopped; narrow its time "
                "range, add filters or aggregate more"
            ) from exc
        except duckdb.Error as exc:
            raise QueryError(f"query failed: {exc}") from exc
        finally:
            timer.cancel()
            cursor.close()

    # -- drift (the tables and their SQL: pyflare.store._duckdb_drift) --------

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
        sql, params = results_query(
            model_id, drift_type=drift_type, since_ns=since_ns, until_ns=until_ns, limit=limit
        )
        return self._query(sql, params).cast(DRIFT_RESULT_SCHEMA)

    def models_with_drift(self) -> list[str]:
        table = self._query(MODELS_WITH_DRIFT_SQL)
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
            meta = insert_reference(
                self._con,
                self.path,
                model_id=model_id,
                drift_type=drift_type,
                state=state,
                created_ns=created,
                dataset_version=dataset_version,
                n_samples=n_samples,
            )
            self._last_reference_ns = created
        return meta

    def drift_reference(
        self, model_id: str, drift_type: str
    ) -> tuple[bytes, dict[str, Any]] | None:
        check_drift_type(drift_type, QueryError)
        with self._lock:
            self._ensure_open()
            return read_reference(self._con, model_id, drift_type)

    # -- costs (the tables and their SQL: pyflare.store._duckdb_costs) ----------

    def write_costs(self, batch: pa.Table) -> int:
        with self._lock:
            self._ensure_open()
            return costs.replace_costs(self._con, self.path, batch)

    def cost_summary(
        self,
        since_ns: int | None,
        until_ns: int | None,
        group_by: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
    ) -> pa.Table:
        return self._query(*costs.summary_query(since_ns, until_ns, group_by, filters or {}))

    def cost_breakdown(
        self, dimension: str, since_ns: int | None, until_ns: int | None, limit: int = 10
    ) -> pa.Table:
        return self._query(*costs.breakdown_query(dimension, since_ns, until_ns, limit))

    def daily_costs(
        self,
        since_ns: int | None,
        until_ns: int | None,
        model_id: str | None = None,
        team: str | None = None,
    ) -> pa.Table:
        return self._query(*costs.daily_query(since_ns, until_ns, model_id, team))

    def model_spans(
        self,
        since_ns: int | None,
        until_ns: int | None,
        *,
        after: tuple[int, str, str] | None = None,
        limit: int = 10_000,
    ) -> pa.Table:
        sql, params = costs.model_spans_query(since_ns, until_ns, after, limit)
        return self._query(sql, params).cast(SPAN_SCHEMA)

    def update_span_costs(self, batch: pa.Table) -> int:
        with self._lock:
            self._ensure_open()
            return costs.update_span_costs(self._con, self.path, batch)

    # -- api keys (pyflare.store._duckdb_keys) -----------------------------------

    def put_api_key(self, record: Mapping[str, Any]) -> None:
        with self._lock:
            self._ensure_open()
            keys.insert_key(self._con, self.path, record)

    def api_keys(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            self._ensure_open()
            return keys.read_keys(self._con, include_revoked=include_revoked)

    def api_key(self, key_id: str) -> dict[str, Any] | None:
        with self._lock:
            self._ensure_open()
            return keys.read_key(self._con, key_id)

    def revoke_api_key(self, key_id: str, *, at_ns: int) -> bool:
        with self._lock:
            self._ensure_open()
            return keys.revoke_key(self._con, self.path, key_id, at_ns)

    # -- metric queries (the SQL: pyflare.store._duckdb_metrics) -----------------

    def metric_names(
        self,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        service: str | None = None,
        model_id: str | None = None,
        limit: int = 1000,
    ) -> pa.Table:
        return self._query(*metric_sql.names_query(since_ns, until_ns, service, model_id, limit))

    def metric_series(self, name: str, **arguments: Any) -> pa.Table:
        request = metric_sql.check_series(name, **arguments)
        return self._query(*metric_sql.series_query(request))

    # -- vectors (the VectorStore on this file: pyflare.store.duckdb_vectors) ----

    def vector_store(self, dim: int) -> DuckDBVectorStore:
        """The embeddings kept in this store's file, as ``dim``-sized vectors (a VectorStore).

        It shares this store's connection and lock; closing it leaves this store
        open, closing this store ends it too.
        """
        from pyflare.store.duckdb_vectors import DuckDBVectorStore

        with self._lock:
            self._ensure_open()
            return DuckDBVectorStore.sharing(self._con, self._lock, dim=dim, path=self.path)

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._con.close()
            except duckdb.Error as exc:
                logger.warning("closing the store %s failed: %s", self.path, exc)

    def __enter__(self) -> DuckDBSpanStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DuckDBSpanStore({self.path!r})"
