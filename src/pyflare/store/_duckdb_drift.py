"""The DuckDB store's drift tables: drift results and drift references.

:class:`~pyflare.store.duckdb.DuckDBSpanStore` delegates its drift methods
here: these functions check the arguments, build the SQL and run it on the
connection the store hands them, the store holding its lock around them.
Drift results are appended as they come; drift references are kept as
history, the latest per model and drift type being the active one.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pyflare.errors import QueryError, StoreError
from pyflare.records import DRIFT_RESULT_SCHEMA
from pyflare.store.base import DRIFT_TYPES
from pyflare.store.batches import conform

__all__ = [
    "MODELS_WITH_DRIFT_SQL",
    "check_drift_type",
    "check_reference",
    "checked_results",
    "insert_reference",
    "read_reference",
    "results_query",
]

MODELS_WITH_DRIFT_SQL = (
    "SELECT model_id FROM drift_results UNION SELECT model_id FROM drift_references "
    "ORDER BY model_id"
)


def check_drift_type(drift_type: str, error: type[Exception]) -> None:
    """Raise ``error`` unless ``drift_type`` is one of the store's drift types."""
    if drift_type not in DRIFT_TYPES:
        raise error(f"unknown drift_type {drift_type!r}; use one of {sorted(DRIFT_TYPES)}")


def checked_results(batch: pa.Table) -> pa.Table:
    """``batch`` conformed to the drift result schema, its drift types checked."""
    batch = conform(batch, DRIFT_RESULT_SCHEMA, "drift result")
    unknown = set(pc.unique(batch.column("drift_type")).to_pylist()) - DRIFT_TYPES
    if unknown:
        raise StoreError(
            f"drift results with unknown drift_type {sorted(unknown)}; "
            f"use one of {sorted(DRIFT_TYPES)}"
        )
    return batch


def results_query(
    model_id: str,
    *,
    drift_type: str | None,
    since_ns: int | None,
    until_ns: int | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The SQL and parameters reading one model's drift results, the latest first."""
    if drift_type is not None:
        check_drift_type(drift_type, QueryError)
    if limit < 0:
        raise QueryError(f"limit must not be negative, got {limit}")
    where = ["model_id = ?"]
    params: list[Any] = [model_id]
    for clause, value in (
        ("drift_type = ?", drift_type),
        ("window_end >= make_timestamp_ns(?)", since_ns),
        ("window_end < make_timestamp_ns(?)", until_ns),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = (
        f"SELECT * FROM drift_results WHERE {' AND '.join(where)} "
        "ORDER BY window_end DESC, computed_at DESC LIMIT ?"
    )
    return sql, [*params, int(limit)]


def check_reference(model_id: str, drift_type: str, state: bytes, n_samples: int) -> None:
    """Refuse a drift reference that could not be stored or used."""
    if not isinstance(model_id, str) or not model_id:
        raise StoreError(f"a drift reference needs a model id, got {model_id!r}")
    check_drift_type(drift_type, StoreError)
    if not isinstance(state, bytes | bytearray | memoryview) or not len(state):
        raise StoreError("a drift reference needs the detector's state() bytes, got none")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 0:
        raise StoreError(f"n_samples must be a count (>= 0), got {n_samples!r}")


def insert_reference(
    con: duckdb.DuckDBPyConnection,
    path: str,
    *,
    model_id: str,
    drift_type: str,
    state: bytes,
    created_ns: int,
    dataset_version: str | None,
    n_samples: int,
) -> dict[str, Any]:
    """Store a (checked) drift reference created at ``created_ns``; its metadata."""
    try:
        con.execute(
            "INSERT INTO drift_references VALUES (?, ?, make_timestamp_ns(?), ?, ?, ?)",
            [model_id, drift_type, created_ns, dataset_version, n_samples, bytes(state)],
        ).fetchall()
    except duckdb.Error as exc:
        raise StoreError(f"storing a drift reference in {path} failed: {exc}") from exc
    return _reference_meta(model_id, drift_type, created_ns, dataset_version, n_samples)


def read_reference(
    con: duckdb.DuckDBPyConnection, model_id: str, drift_type: str
) -> tuple[bytes, dict[str, Any]] | None:
    """The active (latest) reference of a model and drift type, with its metadata."""
    try:
        rows = con.execute(
            "SELECT state, epoch_ns(created_at), dataset_version, n_samples "
            "FROM drift_references WHERE model_id = ? AND drift_type = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            [model_id, drift_type],
        ).fetchall()
    except duckdb.Error as exc:
        raise QueryError(f"reading a drift reference failed: {exc}") from exc
    if not rows:
        return None
    state, created, dataset_version, n_samples = rows[0]
    meta = _reference_meta(model_id, drift_type, int(created), dataset_version, int(n_samples))
    return bytes(state), meta


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
