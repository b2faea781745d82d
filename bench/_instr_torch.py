"""Torch forward-hook overhead: PyFlare's hooks on a ~1 ms forward pass (target <= 2%).

    python bench/_instr_torch.py

``run()`` (also called by bench/instrumentation.py) times a CPU MLP sized so one
forward pass takes about 1 ms (one torch thread), without hooks and with
``instrument_torch`` at sample_rate=1, in interleaved rounds (the order
alternating each round), spans going through PyFlare's span processor to a
batching exporter that drops them. It reports the medians of the per-round
differences: the overhead in microseconds and as a percentage of the forward
pass, without summaries (the default) and with input and output summaries on.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from pyflare._runtime import STATE
from pyflare.instrumentation.torch import instrument_torch
from pyflare.tracing.setup import PyFlareSpanProcessor

TARGET_MS = 1.0
ROUNDS = 25
CALLS = 200


class _Drop(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _model(batch: int) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10)
    ).eval()
    return model, torch.randn(batch, 256)


def _per_call_ms(call: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) * 1000 / n


def _calibrated() -> tuple[torch.nn.Module, torch.Tensor, float]:
    batch = 64
    while True:
        model, inputs = _model(batch)
        call = partial(model, inputs)
        with torch.no_grad():
            _per_call_ms(call, 50)
            ms = _per_call_ms(call, 200)
        if ms >= TARGET_MS * 0.9 or batch >= 1 << 14:
            return model, inputs, ms
        batch = int(batch * max(1.2, TARGET_MS / ms))


def _overhead(model: torch.nn.Module, inputs: torch.Tensor, **options: Any) -> tuple[float, float]:
    """(median added µs per call, median added % of the forward pass)."""
    added_us: list[float] = []
    added_pct: list[float] = []
    with torch.no_grad():
        for round_ in range(ROUNDS):
            times: dict[bool, float] = {}
            for hooked in (False, True) if round_ % 2 == 0 else (True, False):
                handle = instrument_torch(model, **options) if hooked else None
                times[hooked] = _per_call_ms(lambda: model(inputs), CALLS)
                if handle is not None:
                    handle.remove()
            added_us.append((times[True] - times[False]) * 1000)
            added_pct.append((times[True] - times[False]) / times[False] * 100)
    return statistics.median(added_us), statistics.median(added_pct)


def run() -> dict[str, float]:
    """Forward-pass ms and the hooks' overhead (µs, %) without and with summaries."""
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    provider = TracerProvider()
    provider.add_span_processor(PyFlareSpanProcessor())
    provider.add_span_processor(BatchSpanProcessor(_Drop()))
    saved = STATE.tracer
    STATE.tracer = provider.get_tracer("pyflare")
    try:
        model, inputs, forward_ms = _calibrated()
        plain_us, plain_pct = _overhead(model, inputs)
        summary_us, summary_pct = _overhead(
            model,
            inputs,
            inference_type="classification",
            capture_inputs=True,
            capture_outputs=True,
        )
    finally:
        STATE.tracer = saved
        provider.shutdown()
        torch.set_num_threads(torch_threads)
    return {
        "forward_ms": round(forward_ms, 3),
        "batch": float(inputs.shape[0]),
        "hooks_us": round(plain_us, 1),
        "hooks_pct": round(plain_pct, 2),
        "hooks_with_summaries_us": round(summary_us, 1),
        "hooks_with_summaries_pct": round(summary_pct, 2),
        "target_pct": 2.0,
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:28} {value}")
