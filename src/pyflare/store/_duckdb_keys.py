"""The DuckDB store's API keys: one row per key, holding its hash, never the key.

:class:`~pyflare.store.duckdb.DuckDBSpanStore` delegates its key methods here,
holding its lock around them. :func:`checked_key_record` is store-neutral (the
ClickHouse store checks records with it too). The table is not among
:data:`~pyflare.store.base.PYFLARE_TABLES`: user SQL never reads it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import duckdb

from pyflare.errors import InvalidArgumentError, StoreError

__all__ = [
    "KEY_FIELDS",
    "checked_key_record",
    "insert_key",
    "read_key",
    "read_keys",
    "revoke_key",
]

#: What a caller passes to ``put_api_key``; stores add ``revoked_at_ns``.
KEY_FIELDS: tuple[str, ...] = (
    "key_id",
    "key_hash",
    "name",
    "role",
    "user_id",
    "created_at_ns",
    "expires_at_ns",
)
_REQUIRED = frozenset({"key_id", "key_hash", "role", "created_at_ns"})
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_COLUMNS = (
    "key_id, key_hash, name, role, user_id, epoch_ns(created_at) AS created_at_ns, "
    "epoch_ns(expires_at) AS expires_at_ns, epoch_ns(revoked_at) AS revoked_at_ns"
)
_NAMES = (*KEY_FIELDS, "revoked_at_ns")


def _text(record: Mapping[str, Any], field: str, *, optional: bool) -> str | None:
    value = record.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"api key {field} must be a non-empty string, got {value!r}")
    return value


def _ns(record: Mapping[str, Any], field: str, *, optional: bool) -> int | None:
    value = record.get(field)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(
            f"api key {field} must be nanoseconds since the epoch (int >= 0), got {value!r}"
        )
    return value


def checked_key_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with every field checked (InvalidArgumentError naming the bad one)."""
    if not isinstance(record, Mapping):
        raise InvalidArgumentError(f"an api key record is a mapping, got {type(record).__name__}")
    unknown = set(record) - set(KEY_FIELDS)
    missing = _REQUIRED - set(record)
    if unknown or missing:
        raise InvalidArgumentError(
            f"api key record: unknown fields {sorted(unknown)}, missing {sorted(missing)}; "
            f"fields are {', '.join(KEY_FIELDS)}"
        )
    key_id = _text(record, "key_id", optional=False)
    if key_id is None or not _KEY_ID.fullmatch(key_id):
        raise InvalidArgumentError(
            f"api key key_id must be 1-64 letters, digits, '-' or '_', got {key_id!r}"
        )
    key_hash = _text(record, "key_hash", optional=False)
    if key_hash is None or not _SHA256_HEX.fullmatch(key_hash):
        raise InvalidArgumentError("api key key_hash must be a sha256 digest in lowercase hex")
    created = _ns(record, "created_at_ns", optional=False)
    expires = _ns(record, "expires_at_ns", optional=True)
    if created is not None and expires is not None and expires <= created:
        raise InvalidArgumentError("api key expires_at_ns must be after created_at_ns")
    return {
        "key_id": key_id,
        "key_hash": key_hash,
        "name": _text(record, "name", optional=True),
        "role": _text(record, "role", optional=False),
        "user_id": _text(record, "user_id", optional=True),
        "created_at_ns": created,
        "expires_at_ns": expires,
    }


def _timestamp(ns: int | None) -> str:
    return "NULL" if ns is None else "make_timestamp_ns(?)"


def insert_key(con: duckdb.DuckDBPyConnection, path: str, record: Mapping[str, Any]) -> None:
    """Add a key; a key_id already there is an InvalidArgumentError."""
    row = checked_key_record(record)
    expires = row["expires_at_ns"]
    params: list[Any] = [row[f] for f in ("key_id", "key_hash", "name", "role", "user_id")]
    params.append(row["created_at_ns"])
    if expires is not None:
        params.append(expires)
    try:
        con.execute(
            "INSERT INTO api_keys (key_id, key_hash, name, role, user_id, created_at, "
            f"expires_at) VALUES (?, ?, ?, ?, ?, make_timestamp_ns(?), {_timestamp(expires)})",
            params,
        )
    except duckdb.ConstraintException as exc:
        raise InvalidArgumentError(f"an api key with key_id {row['key_id']!r} exists") from exc
    except duckdb.Error as exc:
        raise StoreError(f"storing an api key in {path} failed: {exc}") from exc


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    try:
        fetched = con.execute(sql, params).fetchall()
    except duckdb.Error as exc:
        raise StoreError(f"reading api keys failed: {exc}") from exc
    return [dict(zip(_NAMES, row, strict=True)) for row in fetched]


def read_keys(con: duckdb.DuckDBPyConnection, *, include_revoked: bool) -> list[dict[str, Any]]:
    """Every key (without the revoked ones unless asked), oldest first."""
    where = "" if include_revoked else "WHERE revoked_at IS NULL"
    return _rows(con, f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY created_at, key_id", [])


def read_key(con: duckdb.DuckDBPyConnection, key_id: str) -> dict[str, Any] | None:
    """The key ``key_id`` names (revoked or not), or None."""
    if not isinstance(key_id, str):
        raise InvalidArgumentError(f"key_id must be a string, got {type(key_id).__name__}")
    rows = _rows(con, f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", [key_id])
    return rows[0] if rows else None


def revoke_key(con: duckdb.DuckDBPyConnection, path: str, key_id: str, at_ns: int) -> bool:
    """Mark ``key_id`` revoked at ``at_ns``; False when no such key or already revoked."""
    if not isinstance(key_id, str):
        raise InvalidArgumentError(f"key_id must be a string, got {type(key_id).__name__}")
    if isinstance(at_ns, bool) or not isinstance(at_ns, int) or at_ns < 0:
        raise InvalidArgumentError(f"at_ns must be nanoseconds since the epoch, got {at_ns!r}")
    try:
        changed = con.execute(
            "UPDATE api_keys SET revoked_at = make_timestamp_ns(?) "
            "WHERE key_id = ? AND revoked_at IS NULL RETURNING key_id",
            [at_ns, key_id],
        ).fetchall()
    except duckdb.Error as exc:
        raise StoreError(f"revoking an api key in {path} failed: {exc}") from exc
    return bool(changed)
