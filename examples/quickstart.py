"""PyFlare in one file: instrument a small RAG app and a classifier, then look.

Runs with no infrastructure: spans go to the default local DuckDB file
(``./.pyflare/pyflare.duckdb``), then the script prints the recent traces,
one trace as a tree, and a per-model summary read back with SQL. Afterwards
``pyflare traces`` and ``pyflare sql "…"`` read the same file.

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time

import pyflare

# The example's own randomness; seeding the global `random` would also fix the
# trace ids OpenTelemetry draws from it.
RNG = random.Random(7)

DOCUMENTS = [
    "PyFlare stores spans in a local DuckDB file by default.",
    "Drift detection compares a live window with a reference window.",
    "Costs are kept in integer micro-dollars end to end.",
    "Contact support at help@example.com or +1 415 555 0100.",
]


@pyflare.trace(kind="embedding", model_id="text-embedding-3-small", inference_type="embedding")
def embed(text: str) -> list[float]:
    time.sleep(0.002)
    pyflare.record_usage(input_tokens=len(text.split()), model="text-embedding-3-small")
    return [float(ord(c) % 7) for c in text[:8]]


@pyflare.trace(kind="retriever")
def retrieve(question: str, k: int = 2) -> list[str]:
    embed(question)
    words = set(question.lower().split())
    ranked = sorted(DOCUMENTS, key=lambda d: -len(words & set(d.lower().split())))
    return ranked[:k]


@pyflare.trace(kind="llm", model_id="gpt-4o-mini", inference_type="llm")
def generate(question: str, context: list[str]) -> str:
    time.sleep(RNG.uniform(0.005, 0.02))
    if "refund" in question:
        raise TimeoutError("upstream model timed out after 30 s")
    prompt_tokens = 40 + sum(len(c.split()) for c in context)
    pyflare.record_usage(input_tokens=prompt_tokens, output_tokens=25, model="gpt-4o-mini")
    return f"Based on {len(context)} documents: {context[0]}"


@pyflare.trace(kind="chain")
def answer(question: str) -> str:
    return generate(question, retrieve(question))


@pyflare.trace(
    name="classify",
    kind="inference",
    inference_type="classification",
    model_id="fraud-v3",
    model_version="2026-10",
)
async def classify(features: dict[str, float]) -> float:
    await asyncio.sleep(0.001)
    return min(1.0, features["amount"] / 1000)


async def score_transactions() -> None:
    await asyncio.gather(*(classify({"amount": RNG.uniform(5, 900)}) for _ in range(5)))


def main() -> int:
    pyflare.init(service_name="rag-bot", environment="dev")
    questions = [
        "How does PyFlare store spans?",
        "What is drift detection?",
        "How do I get a refund?",
        "Where is my data kept? My email is jane.doe@example.com",
    ]
    for number, question in enumerate(questions):
        with (
            pyflare.context(user_id=f"user-{number % 2}", session_id="s-42", feature_id="support"),
            contextlib.suppress(TimeoutError),  # recorded on the span as an error
        ):
            answer(question)
    asyncio.run(score_transactions())
    pyflare.flush()

    from rich.console import Console

    from pyflare.views import traces_table

    console = Console(width=140)
    recent = pyflare.traces(limit=20)
    console.print(traces_table(recent))
    chain = pyflare.traces(text="refund", limit=1)
    if len(chain):
        console.print(pyflare.get_trace(chain.trace_id[0]))
    console.print("[bold]Per model[/bold]")
    summary = pyflare.sql(
        """
        SELECT coalesce(model_id, '(none)') AS model, count(*) AS spans,
               sum(total_tokens) AS tokens,
               round(avg(duration_ns) / 1e6, 2) AS avg_ms,
               count(*) FILTER (WHERE status_code = 'error') AS errors
        FROM traces GROUP BY 1 ORDER BY spans DESC
        """
    )
    console.print(summary.to_string(index=False))
    stats = pyflare.stats()
    console.print(
        f"exported {stats['exported']} spans, dropped {stats['dropped']}, "
        f"store {stats['store']}; now try `pyflare traces`"
    )
    pyflare.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
