"""The servers ``bench/ingest.py`` measures, run as subprocesses, and their meters.

* ``PyFlareServer``: ``pyflare server`` on a DuckDB file; ready when GET /health on
  its API port answers 200; persisted spans are counted in the file after it exits
  (DuckDB allows one writing process per file).
* ``PhoenixServer``: ``phoenix serve`` with its defaults (SQLite in
  ``PHOENIX_WORKING_DIR``); ready when GET /healthz answers 200; persisted spans
  are counted in its ``spans`` table, read-only, while it runs.
* ``TreeMonitor``: CPU seconds and resident memory of a process and its
  descendants, from ``/proc`` (Linux), RSS polled every 50 ms for the peak.

Arize Phoenix pins versions that clash with PyFlare's own (``sqlglot``,
``python-dateutil``), so it lives in a virtual environment of its own, made on
first use with ``pip install arize-phoenix`` under ``~/.cache/pyflare``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from sdk_overhead import _child_env

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env() -> tuple[dict[str, str], list[str]]:
    """The servers' environment: sdk_overhead's (no PYFLARE_*/OTEL_*, no proxies), no PHOENIX_*."""
    env, dropped = _child_env()
    phoenix = [key for key in env if key.startswith("PHOENIX_")]
    for key in phoenix:
        del env[key]
    return env, dropped + phoenix


# -- /proc meters ----------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from the state on (field 3), or None once it's gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


class TreeMonitor:
    """CPU seconds and peak RSS of a process tree, polled in a thread."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        if not Path("/proc/self/stat").exists():
            raise RuntimeError("the ingest bench reads /proc: it needs Linux")
        self.pid = pid
        self.interval = interval
        self.peak_rss = 0
        self._tree = [pid]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rescanned = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - rescanned > 1.0:  # new children are rare; scanning /proc isn't free
                self._tree, rescanned = _descendants(self.pid), now
            self.peak_rss = max(self.peak_rss, self.rss())
            self._stop.wait(self.interval)

    def rss(self) -> int:
        """Resident bytes of the tree now."""
        total = 0
        for pid in self._tree:
            if fields := _stat(pid):
                total += int(fields[21]) * PAGE_SIZE
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU of the tree so far, reaped children included."""
        total = 0
        for pid in _descendants(self.pid):
            if fields := _stat(pid):
                total += sum(int(value) for value in fields[11:15])
        return total / CLOCK_TICKS

    def high_water_rss(self) -> int:
        """The kernel's own peak RSS (VmHWM) of the root process."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> TreeMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


# -- servers ---------------------------------------------------------------------------------


class Server:
    """A server under test in a subprocess, its output in ``workdir/server.log``."""

    name = "server"

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "server.log"
        self.traces_url = ""
        self.ready_url = ""
        self.exit_code: int | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 120.0) -> float:
        """Start the server and wait until it's ready; return the seconds that took."""
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(), env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with status {self.process.returncode} before it was "
                    f"ready:\n{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(self.ready_url, timeout=2) as response,
            ):
                if response.status == 200:
                    return time.monotonic() - started
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM, wait for the exit (SIGKILL after ``timeout``); return the seconds taken."""
        started = time.monotonic()
        if self.process is None or self.process.poll() is not None:
            return 0.0
        self.process.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.exit_code = self.process.wait()
        return time.monotonic() - started

    def count(self) -> int:
        """Spans persisted in the server's store."""
        raise NotImplementedError

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


class PyFlareServer(Server):
    name = "pyflare server"

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        super().__init__(workdir, env)
        self.store_path = workdir / "pyflare.duckdb"
        self.http_port, self.grpc_port, self.api_port = free_port(), free_port(), free_port()
        self.traces_url = f"http://127.0.0.1:{self.http_port}/v1/traces"
        self.ready_url = f"http://127.0.0.1:{self.api_port}/health"

    def command(self) -> list[str]:
        # The console script next to this interpreter, so the bench measures this checkout.
        script = Path(sys.executable).with_name("pyflare")
        launcher = [str(script)] if script.exists() else [sys.executable, "-m", "pyflare.cli"]
        return [
            *launcher,
            "server",
            "--store",
            f"duckdb:///{self.store_path}",
            "--host",
            "127.0.0.1",
            "--otlp-http-port",
            str(self.http_port),
            "--otlp-grpc-port",
            str(self.grpc_port),
            "--api-port",
            str(self.api_port),
        ]

    def count(self) -> int:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("count PyFlare's store after the server has stopped")
        import duckdb

        with duckdb.connect(str(self.store_path), read_only=True) as connection:
            row = connection.execute("SELECT count(*) FROM traces").fetchone()
        return int(row[0]) if row else 0


def phoenix_python(venv: Path | None) -> tuple[Path, str]:
    """Python of a virtual environment with arize-phoenix (made on first use), its version."""
    if venv is None:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        venv = cache / "pyflare" / "bench-phoenix-venv"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "phoenix").exists():
        print(f"(installing arize-phoenix into {venv}: once, about a minute)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "arize-phoenix"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('arize-phoenix'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return python, version.stdout.strip()


class PhoenixServer(Server):
    name = "phoenix serve"

    def __init__(self, workdir: Path, env: dict[str, str], python: Path) -> None:
        port, grpc_port = free_port(), free_port()
        env = {
            **env,
            "PHOENIX_WORKING_DIR": str(workdir),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(grpc_port),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        super().__init__(workdir, env)
        self.python = python
        self.db_path = workdir / "phoenix.db"
        self.traces_url = f"http://127.0.0.1:{port}/v1/traces"
        self.ready_url = f"http://127.0.0.1:{port}/healthz"

    def command(self) -> list[str]:
        return [str(self.python.with_name("phoenix")), "serve"]

    def count(self) -> int:
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            row = connection.execute("SELECT count(*) FROM spans").fetchone()
        finally:
            connection.close()
        return int(row[0]) if row else 0
