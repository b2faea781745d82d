"""API key records: every span store keeps hashes, revokes, and refuses bad records."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from pyflare.errors import InvalidArgumentError
from pyflare.store.base import PYFLARE_TABLES, SpanStore

T0 = 1_700_000_000_123_456_789


def record(key_id: str = "k1", **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "key_id": key_id,
        "key_hash": hashlib.sha256(key_id.encode()).hexdigest(),
        "name": f"{key_id} name",
        "role": "developer",
        "user_id": "alice",
        "created_at_ns": T0,
        "expires_at_ns": None,
    }
    values.update(changes)
    return values


def test_a_stored_key_reads_back_with_every_field(store: SpanStore) -> None:
    store.put_api_key(record("k1", expires_at_ns=T0 + 5))
    store.put_api_key(record("k0", created_at_ns=T0 - 1, name=None, user_id=None))
    assert store.api_key("k1") == {**record("k1", expires_at_ns=T0 + 5), "revoked_at_ns": None}
    assert store.api_key("k0") == {
        **record("k0", created_at_ns=T0 - 1, name=None, user_id=None),
        "revoked_at_ns": None,
    }
    assert [key["key_id"] for key in store.api_keys()] == ["k0", "k1"]  # oldest first
    assert store.api_key("nope") is None


def test_revoked_keys_are_marked_and_left_out_of_the_list(store: SpanStore) -> None:
    store.put_api_key(record("a"))
    store.put_api_key(record("b", created_at_ns=T0 + 1))
    assert store.revoke_api_key("a", at_ns=T0 + 10) is True
    assert store.revoke_api_key("a", at_ns=T0 + 20) is False  # already revoked: unchanged
    assert store.revoke_api_key("missing", at_ns=T0) is False
    assert [key["key_id"] for key in store.api_keys()] == ["b"]
    listed = store.api_keys(include_revoked=True)
    assert [(key["key_id"], key["revoked_at_ns"]) for key in listed] == [
        ("a", T0 + 10),
        ("b", None),
    ]
    revoked = store.api_key("a")
    assert revoked is not None
    assert revoked["revoked_at_ns"] == T0 + 10


def test_a_key_id_is_stored_once(store: SpanStore) -> None:
    store.put_api_key(record("same"))
    with pytest.raises(InvalidArgumentError, match="'same' exists"):
        store.put_api_key(record("same", key_hash="0" * 64))
    stored = store.api_key("same")
    assert stored is not None
    assert stored["key_hash"] == record("same")["key_hash"]


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"key_id": ""}, "key_id"),
        ({"key_id": "has space"}, "key_id"),
        ({"key_id": "x" * 65}, "key_id"),
        ({"key_hash": "not-a-digest"}, "key_hash"),
        ({"key_hash": "A" * 64}, "key_hash"),
        ({"role": None}, "role"),
        ({"role": 3}, "role"),
        ({"name": ""}, "name"),
        ({"user_id": 7}, "user_id"),
        ({"created_at_ns": "yesterday"}, "created_at_ns"),
        ({"created_at_ns": -1}, "created_at_ns"),
        ({"created_at_ns": True}, "created_at_ns"),
        ({"expires_at_ns": 1.5}, "expires_at_ns"),
        ({"expires_at_ns": T0}, "expires_at_ns must be after"),
        ({"secret": "pf_plaintext"}, r"unknown fields \['secret'\]"),
    ],
)
def test_bad_records_are_refused_naming_the_field(
    store: SpanStore, changes: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=named):
        store.put_api_key({**record("k"), **changes})
    assert store.api_keys(include_revoked=True) == []


def test_a_record_missing_fields_is_refused(store: SpanStore) -> None:
    incomplete = record("k")
    del incomplete["key_hash"]
    with pytest.raises(InvalidArgumentError, match=r"missing \['key_hash'\]"):
        store.put_api_key(incomplete)
    with pytest.raises(InvalidArgumentError, match="at_ns"):
        store.revoke_api_key("k", at_ns=-5)


def test_user_sql_cannot_read_the_keys(store: SpanStore) -> None:
    store.put_api_key(record("k"))
    assert "api_keys" not in PYFLARE_TABLES
    with pytest.raises(Exception, match="api_keys"):
        store.sql("SELECT key_hash FROM api_keys", max_rows=10)
