"""Helpers for the auth tests: an app with auth on, keys per role, RSA keys and JWTs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.testclient import TestClient

from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.app import create_app
from pyflare_server.auth.keys import create_key
from pyflare_server.settings import ServerSettings

ISSUER = "https://id.example.com"
AUDIENCE = "pyflare-api"


def settings(config: dict[str, Any] | None = None, **env: str) -> ServerSettings:
    """Settings on 0.0.0.0 (so auth is on by default), decoding in process."""
    variables = {"PYFLARE_COLLECTOR__OTLP__DECODE_WORKERS": "0", **env}
    return ServerSettings.model_validate(
        _merge(ServerSettings.load(env=variables).model_dump(), config or {})
    )


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class AuthApp:
    client: TestClient
    store: DuckDBSpanStore
    keys: dict[str, str]

    def get(self, path: str, key: str | None = None, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["X-API-Key"] = self.keys.get(key, key)
        return self.client.get(path, headers=headers, **kwargs)


@contextmanager
def auth_app(tmp_path: Path, config: dict[str, Any] | None = None) -> Iterator[AuthApp]:
    """create_app() with auth on, a key per role (viewer with a user id) and a store."""
    store = DuckDBSpanStore(tmp_path / "auth.duckdb")
    keys = {
        role: create_key(store, role, user_id=f"user-{role}").key
        for role in ("admin", "developer", "viewer", "operator", "ingest")
    }
    keys["viewer-anonymous"] = create_key(store, "viewer").key
    try:
        with TestClient(create_app(settings(config), store=store)) as client:
            yield AuthApp(client, store, keys)
    finally:
        store.close()


@dataclass
class Issuer:
    """An identity provider: an RSA key pair whose public half PyFlare reads from a file."""

    private_key: rsa.RSAPrivateKey
    public_pem: Path

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "role": "developer",
            "iat": now,
            "exp": now + 600,
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.private_key, algorithm="RS256")


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def issuer(directory: Path) -> Issuer:
    key = rsa_key()
    pem = directory / "public.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return Issuer(key, pem)


def jwt_config(public_pem: Path, **jwt_settings: Any) -> dict[str, Any]:
    return {
        "server": {
            "auth": {
                "jwt": {
                    "enabled": True,
                    "issuer": ISSUER,
                    "audience": AUDIENCE,
                    "public_key_path": str(public_pem),
                    **jwt_settings,
                }
            }
        }
    }
