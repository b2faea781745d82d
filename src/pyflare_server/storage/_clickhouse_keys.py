"""The ClickHouse store's API keys: one row per key, holding its hash, never the key.

``api_keys`` is a ReplacingMergeTree keyed by key_id and versioned: revoking a
key writes its row again with ``revoked_at`` set and a newer version, and reads
run with ``final = 1``. Records are checked by the same code as the DuckDB
store's (:func:`pyflare.store._duckdb_keys.checked_key_record`). The table is
not among :data:`~pyflare.store.base.PYFLARE_TABLES`: user SQL never reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

from pyflare.errors import InvalidArgumentError
from pyflare.store._duckdb_keys import KEY_FIELDS, checked_key_record

__all__ = ["API_KEYS_TABLE", "KeyTable"]

API_KEYS_TABLE = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id      String,
    key_hash    String,
    name        Nullable(String),
    role        LowCardinality(String),
    user_id     Nullable(String),
    created_at  DateTime64(9),
    expires_at  Nullable(DateTime64(9)),
    revoked_at  Nullable(DateTime64(9)),
    _version    UInt64
)
ENGINE = ReplacingMergeTree(_version)
ORDER BY key_id
"""

_COLUMNS = (
    "key_id, key_hash, name, role, user_id, toUnixTimestamp64Nano(created_at) AS created_at_ns, "
    "toUnixTimestamp64Nano(expires_at) AS expires_at_ns, "
    "toUnixTimestamp64Nano(revoked_at) AS revoked_at_ns, _version"
)
_SCHEMA = pa.schema(
    [
        ("key_id", pa.string()),
        ("key_hash", pa.string()),
        ("name", pa.string()),
        ("role", pa.string()),
        ("user_id", pa.string()),
        ("created_at", pa.timestamp("ns")),
        ("expires_at", pa.timestamp("ns")),
        ("revoked_at", pa.timestamp("ns")),
        ("_version", pa.uint64()),
    ]
)


def _check_id(key_id: Any) -> str:
    if not isinstance(key_id, str):
        raise InvalidArgumentError(f"key_id must be a string, got {type(key_id).__name__}")
    return key_id


class KeyTable:
    """API key records over the store's read and insert (the store holds its lock)."""

    def __init__(
        self, read: Callable[..., pa.Table], insert: Callable[[str, pa.Table, str], None]
    ) -> None:
        self._read = read
        self._insert = insert

    def _rows(self, where: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        rows = self._read(
            f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY created_at, key_id", params
        ).to_pylist()
        return [
            {name: row[name] for name in (*KEY_FIELDS, "revoked_at_ns", "_version")} for row in rows
        ]

    def _write(self, row: Mapping[str, Any], revoked_at_ns: int | None, version: int) -> None:
        table = pa.Table.from_pylist(
            [
                {
                    **{k: row[k] for k in ("key_id", "key_hash", "name", "role", "user_id")},
                    "created_at": row["created_at_ns"],
                    "expires_at": row["expires_at_ns"],
                    "revoked_at": revoked_at_ns,
                    "_version": version,
                }
            ],
            schema=_SCHEMA,
        )
        self._insert("api_keys", table, "api key")

    def put(self, record: Mapping[str, Any]) -> None:
        row = checked_key_record(record)
        if self.get(row["key_id"]) is not None:
            raise InvalidArgumentError(f"an api key with key_id {row['key_id']!r} exists")
        self._write(row, None, time.time_ns())

    def all(self, *, include_revoked: bool) -> list[dict[str, Any]]:
        where = "" if include_revoked else "WHERE revoked_at IS NULL"
        return [_public(row) for row in self._rows(where, {})]

    def _stored(self, key_id: str) -> dict[str, Any] | None:
        rows = self._rows("WHERE key_id = {key:String}", {"key": _check_id(key_id)})
        return rows[0] if rows else None

    def get(self, key_id: str) -> dict[str, Any] | None:
        row = self._stored(key_id)
        return None if row is None else _public(row)

    def revoke(self, key_id: str, at_ns: int) -> bool:
        _check_id(key_id)
        if isinstance(at_ns, bool) or not isinstance(at_ns, int) or at_ns < 0:
            raise InvalidArgumentError(f"at_ns must be nanoseconds since the epoch, got {at_ns!r}")
        row = self._stored(key_id)
        if row is None or row["revoked_at_ns"] is not None:
            return False
        self._write(row, at_ns, max(time.time_ns(), int(row["_version"]) + 1))
        return True


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in (*KEY_FIELDS, "revoked_at_ns")}
