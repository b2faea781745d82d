"""Auth off only where nobody else can connect: loopback by default, --insecure otherwise."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _auth import settings as exposed_settings

from pyflare import cli
from pyflare.errors import ConfigError
from pyflare_server.auth.exposure import (
    auth_enabled,
    check_exposure,
    exposed_hosts,
    is_loopback,
    with_insecure,
)
from pyflare_server.server import serve
from pyflare_server.settings import ServerSettings


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("pyflare.internal", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def local(**auth: object) -> ServerSettings:
    settings = ServerSettings.load(env={}, overrides={"host": "127.0.0.1"})
    if auth:
        section = settings.server.auth.model_copy(update=auth)
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update={"auth": section})}
        )
    return settings


def test_auth_defaults_to_on_exactly_when_a_listener_is_exposed() -> None:
    assert auth_enabled(local()) is False
    assert exposed_hosts(local()) == []
    assert auth_enabled(exposed_settings()) is True
    assert exposed_hosts(exposed_settings()) == ["0.0.0.0"]
    # One exposed listener is enough.
    api_only = ServerSettings.load(
        env={
            "PYFLARE_COLLECTOR__OTLP__HTTP__ENDPOINT": "127.0.0.1:4318",
            "PYFLARE_COLLECTOR__OTLP__GRPC__ENDPOINT": "127.0.0.1:4317",
        }
    )
    assert exposed_hosts(api_only) == ["0.0.0.0"]
    assert auth_enabled(api_only) is True
    assert auth_enabled(local(enabled=True)) is True


def test_auth_off_on_an_exposed_address_needs_insecure() -> None:
    off = exposed_settings({"server": {"auth": {"enabled": False}}})
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0 with auth off"):
        check_exposure(off)
    check_exposure(off, insecure=True)
    check_exposure(with_insecure(off))
    check_exposure(exposed_settings())  # auth on: fine
    check_exposure(local(enabled=False))  # loopback: fine


def test_serve_refuses_before_listening(tmp_path: Path) -> None:
    off = exposed_settings(
        {"server": {"auth": {"enabled": False}, "store": f"duckdb:///{tmp_path / 's.duckdb'}"}}
    )
    with pytest.raises(ConfigError, match="--insecure"):
        asyncio.run(serve(off))
    assert not (tmp_path / "s.duckdb").exists()  # nothing was opened


def test_pyflare_server_refuses_and_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYFLARE_SERVER__AUTH__ENABLED", "false")
    store = f"duckdb:///{tmp_path / 's.duckdb'}"
    assert cli.main(["server", "--host", "0.0.0.0", "--store", store]) == 1
    error = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0 with auth off" in error
    assert "--insecure" in error
    assert "--host 127.0.0.1" in error


def test_the_insecure_flag_reaches_the_settings() -> None:
    from pyflare_server.cli import _load

    parser = cli.build_parser()
    args = parser.parse_args(["server", "--host", "0.0.0.0", "--insecure"])
    assert _load(args).server.auth.insecure is True
    args = parser.parse_args(["server", "--host", "0.0.0.0"])
    assert _load(args).server.auth.insecure is False
