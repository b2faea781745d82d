"""``pyflare keys create|list|revoke`` against a real store, and the keys it makes at work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _auth import settings as exposed_settings
from starlette.testclient import TestClient

from pyflare import cli
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.app import create_app


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"duckdb:///{tmp_path / 'server.duckdb'}"
    code, out, err = run(
        capsys,
        "keys",
        "create",
        "--role",
        "viewer",
        "--name",
        "grafana",
        "--user-id",
        "bob",
        "--expires",
        "30d",
        "--store",
        store,
    )
    assert code == 0
    key = out.strip()
    assert key.startswith("pf_") and "\n" not in key  # the key alone on stdout
    assert "only its hash" in err
    key_id = key.split("_")[1]
    code, out, _ = run(capsys, "keys", "list", "--store", store)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["KEY_ID", "NAME", "ROLE", "USER", "CREATED", "EXPIRES", "STATUS"]
    assert key_id in lines[1] and "grafana" in lines[1] and "active" in lines[1]
    assert key not in out
    code, out, err = run(capsys, "keys", "revoke", key_id, "--store", store)
    assert (code, out) == (0, "")
    assert f"revoked the API key {key_id}" in err
    assert run(capsys, "keys", "list", "--store", store)[1].count("\n") == 1  # header only
    code, out, _ = run(capsys, "keys", "list", "--all", "--format", "json", "--store", store)
    [listed] = json.loads(out)
    assert listed["key_id"] == key_id
    assert listed["status"] == "revoked"
    assert "key_hash" in listed and key not in out
    code, _, err = run(capsys, "keys", "revoke", key_id, "--store", store)
    assert code == 1 and "already revoked" in err
    code, _, err = run(capsys, "keys", "revoke", "nosuchkey", "--store", store)
    assert code == 1 and "does not exist" in err


def test_a_key_from_the_command_opens_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "server.duckdb"
    code, out, _ = run(
        capsys, "keys", "create", "--role", "developer", "--store", f"duckdb:///{path}"
    )
    assert code == 0
    key = out.strip()
    with (
        DuckDBSpanStore(path) as store,
        TestClient(create_app(exposed_settings(), store=store)) as client,
    ):
        assert client.get("/api/v1/traces").status_code == 401
        assert client.get("/api/v1/traces", headers={"X-API-Key": key}).status_code == 200


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--role", "admin", "--expires", "soon"], "expected a duration"),
        (["--role", "admin", "--expires", "0h"], "expected a duration"),
        (["--role", "admin", "--name", " "], "--name must not be empty"),
        (["--role", "admin", "--user-id", ""], "--user-id must not be empty"),
    ],
)
def test_bad_create_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    store = f"duckdb:///{tmp_path / 'server.duckdb'}"
    code, out, err = run(capsys, "keys", "create", *argv, "--store", store)
    assert code == 1
    assert out == ""
    assert message in err


def test_unknown_roles_and_missing_actions_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as bad_role:
        cli.main(["keys", "create", "--role", "root"])
    assert bad_role.value.code == 2
    assert "invalid choice: 'root'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as no_action:
        cli.main(["keys"])
    assert no_action.value.code == 2


def test_a_store_held_by_a_running_server_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "server.duckdb"
    DuckDBSpanStore(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pyflare.store.duckdb import DuckDBSpanStore; "
            f"s = DuckDBSpanStore({str(path)!r}); print('open', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        code, out, err = run(
            capsys, "keys", "create", "--role", "admin", "--store", f"duckdb:///{path}"
        )
        assert code == 1
        assert out == ""
        assert "stop `pyflare server` to manage its keys" in err
    finally:
        os.kill(holder.pid, signal.SIGTERM)
        holder.communicate(timeout=10)  # waits, and closes the pipes
    # Nothing was half-made: the store has no keys.
    with DuckDBSpanStore(path) as store:
        assert store.api_keys(include_revoked=True) == []
