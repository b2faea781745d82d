"""The ``pyflare`` command, run as users run it: the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyflare
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare.testing import capture_spans

PYFLARE = shutil.which("pyflare", path=str(Path(sys.executable).parent)) or shutil.which("pyflare")


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYFLARE_", "OTEL_"))}
    env["COLUMNS"] = "200"  # rich wraps tables to the terminal, 80 columns in a pipe
    return {**env, **(extra or {})}


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert PYFLARE is not None, "the pyflare console script is not installed"
    return subprocess.run(
        [PYFLARE, *args],
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A store with an ok trace and a failed one; returns its path and trace ids by outcome."""
    path = tmp_path_factory.mktemp("cli") / "cli.duckdb"

    @pyflare.trace(name="generate", kind="llm", model_id="gpt-4o-mini")
    def generate(question: str) -> str:
        if "refund" in question:
            raise TimeoutError("upstream model timed out")
        pyflare.record_usage(input_tokens=40, output_tokens=25)
        return "sure"

    @pyflare.trace(name="answer", kind="chain")
    def answer(question: str) -> str:
        return generate(question)

    with capture_spans(sequential_ids=False) as captured:
        answer("how are you?")
        with pytest.raises(TimeoutError):
            answer("where is my refund?")
    with DuckDBSpanStore(path) as store:
        store.write(captured.batch())
    ids: dict[str, str] = {}
    for row in captured.rows():
        if row["operation_name"] == "generate":
            ids[row["status_code"]] = row["trace_id"]
    return path, ids


def test_traces_lists_and_filters(filled: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    path, ids = filled
    listed = run_cli("traces", "--store", f"duckdb:///{path}", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "2 traces" in listed.stdout
    assert ids["unset"][:8] in listed.stdout
    assert ids["error"][:8] in listed.stdout
    assert "answer" in listed.stdout

    errors = run_cli("traces", "--status", "error", "--store", str(path), cwd=tmp_path)
    assert errors.returncode == 0, errors.stderr
    assert "1 trace" in errors.stdout
    assert ids["error"][:8] in errors.stdout
    assert ids["unset"][:8] not in errors.stdout

    # The store can also come from the environment.
    from_env = run_cli("traces", cwd=tmp_path, env={"PYFLARE_STORE": str(path)})
    assert from_env.returncode == 0, from_env.stderr
    assert "2 traces" in from_env.stdout


def test_one_trace_as_a_tree(filled: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    path, ids = filled
    shown = run_cli("traces", ids["error"], "--store", str(path), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"Trace {ids['error'][:16]}" in shown.stdout
    lines = shown.stdout.splitlines()
    answer = next(i for i, line in enumerate(lines) if "answer" in line)
    generate = next(i for i, line in enumerate(lines) if "generate" in line)
    assert answer < generate
    assert "TimeoutError: upstream model timed out" in shown.stdout

    missing = run_cli("traces", "0" * 32, "--store", str(path), cwd=tmp_path)
    assert missing.returncode == 1
    assert f"no trace {'0' * 32}" in missing.stdout

    short = run_cli("traces", ids["error"][:8], "--store", str(path), cwd=tmp_path)
    assert short.returncode == 0, short.stderr
    assert f"Trace {ids['error'][:16]}" in short.stdout

    bad = run_cli("traces", "not-a-trace-id", "--store", str(path), cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.startswith("pyflare: trace_id must be 32 hex characters")


def test_sql_formats_and_read_only(filled: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    path, _ = filled
    query = "SELECT count(*) AS n, sum(total_tokens) AS tokens FROM traces"
    as_json = run_cli("sql", query, "--format", "json", "--store", str(path), cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [{"n": 4, "tokens": 65}]

    as_csv = run_cli("sql", query, "--format", "csv", "--store", str(path), cwd=tmp_path)
    assert as_csv.stdout.splitlines() == ["n,tokens", "4,65"]

    dropped = run_cli("sql", "DROP TABLE traces", "--store", str(path), cwd=tmp_path)
    assert dropped.returncode == 1
    assert dropped.stdout == ""
    assert dropped.stderr.startswith("pyflare: ")
    assert "SELECT" in dropped.stderr
    assert "Traceback" not in dropped.stderr
    with DuckDBSpanStore(path, read_only=True) as store:
        assert store.sql("SELECT count(*) AS n FROM traces").column("n").to_pylist() == [4]


def test_no_store_says_so(tmp_path: Path) -> None:
    result = run_cli("traces", cwd=tmp_path)
    assert result.returncode == 1
    assert "there is no PyFlare store at .pyflare/pyflare.duckdb" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".pyflare").exists()  # reading never creates a store


def test_version_server_and_help(tmp_path: Path) -> None:
    version = run_cli("version", cwd=tmp_path)
    assert version.returncode == 0
    assert version.stdout.startswith(f"pyflare {pyflare.__version__}\n")
    assert "opentelemetry-sdk 1." in version.stdout
    assert "duckdb " in version.stdout

    worker = run_cli("worker", cwd=tmp_path)  # no brokers configured
    assert worker.returncode == 1
    assert "collector.kafka.brokers" in worker.stderr
    assert "Traceback" not in worker.stderr

    bare = run_cli(cwd=tmp_path)
    assert bare.returncode == 2
    assert "traces" in bare.stdout
