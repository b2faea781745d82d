"""PyFlare's SDK overhead, measured side by side with its peers in one run.

    python bench/sdk_overhead.py            # full run, a few minutes
    python bench/sdk_overhead.py --quick    # smoke run, under a minute

Four measurements, each in fresh subprocesses (OpenTelemetry allows one global
TracerProvider per process):

1. Decorator overhead: microseconds a decorated call adds over the same
   undecorated function, for a raw OTel SDK span made through ``wrapt``,
   ``@pyflare.trace`` and Langfuse's ``@observe``, without content capture and
   with ~3 KB of input and output captured. Once with PyFlare exporting to its
   local DuckDB store, once to an OTLP/HTTP sink on 127.0.0.1. Variants run in
   interleaved rounds (A/B/C…, the order rotating each round), every round is
   flushed, and the medians of per-round differences are reported, because the
   machine is small, shared and noisy: ratios are the result, absolute times drift.
2. Sustained load: one thread calls a decorated function at 20k calls/s for
   10 s into DuckDB with default settings; dropped spans and stored rows.
3. Exporter throughput: pre-made finished spans through ``DuckDBSpanExporter``,
   and its two halves (conversion to Arrow, the DuckDB write) on their own.
4. ``import pyflare`` cost against ``opentelemetry.sdk.trace`` and ``langfuse``,
   and a check that it imports none of the heavy libraries.

See bench/README.md for what exactly is compared and how to read the output.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULT_PREFIX = "BENCH-RESULT "
LANGFUSE_PUBLIC_KEY = "pk-lf-bench-0000"
LANGFUSE_SECRET_KEY = "sk-lf-bench-0000"  # a dummy: nothing leaves 127.0.0.1
FORBIDDEN_ON_IMPORT = ("duckdb", "pandas", "pyarrow", "torch", "openai", "langchain")

TARGET_NOCAP_VS_RAW = 1.3  # PyFlare without capture at most 1.3x a raw OTel span
TARGET_LANGFUSE_VS_PYFLARE = 4.0  # Langfuse with capture at least 4x PyFlare's cost
TARGET_SUSTAINED_RATE = 20_000  # calls/s, zero drops
TARGET_EXPORT_RATE = 200_000  # spans/s into DuckDB

# (name, label, flush group); the first is the undecorated baseline.
VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("plain", "undecorated function", "none"),
    ("raw_otel", "raw OTel span via wrapt", "pyflare"),
    ("pyflare_nocap", "@pyflare.trace(capture='off')", "pyflare"),
    ("langfuse_nocap", "@observe(capture_*=False)", "langfuse"),
    ("pyflare_cap", "@pyflare.trace (3 KB in/out)", "pyflare"),
    ("langfuse_cap", "@observe (3 KB in/out)", "langfuse"),
)


# -- helpers shared by the workers ---------------------------------------------------------


def _text(chars: int, seed: int) -> str:
    """Deterministic prose-like text (no PII, so masking scans but doesn't rewrite)."""
    words = (
        *("the", "model", "retrieves", "relevant", "passages", "from", "the", "index"),
        *("and", "answers", "the", "question", "using", "only", "grounded", "context"),
        *("while", "citing", "section", "numbers", "such", "as", "4.2", "and", "17"),
        *("latency", "budget", "tokens", "prompt", "completion", "evaluation", "drift"),
    )
    out: list[str] = []
    size = 0
    index = seed
    while size < chars:
        word = words[index % len(words)]
        out.append(word)
        size += len(word) + 1
        index = index * 7 + 3
    return " ".join(out)[:chars]


PROMPT = _text(3000, 1)
ANSWER = _text(3000, 2)
PARAMS = {"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 512, "top_p": 1.0}


def generate(prompt: str, params: dict[str, Any]) -> str:
    """The measured function: a ~3 KB prompt and a small dict in, ~3 KB out."""
    return ANSWER


def _pii_argument() -> tuple[bool | None, str]:
    """``pii=`` for ``pyflare.init``: the default once PII masking can be imported."""
    try:
        importlib.import_module("pyflare.tracing.masking")
    except ImportError as exc:
        return False, f"off: pyflare.tracing.masking not importable ({exc})"
    return None, "on (default)"


_blocked: list[str] = []


def _install_loopback_guard() -> None:
    """Refuse (and record) any connection or DNS lookup that isn't loopback."""
    import socket

    allowed = {"127.0.0.1", "::1", "localhost"}

    def check(host: object) -> None:
        if isinstance(host, bytes):
            host = host.decode(errors="replace")
        if host is not None and host not in allowed:
            _blocked.append(str(host))
            raise PermissionError(f"benchmark: blocked a non-loopback address {host!r}")

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple):
            check(address[0])
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if isinstance(address, tuple):
            check(address[0])
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        check(host)
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo


def _sink_call(port: int, method: str, path: str) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"")
    if method == "GET":
        request.data = None
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def _emit(result: dict[str, Any]) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def _count_rows(path: Path) -> int:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM traces").fetchone()
    return int(row[0]) if row else 0


# -- worker 1: decorator overhead ------------------------------------------------------------


def worker_overhead(sink: str, port: int, calls: int, rounds: int) -> dict[str, Any]:
    _install_loopback_guard()
    os.environ["LANGFUSE_MEDIA_UPLOAD_ENABLED"] = "false"
    os.environ["LANGFUSE_SAMPLE_RATE"] = "1.0"
    import wrapt
    from langfuse import Langfuse, observe
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    import pyflare

    pii, pii_note = _pii_argument()
    tmp = Path(tempfile.mkdtemp(prefix="pyflare-bench-"))
    store_path = tmp / "bench.duckdb"
    if sink == "duckdb":
        provider = pyflare.init("bench", store=f"duckdb:///{store_path}", pii=pii)
    else:
        provider = pyflare.init("bench", endpoint=f"http://127.0.0.1:{port}", pii=pii)
    tracer = provider.get_tracer("raw")  # type: ignore[attr-defined]

    # Langfuse gets a provider of its own (not the global one, which is PyFlare's), so
    # neither SDK's processor sees the other's spans. It exports OTLP/HTTP to the sink.
    langfuse = Langfuse(
        public_key=LANGFUSE_PUBLIC_KEY,
        secret_key=LANGFUSE_SECRET_KEY,
        base_url=f"http://127.0.0.1:{port}",
        tracer_provider=TracerProvider(resource=Resource.create({"service.name": "bench"})),
        sample_rate=1.0,
    )
    _sink_call(port, "POST", "/reset")

    @wrapt.decorator
    def raw_span(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        with tracer.start_as_current_span("generate"):
            return wrapped(*args, **kwargs)

    functions: dict[str, Callable[..., Any]] = {
        "plain": generate,
        "raw_otel": raw_span(generate),
        "pyflare_nocap": pyflare.trace(capture="off")(generate),
        "langfuse_nocap": observe(capture_input=False, capture_output=False)(generate),
        "pyflare_cap": pyflare.trace(generate),
        "langfuse_cap": observe(generate),
    }
    flushes: dict[str, Callable[[], Any]] = {
        "none": lambda: None,
        "pyflare": pyflare.flush,
        "langfuse": langfuse.flush,
    }

    def block(name: str, group: str, count: int) -> tuple[float, float, float, float]:
        function = functions[name]
        flush = flushes[group]
        prompt, params = PROMPT, PARAMS
        gc.collect()
        wall0, thread0, proc0 = (
            time.perf_counter_ns(),
            time.thread_time_ns(),
            time.process_time_ns(),
        )
        for _ in range(count):
            function(prompt, params)
        wall1, thread1 = time.perf_counter_ns(), time.thread_time_ns()
        flush()
        wall2, proc2 = time.perf_counter_ns(), time.process_time_ns()
        per = 1000.0 * count  # ns -> us per call
        return (
            (wall1 - wall0) / per,
            (thread1 - thread0) / per,
            (wall2 - wall0) / per,
            (proc2 - proc0) / per,
        )

    made = dict.fromkeys(functions, 0)
    for name, _label, group in VARIANTS:  # warm-up: imports, caches, connections
        block(name, group, max(calls // 10, 50))
        made[name] += max(calls // 10, 50)
    samples: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n in functions}
    for index in range(rounds):
        shift = index % len(VARIANTS)
        for name, _label, group in VARIANTS[shift:] + VARIANTS[:shift]:
            samples[name].append(block(name, group, calls))
            made[name] += calls

    pyflare_made = made["raw_otel"] + made["pyflare_nocap"] + made["pyflare_cap"]
    langfuse_made = made["langfuse_nocap"] + made["langfuse_cap"]
    stats = pyflare.stats()
    langfuse.flush()
    langfuse.shutdown()
    pyflare.shutdown()
    received = _sink_call(port, "GET", "/stats")
    result: dict[str, Any] = {
        "sink": sink,
        "calls": calls,
        "rounds": rounds,
        "pii": pii_note,
        "samples": samples,
        "pyflare_spans_made": pyflare_made,
        "pyflare_stats": stats,
        "langfuse_spans_made": langfuse_made,
        "langfuse_spans_received": received.get("/api/public/otel/v1/traces spans", 0),
        "sink_counters": received,
        "blocked_addresses": sorted(set(_blocked)),
    }
    if sink == "duckdb":
        result["pyflare_spans_stored"] = _count_rows(store_path)
    else:
        result["pyflare_spans_stored"] = received.get("/v1/traces spans", 0)
    shutil.rmtree(tmp, ignore_errors=True)
    return result


# -- worker 2: sustained rate into DuckDB ----------------------------------------------------


def worker_sustained(rate: int, seconds: float) -> dict[str, Any]:
    _install_loopback_guard()
    import pyflare

    pii, pii_note = _pii_argument()
    tmp = Path(tempfile.mkdtemp(prefix="pyflare-bench-"))
    store_path = tmp / "sustained.duckdb"
    pyflare.init("bench", store=f"duckdb:///{store_path}", pii=pii)

    @pyflare.trace
    def answer(question: str, top_k: int = 5) -> str:
        return "Grounded answer to: " + question

    question = _text(120, 3)
    for _ in range(200):  # warm-up, then start from an empty queue
        answer(question, 5)
    pyflare.flush()
    warmup = 200

    total = int(rate * seconds)
    chunk = max(rate // 1000, 1)  # re-check the schedule about every millisecond
    interval = 1.0 / rate
    peak_queued = 0
    done = 0
    start = time.perf_counter()
    while done < total:
        for _ in range(min(chunk, total - done)):
            answer(question, 5)
        done += min(chunk, total - done)
        if done % (chunk * 50) == 0:
            peak_queued = max(peak_queued, pyflare.stats()["queued"])
        ahead = start + done * interval - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    elapsed = time.perf_counter() - start
    flush_start = time.perf_counter()
    flushed = pyflare.flush(60_000)
    flush_seconds = time.perf_counter() - flush_start
    stats = pyflare.stats()
    pyflare.shutdown()
    rows = _count_rows(store_path) - warmup
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "target_rate": rate,
        "seconds": seconds,
        "calls": total,
        "elapsed": elapsed,
        "achieved_rate": total / elapsed,
        "flush_ok": flushed,
        "flush_seconds": flush_seconds,
        "peak_queued": peak_queued,
        "stats": stats,
        "rows": rows,
        "pii": pii_note,
        "blocked_addresses": sorted(set(_blocked)),
    }


# -- worker 3: exporter throughput -----------------------------------------------------------


def _make_spans(count: int) -> list[Any]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pyflare import semconv as sc

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    preview = _text(200, 4)
    made = 0
    while made < count:  # traces of one root and three children
        with tracer.start_as_current_span("rag.query") as root:
            root.set_attribute(sc.INPUT_PREVIEW, preview)
            made += 1
            for child in range(min(3, count - made)):
                with tracer.start_as_current_span("llm.generate") as span:
                    span.set_attributes(
                        {
                            sc.INPUT_PREVIEW: preview,
                            sc.INPUT_HASH: f"{made:032x}",
                            sc.MODEL_ID: "gpt-4o-mini",
                            sc.INFERENCE_TYPE: "llm",
                            sc.INPUT_TOKENS: 812 + child,
                            sc.OUTPUT_TOKENS: 96,
                            sc.CODE_FUNCTION: "generate",
                        }
                    )
                made += 1
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    return spans


def worker_exporter(count: int, repeats: int, batch_size: int) -> dict[str, Any]:
    from pyflare.exporters.duckdb import DuckDBSpanExporter
    from pyflare.records import from_readable_spans
    from pyflare.store.duckdb import DuckDBSpanStore

    tmp = Path(tempfile.mkdtemp(prefix="pyflare-bench-"))
    started = time.perf_counter()
    spans = _make_spans(count)
    make_seconds = time.perf_counter() - started
    batches = [spans[i : i + batch_size] for i in range(0, len(spans), batch_size)]
    rates: dict[str, list[float]] = {"end_to_end": [], "convert": [], "write": []}
    rows: list[int] = []
    for repeat in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        tables = [from_readable_spans(batch) for batch in batches]
        rates["convert"].append(len(spans) / (time.perf_counter() - t0))

        store = DuckDBSpanStore(tmp / f"write-{repeat}.duckdb")
        gc.collect()
        t0 = time.perf_counter()
        for table in tables:
            store.write(table)
        rates["write"].append(len(spans) / (time.perf_counter() - t0))
        store.close()
        del tables

        path = tmp / f"export-{repeat}.duckdb"
        exporter = DuckDBSpanExporter(lambda path=path: DuckDBSpanStore(path))
        exporter.open()
        gc.collect()
        t0 = time.perf_counter()
        ok = all(exporter.export(batch).name == "SUCCESS" for batch in batches)
        rates["end_to_end"].append(len(spans) / (time.perf_counter() - t0))
        exporter.shutdown()
        rows.append(_count_rows(path) if ok else -1)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "spans": len(spans),
        "batch_size": batch_size,
        "repeats": repeats,
        "make_seconds": make_seconds,
        "rates": rates,
        "rows": rows,
    }


# -- orchestration ---------------------------------------------------------------------------


def _child_env() -> tuple[dict[str, str], list[str]]:
    """The workers' environment: no PYFLARE_*/OTEL_*/LANGFUSE_* settings, no proxies."""
    env = dict(os.environ)
    dropped = [
        key
        for key in env
        if key.startswith(("PYFLARE_", "OTEL_", "LANGFUSE_")) or key.lower().endswith("_proxy")
    ]
    for key in dropped:
        del env[key]
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    return env, dropped


def _run_worker(name: str, env: dict[str, str], *args: object, timeout: float = 600) -> Any:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", name]
    command += [str(arg) for arg in args]
    completed = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    sys.stderr.write(completed.stdout[-4000:] + completed.stderr[-4000:])
    raise RuntimeError(f"worker {name} failed with exit status {completed.returncode}")


@contextlib.contextmanager
def _sink(env: dict[str, str]) -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "_sink.py")], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the OTLP sink did not start: {line!r}")
        yield int(line.split()[1])
    finally:
        process.terminate()
        process.wait(timeout=10)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


METRICS = ("call_wall", "call_thread_cpu", "with_export_wall", "with_export_process_cpu")


def _added(samples: dict[str, list[list[float]]]) -> dict[str, dict[str, list[float]]]:
    """Per-round microseconds added over the undecorated function, per variant and metric."""
    plain = samples["plain"]
    added: dict[str, dict[str, list[float]]] = {}
    for name, rows in samples.items():
        added[name] = {
            metric: [row[i] - base[i] for row, base in zip(rows, plain, strict=True)]
            for i, metric in enumerate(METRICS)
        }
    return added


def _ratio(
    added: dict[str, dict[str, list[float]]], top: str, bottom: str, metric: str
) -> dict[str, float]:
    per_round = [
        a / b if b > 0 else float("inf")
        for a, b in zip(added[top][metric], added[bottom][metric], strict=True)
    ]
    low, high = _quartiles(per_round)
    return {
        "ratio": _median(added[top][metric]) / _median(added[bottom][metric]),
        "round_p25": low,
        "round_p75": high,
    }


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


RATIO_METRICS = (
    ("call_wall", "call (wall)"),
    ("call_thread_cpu", "call (thread CPU)"),
    ("with_export_wall", "call+export (wall)"),
)


def report_overhead(
    results: list[dict[str, Any]], ratios: list[list[str]], targets: list[list[str]]
) -> None:
    for result in results:
        sink = result["sink"]
        key = "1a" if sink == "duckdb" else "1b"
        where = "PyFlare -> local DuckDB store" if sink == "duckdb" else "PyFlare -> OTLP/HTTP sink"
        print(
            f"\n{key}. Decorator overhead, {where}; Langfuse -> OTLP/HTTP (gzip), same sink\n"
            f"    us added per call over the undecorated function: median of {result['rounds']} "
            f"interleaved rounds x {result['calls']} calls"
        )
        added = _added(result["samples"])
        print(
            f"    {'variant':<34}{'call':>9}{'call':>10}{'+export':>10}{'+export':>11}"
            f"{'call wall':>15}"
        )
        print(
            f"    {'':<34}{'wall':>9}{'CPU(thr)':>10}{'wall':>10}{'CPU(proc)':>11}{'p25-p75':>15}"
        )
        for name, label, _group in VARIANTS:
            if name == "plain":
                base = _median([row[0] for row in result["samples"]["plain"]])
                print(f"    {label + ' (absolute)':<34}{base:>9.2f}")
                continue
            values = [_median(added[name][metric]) for metric in METRICS]
            low, high = _quartiles(added[name]["call_wall"])
            print(
                f"    {label:<34}{values[0]:>9.2f}{values[1]:>10.2f}{values[2]:>10.2f}"
                f"{values[3]:>11.2f}{f'{low:.1f}-{high:.1f}':>15}"
            )
        stats = result["pyflare_stats"]
        print(
            f"    PyFlare: spans made {result['pyflare_spans_made']:,}, exported "
            f"{stats.get('exported', 0):,}, dropped {stats.get('dropped', 0):,}, "
            f"{'rows in the store' if sink == 'duckdb' else 'received by the sink'} "
            f"{result['pyflare_spans_stored']:,}; PII masking {result['pii']}"
        )
        print(
            f"    Langfuse: spans made {result['langfuse_spans_made']:,}, received by the sink "
            f"{result['langfuse_spans_received']:,}; non-loopback connections attempted: "
            f"{len(result['blocked_addresses'])}"
        )
        for top, bottom, title, goal, better in (
            (
                "pyflare_nocap",
                "raw_otel",
                "PyFlare no-capture / raw OTel span",
                f"<= {TARGET_NOCAP_VS_RAW}x",
                lambda r: r <= TARGET_NOCAP_VS_RAW,
            ),
            (
                "langfuse_cap",
                "pyflare_cap",
                "Langfuse capture / PyFlare capture",
                f">= {TARGET_LANGFUSE_VS_PYFLARE}x",
                lambda r: r >= TARGET_LANGFUSE_VS_PYFLARE,
            ),
        ):
            row = [f"{key} {title}", sink, goal]
            for metric, _label in RATIO_METRICS:
                ratio = _ratio(added, top, bottom, metric)
                row.append(
                    f"{ratio['ratio']:.2f}x [{ratio['round_p25']:.2f}-{ratio['round_p75']:.2f}] "
                    f"{_verdict(better(ratio['ratio']))}"
                )
            ratios.append(row)
        complete = (
            stats.get("dropped") == 0
            and result["pyflare_spans_stored"] == result["pyflare_spans_made"]
            and result["langfuse_spans_received"] == result["langfuse_spans_made"]
            and not result["blocked_addresses"]
        )
        targets.append(
            [
                f"{key} every span of every variant exported, none dropped",
                sink,
                "all" if complete else "SOME MISSING",
                "all",
                _verdict(complete),
            ]
        )


def report_sustained(result: dict[str, Any], targets: list[list[str]]) -> None:
    stats = result["stats"]
    achieved = result["achieved_rate"]
    flat_out = achieved < 0.98 * result["target_rate"]
    print(
        f"\n2. Sustained load into DuckDB: default settings (capture on, PII masking "
        f"{result['pii']})\n"
        f"    one thread paced at {result['target_rate']:,} calls/s for {result['seconds']:g} s: "
        f"{result['calls']:,} calls in {result['elapsed']:.2f} s = {achieved:,.0f} calls/s"
        + (
            " (could not keep the pace: ran flat out, so this is the most it did)"
            if flat_out
            else ""
        )
        + f"\n    peak queue {result['peak_queued']:,} spans; final flush "
        f"{result['flush_seconds']:.2f} s ({'ok' if result['flush_ok'] else 'TIMED OUT'}); "
        f"exported {stats.get('exported', 0):,}, dropped {stats.get('dropped', 0):,} "
        f"(queue full {stats.get('dropped_queue_full', 0):,}, export failed "
        f"{stats.get('dropped_export_failed', 0):,}); rows stored {result['rows']:,} "
        f"of {result['calls']:,}"
    )
    none_lost = stats.get("dropped") == 0 and result["rows"] == result["calls"]
    targets.append(
        [
            f"2  no span lost at the rate achieved ({achieved:,.0f}/s)",
            "duckdb",
            f"{stats.get('dropped')} dropped, {result['rows']:,}/{result['calls']:,} rows",
            "0 dropped, all rows",
            _verdict(none_lost),
        ]
    )
    targets.append(
        [
            "2  sustained rate with tracing on",
            "duckdb",
            f"{achieved:,.0f} calls/s",
            f">= {TARGET_SUSTAINED_RATE:,} calls/s",
            _verdict(not flat_out),
        ]
    )


def report_exporter(result: dict[str, Any], targets: list[list[str]]) -> None:
    rates = {key: _median(values) for key, values in result["rates"].items()}
    print(
        f"\n3. Exporter -> DuckDB: {result['spans']:,} finished spans (4-span traces, ~9 "
        f"attributes incl. a 200-char preview), batches of {result['batch_size']}, median of "
        f"{result['repeats']}\n"
        f"    DuckDBSpanExporter.export      {rates['end_to_end']:>10,.0f} spans/s\n"
        f"    records.from_readable_spans    {rates['convert']:>10,.0f} spans/s  (conversion only)\n"
        f"    DuckDBSpanStore.write          {rates['write']:>10,.0f} spans/s  (write only)\n"
        f"    rows stored per repeat: {', '.join(f'{rows:,}' for rows in result['rows'])}"
    )
    targets.append(
        [
            "3  DuckDBSpanExporter throughput",
            "duckdb",
            f"{rates['end_to_end']:,.0f} spans/s",
            f">= {TARGET_EXPORT_RATE:,} spans/s",
            _verdict(
                rates["end_to_end"] >= TARGET_EXPORT_RATE
                and all(rows == result["spans"] for rows in result["rows"])
            ),
        ]
    )


IMPORT_SNIPPET = (
    "import time; t = time.perf_counter_ns(); import {module}; "
    "print((time.perf_counter_ns() - t) / 1e6)"
)
IMPORT_MODULES = ("pyflare", "opentelemetry.sdk.trace", "langfuse")


def measure_imports(env: dict[str, str], repeats: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {module: [] for module in IMPORT_MODULES}
    for _ in range(repeats):
        for module in IMPORT_MODULES:  # interleaved, so drift hits all three alike
            completed = subprocess.run(
                [sys.executable, "-c", IMPORT_SNIPPET.format(module=module)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            times[module].append(float(completed.stdout.strip()))
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pyflare"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    imported: dict[str, int] = {}
    for line in completed.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3:
            continue
        if parts[1].strip().isdigit():  # skips the header line
            imported[parts[2].strip()] = int(parts[1])
    forbidden = sorted({name.split(".")[0] for name in imported} & set(FORBIDDEN_ON_IMPORT))
    heaviest = sorted(imported.items(), key=lambda item: -item[1])
    return {
        "times_ms": times,
        "modules_imported": len(imported),
        "forbidden_imported": forbidden,
        "heaviest_cumulative_us": heaviest[:8],
    }


def report_imports(result: dict[str, Any], targets: list[list[str]]) -> None:
    times = {module: _median(values) for module, values in result["times_ms"].items()}
    base = times["opentelemetry.sdk.trace"]
    print(
        f"\n4. Import cost in fresh interpreters (median of "
        f"{len(result['times_ms']['pyflare'])}, interleaved)"
    )
    for module, value in times.items():
        print(f"    import {module:<26}{value:>8.1f} ms  {value / base:>5.2f}x")
    heaviest = ", ".join(
        f"{name} {us / 1000:.1f} ms"
        for name, us in result["heaviest_cumulative_us"]
        if name != "pyflare"
    )
    print(
        f"    python -X importtime -c 'import pyflare': {result['modules_imported']} modules; "
        f"heaviest (cumulative): {heaviest}"
    )
    forbidden = result["forbidden_imported"]
    print(
        f"    imports none of {', '.join(FORBIDDEN_ON_IMPORT)}: "
        f"{'yes' if not forbidden else 'NO, imports ' + ', '.join(forbidden)}"
    )
    targets.append(
        [
            "4  import pyflare pulls in no heavy library",
            "-",
            "none" if not forbidden else ", ".join(forbidden),
            "none",
            _verdict(not forbidden),
        ]
    )
    targets.append(
        [
            "4  import pyflare / import opentelemetry.sdk.trace",
            "-",
            f"{times['pyflare']:.1f} / {base:.1f} ms = {times['pyflare'] / base:.2f}x",
            "(context)",
            "-",
        ]
    )


def _table(headers: Sequence[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    print("    " + line)
    print("    " + "-" * len(line))
    for row in rows:
        cells = (cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        print(("    " + "  ".join(cells)).rstrip())


def print_targets(ratios: list[list[str]], targets: list[list[str]]) -> None:
    if ratios:
        print(
            "\nTargets 1: ratios of us added per call, median over rounds "
            "([p25-p75] = spread of the per-round ratios)"
        )
        _table(["target", "sink", "goal", *(label for _m, label in RATIO_METRICS)], ratios)
    if targets:
        print("\nOther targets")
        _table(["target", "sink", "measured", "goal", "verdict"], targets)


def _environment() -> dict[str, Any]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("pyflare", "opentelemetry-sdk", "langfuse", "duckdb", "pyarrow", "wrapt"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "missing"
    git = subprocess.run(
        ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "versions": versions,
        "commit": git.stdout.strip() or "unknown",
        "src_files_changed": len(dirty.stdout.splitlines()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--no-json", action="store_true", help="don't write bench/results/*.json")
    parser.add_argument(
        "--only",
        default="overhead,sustained,exporter,imports",
        help="comma-separated subset of: overhead, sustained, exporter, imports",
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    quick = args.quick
    env, dropped_env = _child_env()
    info = _environment()
    print(
        f"PyFlare SDK overhead bench ({'quick' if quick else 'full'} run) at {info['commit']}"
        f" (+{info['src_files_changed']} changed files under src/): Python {info['python']}, "
        f"{info['cpus']} CPUs; " + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    )
    if dropped_env:
        print(f"(ignoring these settings from the environment: {', '.join(sorted(dropped_env))})")
    started = time.perf_counter()
    results: dict[str, Any] = {"environment": info, "quick": quick}
    ratios: list[list[str]] = []
    targets: list[list[str]] = []
    failed: list[str] = []

    def section(name: str, run: Callable[[], Any], report: Callable[[Any], None]) -> None:
        if name not in only:
            return
        try:
            results[name] = run()
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
            failed.append(name)
            print(f"\n[{name}] FAILED: {exc}")
            targets.append([f"{name}: the measurement failed", "-", str(exc)[:60], "-", "ERROR"])
            return
        report(results[name])

    def overhead() -> list[dict[str, Any]]:
        calls, rounds = (300, 5) if quick else (2000, 21)
        with _sink(env) as port:
            return [
                _run_worker("overhead", env, sink, port, calls, rounds)
                for sink in ("duckdb", "otlp")
            ]

    section("overhead", overhead, lambda r: report_overhead(r, ratios, targets))
    section(
        "sustained",
        lambda: _run_worker("sustained", env, TARGET_SUSTAINED_RATE, 2.0 if quick else 10.0),
        lambda r: report_sustained(r, targets),
    )
    section(
        "exporter",
        lambda: _run_worker("exporter", env, *((20_000, 1) if quick else (100_000, 3)), 8192),
        lambda r: report_exporter(r, targets),
    )
    section(
        "imports",
        lambda: measure_imports(env, 3 if quick else 10),
        lambda r: report_imports(r, targets),
    )

    print_targets(ratios, targets)
    results["targets"] = {"ratios": ratios, "other": targets}
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    if not args.no_json:
        out = HERE / "results"
        out.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = out / f"sdk_overhead-{stamp}{'-quick' if quick else ''}.json"
        path.write_text(json.dumps(results, indent=1))
        print(f"results written to {path.relative_to(HERE.parent)}")
    return 1 if failed else 0


def _worker_main(name: str, args: Sequence[str]) -> None:
    if name == "overhead":
        _emit(worker_overhead(args[0], int(args[1]), int(args[2]), int(args[3])))
    elif name == "sustained":
        _emit(worker_sustained(int(args[0]), float(args[1])))
    elif name == "exporter":
        _emit(worker_exporter(int(args[0]), int(args[1]), int(args[2])))
    else:
        raise SystemExit(f"unknown worker {name!r}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        _worker_main(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main())
