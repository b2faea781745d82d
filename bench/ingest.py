"""PyFlare server's OTLP ingest, measured side by side with Arize Phoenix in one run.

    python bench/ingest.py                  # default sizes, about 2 minutes
    python bench/ingest.py --spans 500000 --phoenix-spans 20000
    python bench/ingest.py --only pyflare,json

The same generated load (``_otlp_load.py``: OTLP/HTTP protobuf, OpenInference-style
LLM spans, 10 spans a trace, 100 spans a request, ``--clients`` keep-alive
connections from a separate process) goes to ``pyflare server`` on a DuckDB file
and to ``phoenix serve`` with its default SQLite, one after the other, each a
fresh subprocess with a fresh store. Measured per server: persisted spans/s
(spans found in the store afterwards, over the time from the first request to the
last span persisted), server CPU seconds per 10k spans and peak RSS (its process
tree, from /proc), request latency. Then PyFlare's OTLP/JSON path against its
protobuf path, in interleaved blocks on one server.

See bench/README.md for what exactly is compared and how to read the output.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _ingest_servers import (
    PhoenixServer,
    PyFlareServer,
    Server,
    TreeMonitor,
    child_env,
    phoenix_python,
)
from sdk_overhead import _environment as _sdk_environment
from sdk_overhead import _table, _verdict

HERE = Path(__file__).resolve().parent
SPANS_PER_REQUEST = 100

TARGET_PYFLARE_RATE = 40_000  # persisted spans/s, one server process
TARGET_RATE_VS_PHOENIX = 100.0  # x Phoenix's persisted spans/s
TARGET_CPU_VS_PHOENIX = 100.0  # x Phoenix's spans per CPU-second
TARGET_RSS_VS_PHOENIX = 0.7  # at most 0.7x Phoenix's peak RSS
TARGET_JSON_VS_PROTOBUF = 0.6  # JSON path at least 0.6x the protobuf path


def _requests(spans: int) -> int:
    return max(1, -(-spans // SPANS_PER_REQUEST))


def _send(
    url: str, encoding: str, requests: int, first_index: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Run the load generator in its own process; its result."""
    command = [
        sys.executable,
        str(HERE / "_otlp_load.py"),
        *("--url", url, "--encoding", encoding),
        *("--requests", str(requests), "--first-index", str(first_index)),
        *("--clients", str(args.clients), "--templates", str(args.templates)),
        *("--seed", str(args.seed)),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)
    lines = completed.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    if completed.returncode != 0 or not result or result["errors"]:
        raise RuntimeError(
            f"load generator failed (exit {completed.returncode}): "
            f"{result.get('errors') or completed.stderr[-2000:]}"
        )
    return result


def _accepted(result: dict[str, Any]) -> int:
    return int(result["spans_ok"]) - int(result["rejected_spans"])


def _wait_persisted(
    server: Server, monitor: TreeMonitor, expected: int, stall_s: float, interval: float = 0.25
) -> tuple[int, float, float]:
    """Poll the store until ``expected`` spans are in, or the count stops growing.

    Returns the final count, when it was first seen and the server's CPU seconds then.
    """
    count, seen, cpu = -1, time.monotonic(), monitor.cpu_seconds()
    while True:
        now = time.monotonic()
        current = server.count()
        if current != count:
            count, seen, cpu = current, now, monitor.cpu_seconds()
        if count >= expected or now - seen > stall_s:
            return count, seen, cpu
        time.sleep(interval)


def _run_figures(
    result: dict[str, Any], persisted: int, duration: float, cpu: float
) -> dict[str, Any]:
    return {
        "spans_accepted": _accepted(result),
        "spans_persisted": persisted,
        "seconds": duration,
        "persisted_per_s": persisted / duration if duration > 0 else 0.0,
        "server_cpu_s": cpu,
        "cpu_s_per_10k": cpu / persisted * 10_000 if persisted else float("nan"),
        "spans_per_cpu_s": persisted / cpu if cpu > 0 else float("nan"),
        "latency_ms": {key: value * 1000 for key, value in result["latency_s"].items()},
        "statuses": result["statuses"],
        "retries": result["retries"],
        "client_cpu_s": result["client_cpu_s"],
        "request_mb": result["bytes"] / max(1, result["spans_ok"] // SPANS_PER_REQUEST) / 1e6,
    }


def run_pyflare(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    server = PyFlareServer(workdir, env)
    startup = server.start()
    loads: list[dict[str, Any]] = []
    blocks: list[dict[str, Any]] = []
    index = 0
    main: dict[str, Any] = {}
    try:
        assert server.process is not None
        with TreeMonitor(server.process.pid) as monitor:
            warmup = _send(server.traces_url, "protobuf", _requests(args.warmup_spans), index, args)
            loads.append(warmup)
            index += warmup["requests"]
            if "pyflare" in args.only:
                cpu0 = monitor.cpu_seconds()
                main = _send(server.traces_url, "protobuf", _requests(args.spans), index, args)
                cpu1 = monitor.cpu_seconds()
                loads.append(main)
                index += main["requests"]
                main["cpu_s"] = cpu1 - cpu0
                main["peak_rss"] = max(monitor.peak_rss, monitor.high_water_rss())
            if "json" in args.only:
                for number in range(args.rounds):
                    order = ("protobuf", "json") if number % 2 == 0 else ("json", "protobuf")
                    for encoding in order:
                        cpu0 = monitor.cpu_seconds()
                        block = _send(
                            server.traces_url, encoding, _requests(args.json_spans), index, args
                        )
                        block["cpu_s"] = monitor.cpu_seconds() - cpu0
                        block["round"] = number
                        loads.append(block)
                        blocks.append(block)
                        index += block["requests"]
            peak_rss = max(monitor.peak_rss, monitor.high_water_rss())
    finally:
        stop_s = server.stop()
    persisted = server.count()
    accepted = sum(_accepted(load) for load in loads)
    missing = max(0, accepted - persisted)
    out: dict[str, Any] = {
        "startup_s": startup,
        "stop_s": stop_s,
        "exit_code": server.exit_code,
        "spans_accepted_total": accepted,
        "spans_persisted_total": persisted,
        "peak_rss_total": peak_rss,
        "blocks": [],
    }
    if main:
        # A 200 from PyFlare means stored: the run ends with the last answer. Spans
        # missing from the store at the end are charged to this run.
        duration = main["last_ok"] - main["first_send"]
        figures = _run_figures(main, _accepted(main) - missing, duration, main["cpu_s"])
        out["run"] = {**figures, "peak_rss": max(main["peak_rss"], 1)}
    for block in blocks:
        duration = block["last_ok"] - block["first_send"]
        out["blocks"].append(
            {
                "round": block["round"],
                **_run_figures(block, _accepted(block), duration, block["cpu_s"]),
            }
            | {"encoding": block["encoding"]}
        )
    if args.keep:
        out["workdir"] = str(workdir)
    return out


def run_phoenix(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    python, version = phoenix_python(args.phoenix_venv)
    server = PhoenixServer(workdir, env, python)
    startup = server.start(timeout=180)
    try:
        assert server.process is not None
        with TreeMonitor(server.process.pid) as monitor:
            baseline = server.count()
            warmup = _send(server.traces_url, "protobuf", _requests(args.warmup_spans), 0, args)
            _wait_persisted(server, monitor, baseline + _accepted(warmup), args.stall_s)
            before = server.count()
            cpu0 = monitor.cpu_seconds()
            main = _send(
                server.traces_url,
                "protobuf",
                _requests(args.phoenix_spans),
                warmup["requests"],
                args,
            )
            # Phoenix answers 200 before it writes: spans go to a queue that a background
            # task inserts, so the run ends when the count in SQLite stops growing.
            count, seen, cpu1 = _wait_persisted(
                server, monitor, before + _accepted(main), args.stall_s
            )
            peak_rss = max(monitor.peak_rss, monitor.high_water_rss())
    finally:
        stop_s = server.stop()
    persisted = count - before
    figures = _run_figures(main, persisted, seen - main["first_send"], cpu1 - cpu0)
    return {
        "version": version,
        "startup_s": startup,
        "stop_s": stop_s,
        "exit_code": server.exit_code,
        "spans_persisted_after_stop": server.count() - before,
        "run": {**figures, "peak_rss": peak_rss},
        **({"workdir": str(workdir)} if args.keep else {}),
    }


# -- report ----------------------------------------------------------------------------------


def report(results: dict[str, Any], args: argparse.Namespace) -> list[list[str]]:
    targets: list[list[str]] = []
    pyflare = results.get("pyflare", {}).get("run")
    phoenix = results.get("phoenix", {}).get("run")
    if pyflare or phoenix:
        print(
            f"\nPersisted OTLP/HTTP protobuf load ({args.clients} clients, 100 spans a request, "
            "10 spans a trace); Phoenix's spans/s counts until its queue is written"
        )
        rows = []
        metrics = (
            ("persisted spans/s", "persisted_per_s", "{:,.0f}", True),
            ("spans per server CPU-second", "spans_per_cpu_s", "{:,.0f}", True),
            ("server CPU-s per 10k spans", "cpu_s_per_10k", "{:.3f}", False),
            ("peak RSS, MiB", "peak_rss", "{:,.0f}", False),
            ("request latency p50, ms", "p50", "{:.1f}", False),
            ("request latency p99, ms", "p99", "{:.1f}", False),
        )
        for label, key, fmt, higher in metrics:

            def value(run: dict[str, Any] | None, key: str = key) -> float | None:
                if not run:
                    return None
                if key in ("p50", "p99"):
                    return float(run["latency_ms"][key])
                return float(run[key]) / (2**20 if key == "peak_rss" else 1)

            a, b = value(pyflare), value(phoenix)
            ratio = ""
            if a is not None and b:
                ratio = f"{(a / b if higher else b / a):,.1f}x" if a else "-"
            rows.append(
                [
                    label,
                    fmt.format(a) if a is not None else "-",
                    fmt.format(b) if b is not None else "-",
                    ratio,
                ]
            )
        for name, run in (("PyFlare", pyflare), ("Phoenix", phoenix)):
            if run:
                print(
                    f"    {name}: {run['spans_persisted']:,} of {run['spans_accepted']:,} accepted "
                    f"spans persisted in {run['seconds']:.2f} s; HTTP {run['statuses']}, "
                    f"{run['retries']} retries; load generator CPU {run['client_cpu_s']:.1f} s"
                )
        _table(["", "PyFlare (DuckDB)", "Phoenix (SQLite)", "PyFlare better by"], rows)
    if pyflare:
        targets.append(
            [
                "PyFlare persisted spans/s, one server process",
                f"{pyflare['persisted_per_s']:,.0f}",
                f">= {TARGET_PYFLARE_RATE:,}",
                _verdict(pyflare["persisted_per_s"] >= TARGET_PYFLARE_RATE),
            ]
        )
    if pyflare and phoenix:
        for label, key, goal in (
            ("persisted spans/s, PyFlare / Phoenix", "persisted_per_s", TARGET_RATE_VS_PHOENIX),
            ("spans per CPU-second, PyFlare / Phoenix", "spans_per_cpu_s", TARGET_CPU_VS_PHOENIX),
        ):
            ratio = pyflare[key] / phoenix[key]
            targets.append([label, f"{ratio:,.1f}x", f">= {goal:g}x", _verdict(ratio >= goal)])
        ratio = pyflare["peak_rss"] / phoenix["peak_rss"]
        targets.append(
            [
                "peak RSS, PyFlare / Phoenix",
                f"{ratio:.2f}x",
                f"<= {TARGET_RSS_VS_PHOENIX}x",
                _verdict(ratio <= TARGET_RSS_VS_PHOENIX),
            ]
        )
    blocks = results.get("pyflare", {}).get("blocks", [])
    if blocks:
        print(
            f"\nPyFlare OTLP/JSON against OTLP/protobuf: {args.rounds} rounds of "
            f"{_requests(args.json_spans) * SPANS_PER_REQUEST:,} spans each way, one server, "
            "order alternating"
        )
        rows, ratios = [], []
        for number in range(args.rounds):
            by = {b["encoding"]: b for b in blocks if b["round"] == number}
            proto, js = by["protobuf"], by["json"]
            ratios.append(js["persisted_per_s"] / proto["persisted_per_s"])
            rows.append(
                [
                    str(number + 1),
                    f"{proto['persisted_per_s']:,.0f}",
                    f"{js['persisted_per_s']:,.0f}",
                    f"{ratios[-1]:.2f}x",
                    f"{proto['cpu_s_per_10k']:.3f}",
                    f"{js['cpu_s_per_10k']:.3f}",
                    f"{proto['latency_ms']['p99']:.1f} / {js['latency_ms']['p99']:.1f}",
                    f"{proto['request_mb']:.2f} / {js['request_mb']:.2f}",
                ]
            )
        _table(
            [
                "round",
                "protobuf spans/s",
                "JSON spans/s",
                "JSON/protobuf",
                "CPU-s/10k pb",
                "CPU-s/10k JSON",
                "p99 ms pb / JSON",
                "MB/request pb / JSON",
            ],
            rows,
        )
        median = statistics.median(ratios)
        targets.append(
            [
                "PyFlare JSON / protobuf spans/s (median of rounds)",
                f"{median:.2f}x",
                f">= {TARGET_JSON_VS_PROTOBUF}x",
                _verdict(median >= TARGET_JSON_VS_PROTOBUF),
            ]
        )
    for name in ("pyflare", "phoenix"):
        if name not in results:
            continue
        result = results[name]
        if name == "pyflare":
            accepted, persisted = result["spans_accepted_total"], result["spans_persisted_total"]
        else:
            accepted, persisted = result["run"]["spans_accepted"], result["run"]["spans_persisted"]
        targets.append(
            [
                f"{name}: every accepted span persisted",
                f"{persisted:,} / {accepted:,}",
                "all",
                _verdict(persisted == accepted),
            ]
        )
    return targets


def _environment(phoenix_version: str | None) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    info = _sdk_environment()
    versions = info["versions"]
    for package in ("langfuse", "wrapt"):
        versions.pop(package, None)
    for package in ("uvicorn", "opentelemetry-proto"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "missing"
    if phoenix_version:
        versions["arize-phoenix"] = phoenix_version
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=200_000, help="PyFlare protobuf run")
    parser.add_argument("--phoenix-spans", type=int, default=10_000, help="Phoenix run")
    parser.add_argument(
        "--json-spans", type=int, default=20_000, help="each JSON/protobuf comparison block"
    )
    parser.add_argument("--rounds", type=int, default=3, help="JSON/protobuf rounds")
    parser.add_argument("--warmup-spans", type=int, default=1_000, help="before each run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument("--templates", type=int, default=16, help="distinct request contents")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--stall-s", type=float, default=15.0, help="Phoenix: give up when its count stalls"
    )
    parser.add_argument(
        "--only", default="pyflare,json,phoenix", help="subset of: pyflare, json, phoenix"
    )
    parser.add_argument(
        "--phoenix-venv",
        type=Path,
        help="virtualenv with arize-phoenix (default ~/.cache/pyflare/bench-phoenix-venv, "
        "made on first use)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the servers' stores and logs")
    parser.add_argument("--no-json", action="store_true", help="don't write bench/results/*.json")
    args = parser.parse_args(argv)
    args.only = set(args.only.split(","))
    unknown = args.only - {"pyflare", "json", "phoenix"}
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}")
    env, dropped = child_env()
    workroot = Path(tempfile.mkdtemp(prefix="pyflare-ingest-bench-"))
    started = time.perf_counter()
    results: dict[str, Any] = {}
    failed: list[str] = []
    phoenix_version = None
    if "phoenix" in args.only:
        phoenix_version = phoenix_python(args.phoenix_venv)[1]
    info = _environment(phoenix_version)
    results["environment"] = info
    print(
        f"PyFlare ingest bench at {info['commit']} (+{info['src_files_changed']} changed files "
        f"under src/): Python {info['python']}, {info['cpus']} CPUs; "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    )
    if dropped:
        print(f"(ignoring these settings from the environment: {', '.join(sorted(dropped))})")
    runs = []
    if args.only & {"pyflare", "json"}:
        runs.append(("pyflare", run_pyflare))
    if "phoenix" in args.only:
        runs.append(("phoenix", run_phoenix))
    for name, run in runs:
        print(f"[{name}] running ...", flush=True)
        try:
            results[name] = run(args, env, workroot / name)
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
            failed.append(name)
            print(f"[{name}] FAILED: {exc}")
            continue
        result = results[name]
        print(
            f"[{name}] started in {result['startup_s']:.1f} s, stopped (SIGTERM) in "
            f"{result['stop_s']:.1f} s with exit status {result['exit_code']}"
        )
    targets = report(results, args)
    for name in failed:
        targets.append([f"{name}: the measurement failed", "-", "-", "ERROR"])
    print("\nTargets")
    _table(["target", "measured", "goal", "verdict"], targets)
    results["targets"] = targets
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    if not args.keep:
        shutil.rmtree(workroot, ignore_errors=True)
    if not args.no_json:
        out = HERE / "results"
        out.mkdir(exist_ok=True)
        path = out / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}.json"
        results["arguments"] = {
            key: sorted(value) if isinstance(value, set) else value
            for key, value in vars(args).items()
        }
        path.write_text(json.dumps(results, indent=1, default=str))
        print(f"results written to {path.relative_to(HERE.parent)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
