"""API keys: made here, shown to the user once, stored as their sha256.

A key reads ``pf_<key_id>_<secret>``: the key id (public, shown by
``pyflare keys list``) finds the record, the secret (32 random bytes) makes the
key unguessable. The store keeps sha256 of the whole key; a presented key is
hashed and compared in constant time. A high-entropy random key needs no slow
password hash: nobody can search its space.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pyflare.errors import InvalidArgumentError
from pyflare.store.base import SpanStore
from pyflare_server.auth.permissions import ROLES

__all__ = [
    "KEY_PREFIX",
    "NewKey",
    "create_key",
    "hash_key",
    "matches",
    "parse_duration",
    "split_key",
]

KEY_PREFIX: Final = "pf_"
_KEY: Final = re.compile(r"pf_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})")
_DURATION: Final = re.compile(r"\s*(\d+)\s*([smhdw])\s*")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_ID_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class NewKey:
    """A key just made: ``key`` is shown once and never stored."""

    key: str
    record: Mapping[str, Any]

    @property
    def key_id(self) -> str:
        return str(self.record["key_id"])


def hash_key(key: str) -> str:
    """The sha256 (lowercase hex) the store keeps for ``key``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def split_key(text: str) -> str | None:
    """The key id of a well-formed key, or None when ``text`` is not one."""
    match = _KEY.fullmatch(text)
    return match.group(1) if match else None


def matches(key: str, stored_hash: str) -> bool:
    """Whether ``key`` hashes to ``stored_hash`` (constant-time comparison)."""
    return hmac.compare_digest(hash_key(key).encode(), stored_hash.encode())


def parse_duration(text: str) -> int:
    """Seconds in ``30d``, ``12h``, ``90m``, ``2w`` or ``45s`` (InvalidArgumentError otherwise)."""
    match = _DURATION.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise InvalidArgumentError(
            f"expected a duration such as 30d, 12h, 90m, 2w or 45s, got {text!r}"
        )
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def create_key(
    store: SpanStore,
    role: str,
    *,
    name: str | None = None,
    user_id: str | None = None,
    expires_in_s: int | None = None,
    now_ns: int | None = None,
) -> NewKey:
    """Make a key for ``role``, store its hash and return it (the only time it is seen)."""
    if role not in ROLES:
        raise InvalidArgumentError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if expires_in_s is not None and expires_in_s <= 0:
        raise InvalidArgumentError(f"expires_in_s must be positive, got {expires_in_s}")
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    created = time.time_ns() if now_ns is None else now_ns
    record = {
        "key_id": key_id,
        "key_hash": hash_key(key),
        "name": name,
        "role": role,
        "user_id": user_id,
        "created_at_ns": created,
        "expires_at_ns": None if expires_in_s is None else created + expires_in_s * 1_000_000_000,
    }
    store.put_api_key(record)
    return NewKey(key, record)
