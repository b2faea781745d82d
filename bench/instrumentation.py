"""Instrumentation overhead, PyFlare beside its peers, in one run.

    python bench/instrumentation.py

* µs added per OpenAI chat call (``chat.completions.create``, not streamed) by
  PyFlare, openinference-instrumentation-openai, opentelemetry-instrumentation-openai-v2
  and Traceloop's opentelemetry-instrumentation-openai (``pip install -e ".[bench]"``); with an
  in-process mocked transport (no network) and with a local HTTP server. Each
  contender runs in its own process, every one exporting to the same do-nothing
  exporter, and its overhead is its per-call time minus the same process's time
  before instrumenting. Targets: PyFlare <= 0.5x OpenInference's added overhead and
  <= 0.25x Traceloop's.
* The import time of PyFlare's OpenAI instrumentor beyond ``import openai``
  (target <= 0.1 s).
* Torch forward hooks, when bench/_instr_torch.py is present (target <= 2%).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ("pyflare", "openinference", "openai-v2", "traceloop")


def contender_run(contender: str, mode: str, base_url: str = "") -> dict[str, float] | None:
    env = dict(os.environ)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "_instr_openai.py"), contender, mode, base_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if done.returncode != 0:
        print(f"  {contender} ({mode}) did not run: {done.stderr.strip().splitlines()[-1:]}")
        return None
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def import_seconds(runs: int = 5) -> float:
    code = (
        "import time, openai\n"
        "t = time.perf_counter()\n"
        "import pyflare.instrumentation.openai\n"
        "print(time.perf_counter() - t)\n"
    )
    times = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(times)


def overheads(mode: str, base_url: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for contender in CONTENDERS:
        result = contender_run(contender, mode, base_url)
        if result is not None:
            added = result["instrumented_us"] - result["baseline_us"]
            found[contender] = {**result, "added_us": added}
            print(
                f"  {mode:6} {contender:13} baseline {result['baseline_us']:8.1f} µs  "
                f"instrumented {result['instrumented_us']:8.1f} µs  added {added:7.1f} µs"
            )
    ours = found.get("pyflare", {}).get("added_us")
    for peer, target in (("openinference", 0.5), ("openai-v2", None), ("traceloop", 0.25)):
        theirs = found.get(peer, {}).get("added_us")
        if ours is not None and theirs:
            ratio = ours / theirs
            verdict = (
                ""
                if target is None
                else f" (target <= {target}: {'met' if ratio <= target else 'MISSED'})"
            )
            print(f"  {mode:6} PyFlare / {peer}: {ratio:.2f}x{verdict}")
            found[f"ratio_vs_{peer}"] = ratio
    return found


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "instrumentation"))
    from _openai_server import OpenAIServer

    results: dict[str, Any] = {}
    print("OpenAI chat call overhead (best of rounds, per call)")
    results["mock"] = overheads("mock")
    server = OpenAIServer().start()
    try:
        results["server"] = overheads("server", server.base_url)
    finally:
        server.stop()
    seconds = import_seconds()
    results["import_s"] = seconds
    print(f"import pyflare.instrumentation.openai after openai: {seconds:.3f} s (target <= 0.1 s)")
    sys.path.insert(0, str(ROOT))
    try:
        from bench import _instr_torch  # type: ignore[attr-defined]
    except ImportError:
        print("torch hooks: bench/_instr_torch.py not present")
    else:
        results["torch"] = _instr_torch.run()
        print(f"torch hooks: {results['torch']}")
    out = ROOT / "bench" / "results" / "instrumentation.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
