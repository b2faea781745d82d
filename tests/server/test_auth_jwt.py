"""JWT bearer tokens: signature, issuer, audience and expiry checked; role and sub used."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from _auth import AUDIENCE, ISSUER, AuthApp, Issuer, auth_app, issuer, jwt_config, rsa_key
from _auth import settings as auth_settings
from cryptography.hazmat.primitives.asymmetric import ec

from pyflare.errors import ConfigError
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.app import create_app

TRACES = "/api/v1/traces"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Issuer:
    return issuer(tmp_path_factory.mktemp("idp"))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, idp: Issuer) -> Iterator[AuthApp]:
    config = jwt_config(idp.public_pem)
    config["server"]["rate_limit"] = {"enabled": False}
    with auth_app(tmp_path_factory.mktemp("jwt"), config) as made:
        yield made


def call(app: AuthApp, token: str, path: str = TRACES) -> object:
    return app.client.get(path, headers={"Authorization": f"Bearer {token}"})


def test_a_good_token_is_accepted_with_its_role(app: AuthApp, idp: Issuer) -> None:
    assert call(app, idp.token()).status_code == 200  # type: ignore[attr-defined]
    viewer = idp.token(role="viewer")
    assert call(app, viewer, "/api/v1/query").status_code == 403  # type: ignore[attr-defined]
    # A list of roles adds their permissions up; unknown ones add nothing.
    roles = idp.token(role=["viewer", "made-up"])
    assert call(app, roles).status_code == 200  # type: ignore[attr-defined]
    # API keys keep working beside JWTs.
    assert app.get(TRACES, "developer").status_code == 200


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"exp": int(time.time()) - 3600}, "has expired"),
        ({"aud": "someone-else"}, f"not for audience {AUDIENCE!r}"),
        ({"iss": "https://evil.example.com"}, f"not issued by {ISSUER!r}"),
        ({"exp": None}, "lacks the 'exp' claim"),
        ({"aud": None}, "lacks the 'aud' claim"),
        ({"iss": None}, "lacks the 'iss' claim"),
        ({"nbf": int(time.time()) + 3600}, "not valid"),
    ],
)
def test_bad_claims_are_401(
    app: AuthApp, idp: Issuer, claims: dict[str, object], detail: str
) -> None:
    response = call(app, idp.token(**claims))
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert detail in response.json()["detail"]  # type: ignore[attr-defined]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]  # type: ignore[attr-defined]


def hmac_with_public_key(claims: dict[str, object], pem: bytes) -> str:
    """The algorithm-confusion attack: HS256 keyed with the server's public key."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(json.dumps(claims).encode())
    signature = hmac.new(pem, signing.encode(), hashlib.sha256).digest()
    return signing + "." + part(signature)


def test_forged_tokens_are_401(app: AuthApp, idp: Issuer) -> None:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "mallory",
        "role": "admin",
        "exp": int(time.time()) + 600,
    }
    forged = [
        jwt.encode(claims, rsa_key(), algorithm="RS256"),  # another key
        jwt.encode(claims, None, algorithm="none"),  # no signature
        hmac_with_public_key(claims, idp.public_pem.read_bytes()),
        jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"),
        idp.token()[:-8] + "AAAAAAAA",  # signature tampered
        "a.b.c",
        "x" * 5000,
    ]
    for token in forged:
        response = call(app, token)
        assert response.status_code == 401, token[:40]  # type: ignore[attr-defined]
        assert response.json()["code"] == "invalid_token"  # type: ignore[attr-defined]
    assert call(app, idp.token()).status_code == 200  # type: ignore[attr-defined]


def test_roles_and_sub_decide_what_a_token_may_do(app: AuthApp, idp: Issuer) -> None:
    window = {"start_time": "1h", "end_time": "0s"}
    headers = {"Authorization": f"Bearer {idp.token(role='viewer', sub='carol')}"}
    assert app.client.get("/api/v1/costs", params=window, headers=headers).status_code == 200
    no_sub = {"Authorization": f"Bearer {idp.token(role='viewer', sub=None)}"}
    refused = app.client.get("/api/v1/costs", params=window, headers=no_sub)
    assert refused.status_code == 403
    assert "no user id" in refused.json()["detail"]
    for role in (None, "root", 7):
        response = call(app, idp.token(role=role))
        assert response.status_code == 403  # type: ignore[attr-defined]
        assert "traces:read is needed" in response.json()["detail"]  # type: ignore[attr-defined]


def test_a_custom_role_claim(tmp_path: Path, idp: Issuer) -> None:
    with auth_app(tmp_path, jwt_config(idp.public_pem, role_claim="pyflare_role")) as app:
        assert call(app, idp.token(role=None, pyflare_role="viewer")).status_code == 200  # type: ignore[attr-defined]
        assert call(app, idp.token(role="admin")).status_code == 403  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("key_file", "message"),
    [
        (None, "needs server.auth.jwt.public_key_path"),
        ("missing.pem", "cannot read"),
        ("garbage.pem", "not a PEM public key"),
        ("ec.pem", "needs an RSA public key"),
    ],
)
def test_bad_public_keys_stop_the_server_at_startup(
    tmp_path: Path, key_file: str | None, message: str
) -> None:
    from cryptography.hazmat.primitives import serialization

    (tmp_path / "garbage.pem").write_text("-----BEGIN PUBLIC KEY-----\nnope\n")
    (tmp_path / "ec.pem").write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    config = {"server": {"auth": {"jwt": {"enabled": True}}}}
    if key_file is not None:
        config["server"]["auth"]["jwt"]["public_key_path"] = str(tmp_path / key_file)
    store = DuckDBSpanStore(tmp_path / "s.duckdb")
    try:
        with pytest.raises(ConfigError, match=message):
            create_app(auth_settings(config), store=store)
    finally:
        store.close()
