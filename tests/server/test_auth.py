"""API keys on the HTTP API: 401 with a reason, revoked and expired keys, caching, CORS."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import pytest
from _auth import auth_app, settings

from pyflare.errors import InvalidArgumentError, StoreError
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.auth.authenticator import Authenticator, Credentials
from pyflare_server.auth.keys import create_key, hash_key, parse_duration, split_key
from pyflare_server.auth.principal import AuthError

TRACES = "/api/v1/traces"


def test_no_credentials_is_401_problem_json_with_a_challenge(tmp_path: Path) -> None:
    with auth_app(tmp_path) as app:
        response = app.get(TRACES)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["www-authenticate"].startswith("Bearer")
        body = response.json()
        assert body["code"] == "unauthenticated"
        assert "X-API-Key" in body["detail"]
        assert body["instance"] == TRACES
        # /health stays open, and the server keeps answering.
        assert app.get("/health").status_code == 200
        assert app.get(TRACES, "admin").status_code == 200


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({"X-API-Key": "secret"}, "malformed"),
        ({"X-API-Key": ""}, "malformed"),
        ({"X-API-Key": "pf_aaaaaaaaaaaa_" + "x" * 43}, "unknown API key aaaaaaaaaaaa"),
        ({"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "Bearer"),
        ({"Authorization": "Bearer"}, "Bearer"),
        ({"Authorization": "Bearer not.a.jwt"}, "does not accept JWTs"),
    ],
)
def test_bad_credentials_are_401_naming_the_problem(
    tmp_path: Path, headers: dict[str, str], detail: str
) -> None:
    with auth_app(tmp_path) as app:
        response = app.client.get(TRACES, headers=headers)
        assert response.status_code == 401
        assert detail in response.json()["detail"]
        assert app.get(TRACES, "developer").status_code == 200


def test_a_key_with_the_right_id_and_a_wrong_secret_is_refused(tmp_path: Path) -> None:
    with auth_app(tmp_path) as app:
        real = app.keys["admin"]
        forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
        response = app.get(TRACES, forged)
        assert response.status_code == 401
        assert response.json()["detail"] == f"unknown API key {split_key(real)}"
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_keys_work_as_a_bearer_token_too(tmp_path: Path) -> None:
    with auth_app(tmp_path) as app:
        bearer = {"Authorization": f"Bearer {app.keys['viewer']}"}
        assert app.client.get(TRACES, headers=bearer).status_code == 200


def test_revoked_and_expired_keys_are_refused(tmp_path: Path) -> None:
    with auth_app(tmp_path) as app:
        revoked = create_key(app.store, "admin")
        assert app.store.revoke_api_key(revoked.key_id, at_ns=time.time_ns())
        response = app.get(TRACES, revoked.key)
        assert response.status_code == 401
        assert "was revoked" in response.json()["detail"]
        day_ns = 86_400 * 1_000_000_000
        expired = create_key(app.store, "admin", expires_in_s=60, now_ns=time.time_ns() - day_ns)
        response = app.get(TRACES, expired.key)
        assert response.status_code == 401
        assert "has expired" in response.json()["detail"]
        fresh = create_key(app.store, "admin", expires_in_s=3600)
        assert app.get(TRACES, fresh.key).status_code == 200


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_revoked_key_stops_working_when_its_cached_record_ages_out(tmp_path: Path) -> None:
    store = DuckDBSpanStore(tmp_path / "k.duckdb")
    clock = Clock()
    try:
        made = create_key(store, "developer", user_id="u1")
        auth = Authenticator(settings().server.auth, store, cache_s=5.0, clock=clock)
        principal = asyncio.run(auth.authenticate(Credentials(api_key=made.key)))
        assert principal.user_id == "u1"
        assert principal.key_id == made.key_id
        assert principal.roles == ("developer",)
        store.revoke_api_key(made.key_id, at_ns=time.time_ns())
        clock.now += 4.9  # still cached
        assert asyncio.run(auth.authenticate(Credentials(api_key=made.key))).via == "api_key"
        clock.now += 0.2
        with pytest.raises(AuthError, match="was revoked"):
            asyncio.run(auth.authenticate(Credentials(api_key=made.key)))
        # Without a cache, revocation is seen at once.
        other = create_key(store, "developer")
        uncached = Authenticator(settings().server.auth, store, cache_s=0)
        asyncio.run(uncached.authenticate(Credentials(api_key=other.key)))
        store.revoke_api_key(other.key_id, at_ns=time.time_ns())
        with pytest.raises(AuthError, match="was revoked"):
            asyncio.run(uncached.authenticate(Credentials(api_key=other.key)))
    finally:
        store.close()


def test_a_store_that_fails_is_503_not_a_crash(tmp_path: Path) -> None:
    store = DuckDBSpanStore(tmp_path / "k.duckdb")
    made = create_key(store, "admin")
    auth = Authenticator(settings().server.auth, store, cache_s=0)
    store.close()
    with pytest.raises(AuthError) as caught:
        asyncio.run(auth.authenticate(Credentials(api_key=made.key)))
    assert caught.value.status == 503
    assert isinstance(caught.value.__cause__, StoreError)


def test_only_the_hash_of_a_key_is_stored(tmp_path: Path) -> None:
    store = DuckDBSpanStore(tmp_path / "k.duckdb")
    try:
        made = create_key(store, "viewer", name="ci", user_id="bob", expires_in_s=60)
        record = store.api_key(made.key_id)
        assert record is not None
        assert (
            record["key_hash"]
            == hash_key(made.key)
            == hashlib.sha256(made.key.encode()).hexdigest()
        )
        assert made.key not in repr(record)
        assert record["expires_at_ns"] - record["created_at_ns"] == 60 * 1_000_000_000
        assert (record["name"], record["role"], record["user_id"]) == ("ci", "viewer", "bob")
        with pytest.raises(InvalidArgumentError, match="unknown role 'root'"):
            create_key(store, "root")
        with pytest.raises(InvalidArgumentError, match="positive"):
            create_key(store, "admin", expires_in_s=0)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 2_592_000), ("12h", 43_200), ("90m", 5_400), ("2w", 1_209_600)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0d", "30", "1y", "-1d", "1.5h", "d30"])
def test_bad_durations_are_named(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="expected a duration"):
        parse_duration(text)


def test_cors_preflight_needs_no_credentials_and_errors_carry_cors(tmp_path: Path) -> None:
    with auth_app(tmp_path) as app:
        preflight = app.client.options(
            TRACES,
            headers={
                "Origin": "https://ui.example.com",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "x-api-key",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
        refused = app.client.get(TRACES, headers={"Origin": "https://ui.example.com"})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "*"


def test_cors_origins_are_configurable(tmp_path: Path) -> None:
    config = {"server": {"api": {"cors": {"allowed_origins": ["https://ui.example.com"]}}}}
    with auth_app(tmp_path, config) as app:
        asked = {"Access-Control-Request-Method": "GET"}
        good = app.client.options(TRACES, headers={"Origin": "https://ui.example.com", **asked})
        bad = app.client.options(TRACES, headers={"Origin": "https://evil.example.com", **asked})
        assert good.headers["access-control-allow-origin"] == "https://ui.example.com"
        assert bad.status_code == 400
        assert "access-control-allow-origin" not in bad.headers
