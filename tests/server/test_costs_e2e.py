"""Cost end to end: OTLP spans → the server's cost stage → the costs table → /api/v1/costs."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from _live import live_server
from _otlp import trace_request

from pyflare.store.duckdb import DuckDBSpanStore

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def test_otlp_spans_are_priced_and_summarised(tmp_path: Path) -> None:
    since = time.time_ns() - 60 * 1_000_000_000
    genai, _ = trace_request(
        2,
        2,
        service="support-bot",
        attributes={
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 500,
            "user.id": "alice",
        },
    )
    # OpenInference names, a model no price list knows.
    openinference, _ = trace_request(
        1,
        1,
        service="support-bot",
        attributes={
            "llm.model_name": "in-house-llm-3",
            "llm.token_count.prompt": 40,
            "llm.token_count.completion": 2,
            "openinference.span.kind": "LLM",
        },
    )
    with live_server(tmp_path) as server:
        with httpx.Client(base_url=server.http) as otlp:
            for request in (genai, openinference):
                response = otlp.post(
                    "/v1/traces", content=request.SerializeToString(), headers=PROTOBUF
                )
                assert response.status_code == 200, response.text
        window = {"start_time": str(since), "end_time": str(time.time_ns() + 1_000_000_000)}
        with httpx.Client(base_url=server.api) as api:
            body = api.get("/api/v1/costs", params={**window, "group_by": "model_id"}).json()
            breakdown = api.get(
                "/api/v1/costs/breakdown", params={**window, "dimension": "user"}
            ).json()
        assert server.core.cost.counters.errors == 0
    # Every span of the GenAI traces carries the attributes: 4 calls at 2500 + 5000 micros.
    assert body["total_requests"] == 5
    assert body["total_cost_micros"] == 4 * 7500
    assert body["unpriced_requests"] == 1
    groups = {g["model_id"]: g for g in body["groups"]}
    assert groups["gpt-4o"]["cost_micros"] == 30_000
    assert groups["in-house-llm-3"]["cost_micros"] is None
    assert groups["in-house-llm-3"]["input_tokens"] == 40
    assert breakdown["items"][0]["value"] == "alice"
    assert breakdown["items"][0]["cost_micros"] == 30_000
    with DuckDBSpanStore(server.store_path, read_only=True) as store:
        stored = store.sql(
            "SELECT model_id, sum(cost_micros) AS c, count(*) AS n FROM traces "
            "GROUP BY model_id ORDER BY model_id"
        ).to_pylist()
    assert stored == [
        {"model_id": "gpt-4o", "c": 30_000, "n": 4},
        {"model_id": "in-house-llm-3", "c": None, "n": 1},
    ]
