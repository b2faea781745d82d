"""collector.cost: user prices, attribution keys, budget rules and turning pricing off."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from _otlp import trace_request
from starlette.testclient import TestClient

from pyflare.errors import ConfigError
from pyflare_server.app import create_app
from pyflare_server.settings import ServerSettings

NO_WORKERS = {"PYFLARE_COLLECTOR__OTLP__DECODE_WORKERS": "0"}
LLM_CALL = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "acme-prod",
    "gen_ai.provider.name": "acme",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 500,
    "app.customer": "globex",
}


def load(tmp_path: Path, collector_yaml: str) -> ServerSettings:
    config = tmp_path / "collector.yaml"
    config.write_text(textwrap.dedent(collector_yaml), encoding="utf-8")
    return ServerSettings.load(
        config,
        env=NO_WORKERS,
        # Loopback: auth is off by default (tests/server/test_auth*.py cover it on).
        overrides={"store": f"duckdb:///{tmp_path / 'server.duckdb'}", "host": "127.0.0.1"},
    )


def post_spans(client: TestClient, spans: int) -> None:
    request, _ = trace_request(traces=1, spans_per_trace=spans, attributes=LLM_CALL)
    response = client.post(
        "/v1/traces",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200


WINDOW = {"start_time": "2020-01-01T00:00:00Z", "end_time": "2100-01-01T00:00:00Z"}


def test_user_prices_attribution_and_budgets_from_the_config(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "prices:\n"
        "  - {model_id: acme-llm, provider: acme, input_cost_per_million_tokens: 2000000,"
        " output_cost_per_million_tokens: 8000000}\n"
        "aliases: {acme-prod: acme-llm}\n"
    )
    settings = load(
        tmp_path,
        f"""
        collector:
          cost:
            prices_file: {prices}
            attribution:
              user_keys: [app.customer]
            budgets:
              - {{name: globex-daily, dimension: user, value: globex, window: day,
                  limit_usd: 0.01}}
        """,
    )
    with TestClient(create_app(settings)) as client:
        post_spans(client, spans=2)
        summary = client.get("/api/v1/costs", params={**WINDOW, "group_by": "user_id"}).json()
        # 1000 input tokens at $2/M + 500 output tokens at $8/M = 6000 micros per call.
        assert summary["total_cost_micros"] == 12_000
        assert [group["user_id"] for group in summary["groups"]] == ["globex"]
        [budget] = client.get("/api/v1/costs/budgets").json()["budgets"]
        assert budget["name"] == "globex-daily"
        assert budget["spent_micros"] == 12_000
        assert budget["status"] == "exceeded"


def test_pricing_can_be_turned_off(tmp_path: Path) -> None:
    settings = load(tmp_path, "collector:\n  cost:\n    enabled: false\n")
    app = create_app(settings)
    with TestClient(app) as client:
        post_spans(client, spans=1)
        summary = client.get("/api/v1/costs", params=WINDOW).json()
        assert summary["total_requests"] == 0
        listed = client.get("/api/v1/traces").json()["traces"]
        assert len(listed) == 1
        assert listed[0]["cost_micros"] is None


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "collector:\n  cost:\n    budgets:\n      - {name: b, window: fortnight,"
            " limit_usd: 1}\n",
            "collector.cost.budgets",
        ),
        (
            "collector:\n  cost:\n    budgets:\n      - {name: b, window: day}\n",
            "limit",
        ),
        ("collector:\n  cost:\n    attribution:\n      owner_keys: [x]\n", "owner_keys"),
        ("collector:\n  cost:\n    prices_file: /nowhere/prices.yaml\n", "/nowhere/prices.yaml"),
        ("collector:\n  cost:\n    enabled: maybe\n", "collector.cost.enabled"),
    ],
)
def test_bad_cost_settings_name_what_is_wrong(tmp_path: Path, yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, yaml_text)
    assert message in str(info.value)
    assert "collector.cost" in str(info.value)
