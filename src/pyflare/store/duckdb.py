"""The local span store: one DuckDB file, no infrastructure.

DuckDB lets one process own a file. A second process gets
:class:`~pyflare.errors.StoreLockedError` naming the file and the holder.
Writes are batched Arrow inserts (never row by row) and idempotent: a span
already stored (same trace_id, span_id) is skipped, the way ClickHouse's
ReplacingMergeTree collapses redelivered rows.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pyflare.errors import QueryError, StoreError, StoreLockedError
from pyflare.records import SPAN_SCHEMA
from pyflare.store.base import MAX_SQL_ROWS, PYFLARE_TABLES, TraceQuery
from pyflare.store.schema import MIGRATIONS, SCHEMA_VERSION
from pyflare.store.tree import tree_order

__all__ = ["DuckDBSpanStore", "parse_store_url"]

logger = logging.getLogger(__name__)

_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")
_SUMMARY_COLUMNS = """
    trace_id,
    min(start_time) AS start_time,
    max(end_time) AS end_time,
    CAST(epoch_ns(max(end_time)) - epoch_ns(min(start_time)) AS BIGINT) AS duration_ns,
    coalesce(arg_min(service_name, start_time) FILTER (WHERE parent_span_id IS NULL),
             arg_min(service_name, start_time)) AS service_name,
    coalesce(arg_min(operation_name, start_time) FILTER (WHERE parent_span_id IS NULL),
             arg_min(operation_name, start_time)) AS operation_name,
    CASE WHEN bool_or(status_code = 'error') THEN 'error'
         ELSE coalesce(arg_min(status_code, start_time) FILTER (WHERE parent_span_id IS NULL),
                       arg_min(status_code, start_time)) END AS status_code,
    CAST(count(*) AS BIGINT) AS span_count,
    CAST(count(*) FILTER (WHERE status_code = 'error') AS BIGINT) AS error_count,
    arg_min(model_id, start_time) FILTER (WHERE model_id IS NOT NULL) AS model_id,
    CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
    CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
    CAST(sum(total_tokens) AS BIGINT) AS total_tokens,
    CAST(sum(cost_micros) AS BIGINT) AS cost_micros
"""


def parse_store_url(url: str) -> str:
    """The DuckDB database path of a ``duckdb:///path`` URL (``:memory:`` allowed)."""
    if not url.startswith("duckdb://"):
        raise StoreError(f"not a DuckDB store URL: {url!r}; expected duckdb:///path/to/file.duckdb")
    path = url[len("duckdb://") :]
    if path.startswith("/") and not path.startswith("//"):
        # duckdb:///rel/path -> "rel/path"; duckdb:////abs/path -> "/abs/path"
        path = path[1:]
    elif path.startswith("//"):
        path = path[1:]
    if not path:
        raise StoreError(f"store URL {url!r} names no file; expected duckdb:///path/to/file.duckdb")
    return path


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> list[Any]:
    """Execute and drain the result (DuckDB wants results finished before the next call)."""
    rows: list[Any] = con.execute(sql, params).fetchall()
    return rows


def _arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    to_table = getattr(relation, "to_arrow_table", None) or relation.arrow
    table: pa.Table = to_table()
    return table


class DuckDBSpanStore:
    """:class:`~pyflare.store.base.SpanStore` on a DuckDB file (or ``:memory:``)."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, read_only: bool = False) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._closed = False
        if self.path != ":memory:":
            directory = Path(self.path).expanduser().resolve().parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the store directory {directory}: {exc.strerror or exc}; "
                    "choose a writable location with store='duckdb:///path/to/file.duckdb' "
                    "or PYFLARE_STORE"
                ) from exc
        # External access (files, URLs, extensions) is off: the store only ever
        # reads its own tables, so SQL typed by a user can't reach the disk or network.
        config = {"enable_external_access": False, "autoinstall_known_extensions": False,
                  "autoload_known_extensions": False}
        try:
            self._con = duckdb.connect(self.path, read_only=read_only, config=config)
        except duckdb.IOException as exc:
            raise self._translate_open_error(exc) from exc
        except duckdb.Error as exc:
            raise StoreError(f"cannot open the DuckDB store {self.path}: {exc}") from exc
        if not read_only:
            self._migrate()
        else:
            self._check_version()

    # -- opening -------------------------------------------------------------

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

    def _migrate(self) -> None:
        with self._lock:
            con = self._con
            _run(
                con,
                "CREATE TABLE IF NOT EXISTS pyflare_schema ("
                " version INTEGER PRIMARY KEY, description VARCHAR NOT NULL,"
                " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)",
            )
            current = self._version()
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {self.path} has schema version {current}, newer than this "
                    f"PyFlare supports ({SCHEMA_VERSION}); upgrade PyFlare to read it"
                )
            for version, description, statements in MIGRATIONS:
                if version <= current:
                    continue
                _run(con, "BEGIN TRANSACTION")
                try:
                    for statement in statements:
                        _run(con, statement)
                    _run(
                        con,
                        "INSERT INTO pyflare_schema (version, description) VALUES (?, ?)",
                        [version, description],
                    )
                    _run(con, "COMMIT")
                except duckdb.Error as exc:
                    _run(con, "ROLLBACK")
                    raise StoreError(
                        f"migrating the store {self.path} to schema version {version} "
                        f"({description}) failed: {exc}"
                    ) from exc
                logger.debug("store %s migrated to schema version %d", self.path, version)

    def _version(self) -> int:
        rows = _run(self._con, "SELECT coalesce(max(version), 0) FROM pyflare_schema")
        return int(rows[0][0]) if rows else 0

    def _check_version(self) -> None:
        try:
            version = self._version()
        except duckdb.CatalogException as exc:
            raise StoreError(f"{self.path} is not a PyFlare store (no schema table)") from exc
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} has schema version {version}; this PyFlare expects "
                f"{SCHEMA_VERSION}. Open it once read-write to migrate."
            )

    @property
    def schema_version(self) -> int:
        with self._lock:
            self._ensure_open()
            return self._version()

    def _ensure_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")

    # -- writing -------------------------------------------------------------

    def write(self, batch: pa.Table) -> int:
        if batch.num_rows == 0:
            return 0
        if batch.schema != SPAN_SCHEMA:
            try:
                batch = batch.select(SPAN_SCHEMA.names).cast(SPAN_SCHEMA)
            except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                raise StoreError(f"batch does not have the canonical span schema: {exc}") from exc
        with self._lock:
            self._ensure_open()
            con = self._con
            try:
                con.register("_pyflare_batch", batch)
                # Skip spans already stored. Only rows in the batch's time range can
                # collide, which lets DuckDB prune row groups by their min/max.
                inserted = con.execute(
                    """
                    INSERT INTO traces
                    SELECT * FROM (
                        SELECT DISTINCT ON (trace_id, span_id) * FROM _pyflare_batch
                    ) AS b
                    WHERE NOT EXISTS (
                        SELECT 1 FROM traces t
                        WHERE t.start_time BETWEEN (SELECT min(start_time) FROM _pyflare_batch)
                                               AND (SELECT max(start_time) FROM _pyflare_batch)
                          AND t.trace_id = b.trace_id AND t.span_id = b.span_id
                    )
                    """
                ).fetchall()
                return int(inserted[0][0]) if inserted else 0
            except duckdb.Error as exc:
                raise StoreError(f"writing {batch.num_rows} spans to {self.path} failed: {exc}") from exc
            finally:
                try:
                    con.unregister("_pyflare_batch")
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

    def _where(self, query: TraceQuery) -> tuple[str, str, list[Any]]:
        """Span-level WHERE and trace-level HAVING clauses for ``query``."""
        where: list[str] = []
        having: list[str] = []
        params: list[Any] = []
        if query.since_ns is not None:
            where.append("start_time >= make_timestamp_ns(?)")
            params.append(query.since_ns)
        if query.until_ns is not None:
            where.append("start_time < make_timestamp_ns(?)")
            params.append(query.until_ns)
        span_filters: list[str] = []
        span_params: list[Any] = []
        if query.model_id is not None:
            span_filters.append("model_id = ?")
            span_params.append(query.model_id)
        for key, value in query.attributes.items():
            span_filters.append("attributes[?] = ?")
            span_params.extend([key, value])
        if query.text:
            span_filters.append(
                "(contains(lower(coalesce(input_preview, '')), lower(?))"
                " OR contains(lower(coalesce(output_preview, '')), lower(?)))"
            )
            span_params.extend([query.text, query.text])
        for condition in span_filters:
            having.append(f"bool_or({condition})")
        having_params = span_params
        if query.service is not None:
            having.append(
                "coalesce(arg_min(service_name, start_time) FILTER (WHERE parent_span_id IS NULL),"
                " arg_min(service_name, start_time)) = ?"
            )
            having_params.append(query.service)
        if query.status is not None:
            having.append(
                "(CASE WHEN bool_or(status_code = 'error') THEN 'error' ELSE "
                "coalesce(arg_min(status_code, start_time) FILTER (WHERE parent_span_id IS NULL),"
                " arg_min(status_code, start_time)) END) = ?"
            )
            having_params.append(query.status)
        if query.min_duration_ns is not None:
            having.append("epoch_ns(max(end_time)) - epoch_ns(min(start_time)) >= ?")
            having_params.append(query.min_duration_ns)
        where_sql = ("WHERE " + " AND ".join(where)) if where else ""
        having_sql = ("HAVING " + " AND ".join(having)) if having else ""
        return where_sql, having_sql, params + having_params

    def traces(self, query: TraceQuery) -> pa.Table:
        where_sql, having_sql, params = self._where(query)
        sql = (
            f"SELECT {_SUMMARY_COLUMNS} FROM traces {where_sql} GROUP BY trace_id {having_sql} "
            "ORDER BY start_time DESC, trace_id LIMIT ? OFFSET ?"
        )
        return self._query(sql, [*params, int(query.limit), int(query.offset)])

    def count_traces(self, query: TraceQuery) -> int:
        where_sql, having_sql, params = self._where(query)
        sql = (
            f"SELECT count(*) AS n FROM (SELECT trace_id FROM traces {where_sql} "
            f"GROUP BY trace_id {having_sql})"
        )
        return int(self._query(sql, params).column("n")[0].as_py())

    def spans(self, trace_id: str) -> pa.Table:
        table = self._query(
            "SELECT * FROM traces WHERE trace_id = ? ORDER BY start_time, span_id",
            [trace_id.lower()],
        )
        return tree_order(table.cast(SPAN_SCHEMA))

    def sql(
        self,
        query: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        max_rows: int = MAX_SQL_ROWS,
    ) -> pa.Table:
        from pyflare.store.sqlguard import guard_select

        guarded = guard_select(
            query, allowed_tables=PYFLARE_TABLES, read_dialect="duckdb", write_dialect="duckdb",
            max_rows=max_rows,
        )
        return self._query(guarded.sql, params)

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
