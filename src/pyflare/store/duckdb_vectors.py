"""The local vector store: embeddings in DuckDB tables of fixed-size FLOAT arrays.

A table per collection (``inference_embeddings``, ``reference_embeddings``): the
point id, ``vector FLOAT[dim]``, a column per payload field and an ``extra``
map for other payload keys. Similarity is ``array_cosine_similarity``, an exact
scan (no ANN index: the local mode holds thousands to a few million points,
where a scan over FLOAT arrays stays fast and gives exact answers).

By default the tables sit in the span store's own file, next to the spans
(:meth:`DuckDBSpanStore.vector_store <pyflare.store.duckdb.DuckDBSpanStore.vector_store>`):
one file, one process, nothing else to run; user SQL (``pyflare.sql``) cannot
read them. ``DuckDBVectorStore(path, dim=...)`` opens a file of its own instead.
The size of a file's vectors is fixed when its tables are created; opening it
with another ``dim`` raises ``StoreError``.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from pyflare.errors import StoreError
from pyflare.store.vectors import (
    TIME_FIELDS,
    VECTOR_COLLECTIONS,
    VectorBatch,
    VectorFilter,
    VectorHit,
    check_collection,
    check_delete,
    check_dim,
    check_filter,
    check_ids,
    check_limit,
    check_points,
    check_query_vector,
    check_query_vectors,
    time_bounds_us,
)

__all__ = ["DuckDBVectorStore"]

_SQL_TYPES = {"keyword": "VARCHAR", "integer": "BIGINT", "datetime": "TIMESTAMP"}
_ARROW_TYPES = {"keyword": pa.string(), "integer": pa.int64(), "datetime": pa.timestamp("us")}
_EXTRA = pa.map_(pa.string(), pa.string())
# A view name per store, so two stores sharing a connection never collide.
_VIEW_IDS = itertools.count()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DuckDBVectorStore:
    """:class:`~pyflare.store.base.VectorStore` on DuckDB tables of ``FLOAT[dim]`` arrays."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, dim: int) -> None:
        self._dim = check_dim(dim)
        self.path = os.fspath(path)
        self._lock: threading.RLock = threading.RLock()
        self._owns_connection = True
        self._closed = False
        if self.path != ":memory:":
            directory = Path(self.path).expanduser().resolve().parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the directory {directory} for the vector store {self.path}: "
                    f"{exc.strerror or exc}; choose a writable location"
                ) from exc
        try:
            self._con = duckdb.connect(
                self.path,
                config={
                    "autoinstall_known_extensions": False,
                    "autoload_known_extensions": False,
                },
            )
        except duckdb.Error as exc:
            if "already attached" in str(exc) or "different configuration" in str(exc):
                raise StoreError(
                    f"{self.path} is already open in this process (as the span store?): take "
                    "its vectors from DuckDBSpanStore.vector_store(dim), or use another file"
                ) from exc
            raise StoreError(f"cannot open the vector store {self.path}: {exc}") from exc
        self._setup()

    @classmethod
    def sharing(
        cls,
        connection: duckdb.DuckDBPyConnection,
        lock: threading.RLock,
        *,
        dim: int,
        path: str,
    ) -> DuckDBVectorStore:
        """A store on another object's connection (the span store's), under its lock.

        Closing it leaves the connection open; once the connection's owner closes
        it, calls raise ``StoreError``.
        """
        store = cls.__new__(cls)
        store._dim = check_dim(dim)
        store.path = path
        store._lock = lock
        store._owns_connection = False
        store._closed = False
        store._con = connection
        store._setup()
        return store

    def _setup(self) -> None:
        self._view = f"_pyflare_vectors_{next(_VIEW_IDS)}"
        with self._lock:
            try:
                for name, fields in VECTOR_COLLECTIONS.items():
                    self._create(name, fields)
            except duckdb.Error as exc:
                self._release()
                raise StoreError(f"cannot create the vector tables in {self.path}: {exc}") from exc
            except StoreError:
                self._release()
                raise

    def _create(self, name: str, fields: Mapping[str, str]) -> None:
        declared = self._vector_type(name)
        if declared is None:  # a read-only store can still read tables that exist
            columns = ", ".join(f"{_quote(key)} {_SQL_TYPES[kind]}" for key, kind in fields.items())
            self._con.execute(
                f"CREATE TABLE {name} (point_id VARCHAR NOT NULL, "
                f"vector FLOAT[{self._dim}] NOT NULL, {columns}, extra MAP(VARCHAR, VARCHAR))"
            )
            declared = self._vector_type(name)
        if declared != f"FLOAT[{self._dim}]":
            raise StoreError(
                f"{self.path} holds {name} as {declared}, not FLOAT[{self._dim}]: its vectors "
                f"have another size; open it with that dim, or use another file for "
                f"{self._dim}-dimensional vectors"
            )

    def _vector_type(self, name: str) -> str | None:
        rows = self._con.execute(
            "SELECT data_type FROM duckdb_columns() WHERE table_name = ? "
            "AND column_name = 'vector' AND database_name = current_database() "
            "AND schema_name = current_schema()",
            [name],
        ).fetchall()
        return str(rows[0][0]) if rows else None

    def _release(self) -> None:
        self._closed = True
        if self._owns_connection:
            self._con.close()

    # -- the VectorStore methods ----------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: Any,
        payloads: Sequence[Mapping[str, Any]],
    ) -> int:
        batch = check_points(collection, ids, vectors, payloads, self._dim)
        if not batch.ids:
            return 0
        table = self._arrow_points(collection, batch)
        with self._lock:
            self._ensure_open()
            con = self._con
            try:
                con.register(self._view, table)
                try:
                    con.begin()
                    con.execute(
                        f"DELETE FROM {collection} WHERE point_id IN "
                        f"(SELECT point_id FROM {self._view})"
                    )
                    con.execute(f"INSERT INTO {collection} BY NAME SELECT * FROM {self._view}")
                    con.commit()
                except BaseException:
                    con.rollback()
                    raise
                finally:
                    con.unregister(self._view)
            except duckdb.Error as exc:
                raise StoreError(f"cannot write {collection} to {self.path}: {exc}") from exc
        return len(batch.ids)

    def search(
        self,
        collection: str,
        vector: Any,
        *,
        limit: int = 10,
        where: VectorFilter | None = None,
    ) -> list[VectorHit]:
        name = check_collection(collection)
        query = check_query_vector(vector, self._dim)
        check_limit(limit)
        condition, params = self._where(name, where)
        params["query"] = query.tolist()
        table = self._read(
            f"SELECT point_id, array_cosine_similarity(vector, $query::FLOAT[{self._dim}]) "
            f"AS score, {self._payload_columns(name)} FROM {name} WHERE {condition} "
            f"ORDER BY score DESC, point_id LIMIT {limit}",
            params,
        )
        return self._hits(name, table)

    def search_batch(
        self,
        collection: str,
        vectors: Any,
        *,
        limit: int = 10,
        where: VectorFilter | None = None,
    ) -> list[list[VectorHit]]:
        name = check_collection(collection)
        queries = check_query_vectors(vectors, self._dim)
        check_limit(limit)
        condition, params = self._where(name, where)
        flat = pa.array(queries.ravel(), pa.float32())
        query_table = pa.table(
            {
                "query_index": pa.array(range(len(queries)), pa.int64()),
                "query": pa.FixedSizeListArray.from_arrays(flat, self._dim),
            }
        )
        # The top `limit` (id, score) per query with max_by (a bounded heap per
        # group, no sort of the whole cross product), then the payloads of those.
        sql = (
            "SELECT query_index, unnest(max_by({'id': point_id, 'score': score}, score, "
            f"{limit}), recursive := true) FROM (SELECT q.query_index, p.point_id, "
            f"array_cosine_similarity(p.vector, q.query) AS score FROM {self._view} q, "
            f"{name} p WHERE {condition}) GROUP BY query_index"
        )
        top = self._read(sql, params, register=query_table)
        found = top.column("id").to_pylist()
        payloads = self._read(
            f"SELECT point_id, {self._payload_columns(name)} FROM {name} "
            "WHERE point_id IN (SELECT unnest($ids))",
            {"ids": sorted(set(found))},
        )
        payload_of = dict(
            zip(
                payloads.column("point_id").to_pylist(), self._payloads(name, payloads), strict=True
            )
        )
        results: list[list[VectorHit]] = [[] for _ in range(len(queries))]
        indexes, scores = top.column("query_index").to_pylist(), top.column("score").to_pylist()
        rows = zip(indexes, found, scores, strict=True)
        for index, point_id, score in rows:
            results[index].append(VectorHit(point_id, float(score), dict(payload_of[point_id])))
        for hits in results:
            hits.sort(key=lambda hit: (-hit.score, hit.id))
        return results

    def sample(self, collection: str, n: int, *, where: VectorFilter | None = None) -> VectorBatch:
        name = check_collection(collection)
        check_limit(n, "n")
        condition, params = self._where(name, where)
        table = self._read(
            f"SELECT point_id, vector, {self._payload_columns(name)} FROM {name} "
            f"WHERE {condition} ORDER BY random() LIMIT {n}",
            params,
        )
        return self._batch(name, table)

    def get(self, collection: str, ids: Sequence[str]) -> VectorBatch:
        name = check_collection(collection)
        wanted = check_ids(ids)
        table = self._read(
            f"SELECT point_id, vector, {self._payload_columns(name)} FROM {name} "
            "WHERE point_id IN (SELECT unnest($ids))",
            {"ids": wanted},
        )
        found = self._batch(name, table)
        return found.in_order(wanted)

    def count(self, collection: str, *, where: VectorFilter | None = None) -> int:
        name = check_collection(collection)
        condition, params = self._where(name, where)
        table = self._read(f"SELECT count(*) AS n FROM {name} WHERE {condition}", params)
        return int(table.column("n")[0].as_py())

    def delete(
        self,
        collection: str,
        *,
        ids: Sequence[str] | None = None,
        where: VectorFilter | None = None,
    ) -> int:
        name = check_collection(collection)
        check_delete(ids, where)
        if ids is not None:
            condition, params = "point_id IN (SELECT unnest($ids))", {"ids": check_ids(ids)}
        else:
            condition, params = self._where(name, where)
        with self._lock:
            self._ensure_open()
            try:
                rows = self._con.execute(f"DELETE FROM {name} WHERE {condition}", params).fetchall()
            except duckdb.Error as exc:
                raise StoreError(f"cannot delete from {name} in {self.path}: {exc}") from exc
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._release()

    def __enter__(self) -> DuckDBVectorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DuckDBVectorStore({self.path!r}, dim={self._dim})"

    # -- helpers ---------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._closed:
            raise StoreError(f"the vector store {self.path} is closed")

    def _arrow_points(self, collection: str, batch: VectorBatch) -> pa.Table:
        fields = VECTOR_COLLECTIONS[collection]
        columns: dict[str, pa.Array] = {
            "point_id": pa.array(batch.ids, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(batch.vectors.ravel(), pa.float32()), self._dim
            ),
        }
        for key, kind in fields.items():
            values = [payload.get(key) for payload in batch.payloads]
            if kind == "datetime":
                values = [None if v is None else v // 1000 for v in values]
            columns[key] = pa.array(values, _ARROW_TYPES[kind])
        extras = [
            [(k, v) for k, v in payload.items() if k not in fields] for payload in batch.payloads
        ]
        columns["extra"] = pa.array(extras, _EXTRA)
        return pa.table(columns)

    def _where(self, collection: str, where: VectorFilter | None) -> tuple[str, dict[str, Any]]:
        checked = check_filter(collection, where)
        clauses = ["TRUE"]
        params: dict[str, Any] = {}
        for index, (key, value) in enumerate(sorted(checked.fields.items())):
            clauses.append(f"{_quote(key)} = $f{index}")
            params[f"f{index}"] = value
        since, until = time_bounds_us(checked)
        column = _quote(TIME_FIELDS[collection])
        if since is not None:
            clauses.append(f"epoch_us({column}) >= $since")
            params["since"] = since
        if until is not None:
            clauses.append(f"epoch_us({column}) < $until")
            params["until"] = until
        return " AND ".join(clauses), params

    def _payload_columns(self, collection: str, prefix: str = "") -> str:
        selected = []
        for key, kind in VECTOR_COLLECTIONS[collection].items():
            column = prefix + _quote(key)
            if kind == "datetime":
                selected.append(f"epoch_us({column}) * 1000 AS {_quote(key)}")
            else:
                selected.append(f"{column} AS {_quote(key)}")
        selected.append(f"{prefix}extra AS extra")
        return ", ".join(selected)

    def _read(
        self, sql: str, params: dict[str, Any], *, register: pa.Table | None = None
    ) -> pa.Table:
        with self._lock:
            self._ensure_open()
            try:
                if register is not None:
                    self._con.register(self._view, register)
                try:
                    table: pa.Table = self._con.sql(sql, params=params).to_arrow_table()
                finally:
                    if register is not None:
                        self._con.unregister(self._view)
            except duckdb.Error as exc:
                raise StoreError(f"cannot read the vector store {self.path}: {exc}") from exc
        return table

    def _payloads(self, collection: str, table: pa.Table) -> list[dict[str, Any]]:
        keys = list(VECTOR_COLLECTIONS[collection])
        columns = {key: table.column(key).to_pylist() for key in keys}
        extras = table.column("extra").to_pylist()
        payloads: list[dict[str, Any]] = []
        for row, extra in enumerate(extras):
            payload = {key: columns[key][row] for key in keys if columns[key][row] is not None}
            payload.update(dict(extra or ()))
            payloads.append(payload)
        return payloads

    def _hits(self, collection: str, table: pa.Table) -> list[VectorHit]:
        ids = table.column("point_id").to_pylist()
        scores = table.column("score").to_pylist()
        payloads = self._payloads(collection, table)
        return [
            VectorHit(id=point_id, score=float(score), payload=payload)
            for point_id, score, payload in zip(ids, scores, payloads, strict=True)
        ]

    def _batch(self, collection: str, table: pa.Table) -> VectorBatch:
        vectors = table.column("vector").combine_chunks()
        flat = np.asarray(vectors.values, dtype=np.float32) if len(vectors) else np.empty(0)
        return VectorBatch(
            ids=table.column("point_id").to_pylist(),
            vectors=flat.astype(np.float32).reshape(len(vectors), self._dim),
            payloads=self._payloads(collection, table),
        )
