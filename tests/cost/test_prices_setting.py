"""PYFLARE_PRICES_FILE / init(prices_file=...): the user's prices price the local store's spans."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import PythonRunner

PRICES = """
prices:
  - model_id: acme-llm
    provider: acme
    input_cost_per_million_tokens: 2000000
    output_cost_per_million_tokens: 8000000
aliases:
  acme-prod-deployment: acme-llm
"""

PROGRAM = """
import json, pyflare

pyflare.init(service_name="shop", store="duckdb:///local.duckdb", {prices_arg})

@pyflare.trace(kind="llm", model_id="acme-prod-deployment")
def ask() -> str:
    pyflare.record_usage(input_tokens=1000, output_tokens=500)
    return "ok"

ask()
pyflare.flush()
rows = pyflare.sql("select model_id, cost_micros from traces where model_id is not null")
costs = pyflare.sql("select price_model, price_source, total_cost_micros from costs")
print("RESULT", json.dumps({{"traces": rows.to_dict("records"), "costs": costs.to_dict("records")}}))
"""


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_user_prices_price_spans(tmp_path: Path, run_python: PythonRunner, how: str) -> None:
    (tmp_path / "prices.yaml").write_text(PRICES)
    if how == "argument":
        code, env = PROGRAM.format(prices_arg='prices_file="prices.yaml"'), None
    else:
        code, env = PROGRAM.format(prices_arg=""), {"PYFLARE_PRICES_FILE": "prices.yaml"}
    result = run_python.result(run_python(code, env=env).stdout)
    # 1000 input tokens at $2/M = 2000 micros; 500 output tokens at $8/M = 4000 micros.
    assert result["traces"] == [{"model_id": "acme-prod-deployment", "cost_micros": 6000}]
    assert result["costs"] == [
        {"price_model": "acme-llm", "price_source": "user", "total_cost_micros": 6000}
    ]


def test_bad_prices_file_is_a_config_error(tmp_path: Path, run_python: PythonRunner) -> None:
    (tmp_path / "prices.yaml").write_text("prices:\n  - model_id: acme-llm\n    provider: acme\n")
    done = run_python(
        """
        import pyflare
        try:
            pyflare.init(store="duckdb:///local.duckdb", prices_file="prices.yaml")
        except pyflare.ConfigError as exc:
            print("RESULT", repr(str(exc)))
        """
    )
    message = run_python.result(done.stdout)
    assert "prices.yaml" in message
    assert "input_cost_per_million_tokens" in message


def test_missing_prices_file_is_a_config_error(tmp_path: Path, run_python: PythonRunner) -> None:
    done = run_python(
        """
        import pyflare
        try:
            pyflare.init(store="duckdb:///local.duckdb", prices_file="nowhere.yaml")
        except pyflare.ConfigError as exc:
            print("RESULT", repr(str(exc)))
        """
    )
    assert "nowhere.yaml" in run_python.result(done.stdout)
