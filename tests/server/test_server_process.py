"""`pyflare server` as a process: startup errors, and SIGTERM drains what was accepted."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from _otlp import trace_request

from pyflare.store.duckdb import DuckDBSpanStore

READY = re.compile(
    r"OTLP/HTTP http://(?P<http>\S+), OTLP/gRPC (?P<grpc>\S+), API http://(?P<api>\S+) "
)


class Pyflare:
    """``pyflare ARGS`` in a child process, its stderr going to a file."""

    def __init__(self, *args: str, cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYFLARE_"))}
        self.log = cwd / f"stderr-{time.monotonic_ns()}.txt"
        with self.log.open("w") as sink, (cwd / f"{args[0]}-stdout.txt").open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pyflare.cli", *args],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=sink,
            )

    @property
    def stderr(self) -> str:
        return self.log.read_text()

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        return code, self.stderr

    def wait_ready(self) -> re.Match[str]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            found = READY.search(self.stderr)
            if found:
                return found
            time.sleep(0.05)
        self.process.kill()
        self.process.wait()
        raise AssertionError("the server never said it was ready:\n" + self.stderr)


SERVER_ARGS = (
    "server",
    "--host",
    "127.0.0.1",
    "--otlp-http-port",
    "0",
    "--otlp-grpc-port",
    "0",
    "--api-port",
    "0",
)


def test_sigterm_drains_every_accepted_request(tmp_path: Path) -> None:
    store = tmp_path / "drain.duckdb"
    server = Pyflare(*SERVER_ARGS, "--store", f"duckdb:///{store}", cwd=tmp_path)
    ready = server.wait_ready()
    url = f"http://{ready['http']}/v1/traces"
    accepted: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                request, trace_ids = trace_request(traces=10, spans_per_trace=10)
                try:
                    response = http.post(
                        url,
                        content=request.SerializeToString(),
                        headers={"Content-Type": "application/x-protobuf"},
                    )
                except httpx.TransportError:
                    return  # the server has stopped listening
                if response.status_code == 200:
                    with lock:
                        accepted.extend(trace_ids)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    server.process.send_signal(signal.SIGTERM)
    try:
        code, stderr = server.finish()
        assert code == 0, stderr
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert len(accepted) >= 50, "too little traffic was accepted to test the drain"
    reader = DuckDBSpanStore(store, read_only=True)
    try:
        counted = reader.sql(
            "SELECT count(DISTINCT trace_id) AS n FROM traces WHERE list_contains(?, trace_id)",
            [accepted],
        )
        assert counted.column("n")[0].as_py() == len(accepted)  # every 200 is stored
    finally:
        reader.close()


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [*SERVER_ARGS]
        args[args.index("--api-port") + 1] = str(port)
        code, stderr = Pyflare(
            *args, "--store", f"duckdb:///{tmp_path / 's.duckdb'}", cwd=tmp_path
        ).finish()
    assert code == 1
    assert f"cannot listen for the API on 127.0.0.1:{port}" in stderr
    assert "--api-port" in stderr
    assert "Traceback" not in stderr


def test_a_bad_config_file_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("collector:\n  batcher:\n    max_batch_size: -5\n")
    code, stderr = Pyflare("server", "--config", str(config), cwd=tmp_path).finish()
    assert code == 1
    assert "collector.batcher.max_batch_size" in stderr
    assert "Traceback" not in stderr


def test_the_store_locked_by_another_process(tmp_path: Path) -> None:
    store = tmp_path / "locked.duckdb"
    holder = DuckDBSpanStore(store)
    try:
        code, stderr = Pyflare(*SERVER_ARGS, "--store", f"duckdb:///{store}", cwd=tmp_path).finish()
    finally:
        holder.close()
    assert code == 1
    assert "locked by another process" in stderr
    assert "Traceback" not in stderr


def test_demo_populates_a_store_and_stops(tmp_path: Path) -> None:
    ports = ("--otlp-http-port", "0", "--otlp-grpc-port", "0", "--api-port", "0")
    demo = Pyflare("demo", "--history", "0.5", "--duration", "1", *ports, cwd=tmp_path)
    code, _ = demo.finish(timeout=120)
    output = (tmp_path / "demo-stdout.txt").read_text()
    assert code == 0, output + demo.stderr
    assert "traces stored" in output
    assert "Demo stopped; everything sent is stored." in output
    sent = int(re.search(r"Sent (\d+) traces", output)[1])  # type: ignore[index]
    store = DuckDBSpanStore(tmp_path / ".pyflare" / "demo.duckdb", read_only=True)
    try:
        summary = store.sql(
            "SELECT count(DISTINCT trace_id) AS traces, count(DISTINCT service_name) AS services,"
            " count(*) FILTER (WHERE input_tokens > 0) AS with_tokens,"
            " count(*) FILTER (WHERE status_code = 'error') AS errors FROM traces"
        ).to_pylist()[0]
    finally:
        store.close()
    assert summary["traces"] > sent >= 400  # the history, then live traffic
    assert summary["services"] >= 3
    assert summary["with_tokens"] > 0
    assert summary["errors"] > 0


def test_ctrl_c_stops_the_demo_promptly(tmp_path: Path) -> None:
    ports = ("--otlp-http-port", "0", "--otlp-grpc-port", "0", "--api-port", "0")
    demo = Pyflare("demo", "--history", "0.2", *ports, cwd=tmp_path)
    output = tmp_path / "demo-stdout.txt"
    deadline = time.monotonic() + 60
    while "Live traffic continues" not in output.read_text():
        assert demo.process.poll() is None, demo.stderr
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.1)
    time.sleep(1)
    demo.process.send_signal(signal.SIGINT)
    started = time.monotonic()
    code, stderr = demo.finish(timeout=30)
    assert code == 0, stderr
    assert time.monotonic() - started < 8
    assert "Demo stopped; everything sent is stored." in output.read_text()
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--otlp-http-port", "99999"), "--otlp-http-port=99999 is not valid"),
        (("--store", "mysql://db/x"), "server.store: expected duckdb:///"),
        (("--config", "missing.yaml"), "missing.yaml"),
    ],
)
def test_bad_flags_are_named(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, stderr = Pyflare("server", *args, cwd=tmp_path).finish()
    assert code == 1
    assert message in stderr
    assert "Traceback" not in stderr
