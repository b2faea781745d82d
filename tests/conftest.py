"""Shared fixtures.

``pyflare.init()`` installs OpenTelemetry's one global ``TracerProvider`` and
other process-wide state, so tests that call it run the code in a child
Python process (``run_python``) and look at its output and store afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

CHILD_TIMEOUT_S = 60


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without PyFlare's or OpenTelemetry's settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYFLARE_", "OTEL_"))}
    env.update(extra or {})
    return env


class PythonRunner:
    """Runs Python source in a fresh interpreter with the test's tmp_path as cwd."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(
        self,
        code: str,
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = CHILD_TIMEOUT_S,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``code`` to completion; with ``check``, fail the test unless it exits 0."""
        return self._run(["-c", textwrap.dedent(code)], env, timeout, check)

    def script(
        self,
        path: Path,
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = CHILD_TIMEOUT_S,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run the script at ``path`` as ``python path``."""
        return self._run([str(path)], env, timeout, check)

    def _run(
        self, argv: list[str], env: Mapping[str, str] | None, timeout: float, check: bool
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, *argv],
            cwd=self.cwd,
            env=child_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"child exited {result.returncode}\n--- stdout\n{result.stdout}"
                f"\n--- stderr\n{result.stderr}"
            )
        return result

    @staticmethod
    def result(output: str) -> Any:
        """What the child printed as ``print("RESULT", json.dumps(value))`` (the last one)."""
        lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
        assert lines, f"the child printed no RESULT line:\n{output}"
        return json.loads(lines[-1].removeprefix("RESULT "))

    def start(self, code: str, *, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ``code`` in the background, stdin/stdout/stderr piped."""
        return subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            cwd=self.cwd,
            env=child_env(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def run_python(tmp_path: Path) -> PythonRunner:
    return PythonRunner(tmp_path)
