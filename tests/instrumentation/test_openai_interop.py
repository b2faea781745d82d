"""Spans from other OpenAI instrumentations land like PyFlare's own.

The same call, instrumented by PyFlare, by openinference-instrumentation-openai or
by opentelemetry-instrumentation-openai-v2 (each in its own process, as OTel has one
global provider), gives the same model, token and cost columns in the local store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _openai_server import OpenAIServer

SETUPS = {
    "pyflare": "from pyflare.instrumentation import instrument\ninstrument('openai')",
    "openinference": (
        "from openinference.instrumentation.openai import OpenAIInstrumentor\n"
        "OpenAIInstrumentor().instrument()"
    ),
    "openai-v2": (
        "from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor\n"
        "OpenAIInstrumentor().instrument()"
    ),
}


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    started = OpenAIServer().start()
    try:
        yield started
    finally:
        started.stop()


def stored_row(run_python, tmp_path: Path, server: OpenAIServer, setup: str) -> dict:
    child = run_python(
        f"""
import json, openai, pyflare
pyflare.init("svc", store="duckdb:///{tmp_path}/s.duckdb")
{setup}
with openai.OpenAI(api_key="k", base_url="{server.base_url}") as client:
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{{"role": "user", "content": "hello there"}}]
    )
pyflare.flush()
rows = pyflare.sql(
    "SELECT model_id, inference_type, input_tokens, output_tokens, total_tokens, "
    "cost_micros FROM traces WHERE model_id IS NOT NULL"
).to_dict("records")
costs = pyflare.sql("SELECT model_id, provider, total_cost_micros FROM costs").to_dict("records")
print("RESULT", json.dumps({{"rows": rows, "costs": costs}}))
"""
    )
    return run_python.result(child.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("peer", ["openinference", "openai-v2"])
def test_a_peer_instrumentation_lands_like_pyflares(
    run_python, tmp_path: Path, server: OpenAIServer, peer: str
) -> None:
    (tmp_path / "own").mkdir()
    (tmp_path / "peer").mkdir()
    own = stored_row(run_python, tmp_path / "own", server, SETUPS["pyflare"])
    theirs = stored_row(run_python, tmp_path / "peer", server, SETUPS[peer])
    (own_row,) = own["rows"]
    (their_row,) = theirs["rows"]
    assert own_row == {
        "model_id": "gpt-4o-mini",
        "inference_type": "llm",
        "input_tokens": 5,
        "output_tokens": 3,
        "total_tokens": 8,
        "cost_micros": own_row["cost_micros"],
    }
    assert own_row["cost_micros"] > 0
    assert their_row == own_row
    assert [c["total_cost_micros"] for c in theirs["costs"]] == [own_row["cost_micros"]]
    assert [c["total_cost_micros"] for c in own["costs"]] == [own_row["cost_micros"]]
