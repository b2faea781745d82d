"""``pyflare costs`` and its sub-commands, run as users run them: the console script."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest
from tests._readable_spans import make_span

from pyflare.exporters.duckdb import DuckDBSpanExporter
from pyflare.records import COST_SCHEMA
from pyflare.store.duckdb import DuckDBSpanStore
from test_cli import run_cli

DAY = 86_400 * 1_000_000_000
HOUR = 3600 * 1_000_000_000


def llm(span: int, start: int, model: str, user: str) -> object:
    return make_span(
        7,
        span,
        start=start,
        attributes={
            "gen_ai.request.model": model,
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 500,
            "user.id": user,
        },
    )


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Today: 2 gpt-4o calls (alice, bob) and 1 call of an unknown model; 3 weeks of history."""
    path = tmp_path_factory.mktemp("cli-costs") / "costs.duckdb"
    now = time.time_ns()
    today = now // DAY * DAY
    with DuckDBSpanStore(path) as store:
        exporter = DuckDBSpanExporter(lambda: store)
        exporter.export(
            [
                llm(1, now - HOUR, "gpt-4o", "alice"),
                llm(2, now - HOUR + 1, "gpt-4o", "bob"),
                llm(3, now - HOUR + 2, "our-own-model", "alice"),
            ]
        )
        history = [
            {
                "trace_id": f"{d:032x}",
                "span_id": f"{d:016x}",
                "timestamp": today - (d + 1) * DAY + HOUR,
                "service_name": "svc",
                "model_id": "history-model",
                "tokens_estimated": False,
                "total_cost_micros": 1_000_000 + 25_000 * (d % 7),
                "dimensions": [],
            }
            for d in range(21)
        ]
        store.write_costs(pa.Table.from_pylist(history, schema=COST_SCHEMA))
    return path


def ok(*args: str, cwd: Path) -> str:
    result = run_cli(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def failed(*args: str, cwd: Path, code: int = 1) -> str:
    result = run_cli(*args, cwd=cwd)
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_costs_by_model_and_by_user(filled: Path, tmp_path: Path) -> None:
    store = f"duckdb:///{filled}"
    by_model = ok("costs", "--store", store, cwd=tmp_path)
    assert "Cost by model_id since 24h" in by_model
    line = next(line for line in by_model.splitlines() if "gpt-4o" in line)
    assert "$0.015000" in line  # 2 x (1000 x $2.50/M + 500 x $10/M)
    unknown = next(line for line in by_model.splitlines() if "our-own-model" in line)
    assert "unpriced" in unknown
    assert "total $0.015000 over 3 calls (1 unpriced, 0 with estimated tokens)" in by_model

    by_user = ok("costs", "--group-by", "user_id,day", "--store", store, cwd=tmp_path)
    assert "alice" in by_user and "bob" in by_user

    breakdown = ok(
        "costs", "breakdown", "--by", "user", "--limit", "1", "--store", store, cwd=tmp_path
    )
    assert "Top 1 users by cost" in breakdown
    assert "alice" in breakdown and "bob" not in breakdown


def test_bad_costs_arguments_say_what_is_wrong(filled: Path, tmp_path: Path) -> None:
    store = f"duckdb:///{filled}"
    assert "cannot group costs by 'colour'" in failed(
        "costs", "--group-by", "colour", "--store", store, cwd=tmp_path
    )
    assert "since='last tuesday'" in failed(
        "costs", "--since", "last tuesday", "--store", store, cwd=tmp_path
    )
    assert "invalid choice: 'galaxy'" in failed(
        "costs", "breakdown", "--by", "galaxy", "--store", store, cwd=tmp_path, code=2
    )


def test_forecast_from_daily_history(filled: Path, tmp_path: Path) -> None:
    store = f"duckdb:///{filled}"
    shown = ok(
        "costs",
        "forecast",
        "--model",
        "history-model",
        "--days",
        "7",
        "--store",
        store,
        cwd=tmp_path,
    )
    assert "Daily cost forecast (model=history-model, holt_winters_weekly)" in shown
    assert "backtest MAPE:" in shown
    assert shown.count("$") >= 21  # 7 days x (cost, lower, upper)
    assert "nothing to forecast" in failed(
        "costs", "forecast", "--model", "nope", "--store", store, cwd=tmp_path
    )


def test_prices_of_a_model_and_an_unknown_one(tmp_path: Path) -> None:
    shown = ok("costs", "prices", "gpt-4o", cwd=tmp_path)
    assert "$2.500000" in shown and "$10.000000" in shown
    assert "genai-prices" in shown
    missing = run_cli("costs", "prices", "our-own-model", cwd=tmp_path)
    assert missing.returncode == 1
    assert "no price" in missing.stdout and "never $0" in missing.stdout
    assert "name a model" in failed("costs", "prices", cwd=tmp_path, code=2)
    assert "could not download prices from http://127.0.0.1:9/" in failed(
        "costs", "prices", "--update", "--url", "http://127.0.0.1:9/", cwd=tmp_path
    )


def test_recompute_reprices_stored_calls(filled: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(filled.read_bytes())
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "prices:\n"
        "  - model_id: our-own-model\n"
        "    input_cost_per_million_tokens: 1000000\n"
        "    output_cost_per_million_tokens: 2000000\n"
    )
    store = f"duckdb:///{copy}"
    shown = ok("costs", "prices", "our-own-model", "--prices", str(prices), cwd=tmp_path)
    assert "$1.000000" in shown and "user" in shown
    result = ok(
        "costs",
        "recompute",
        "--since",
        "1d",
        "--prices",
        str(prices),
        "--store",
        store,
        cwd=tmp_path,
    )
    assert "repriced 3 model calls: 1 spans changed, 3 cost rows written" in result
    assert "total cost $0.015000 -> $0.017000; unpriced calls 1 -> 0" in result
    with DuckDBSpanStore(copy, read_only=True) as db:
        costs = db.sql("SELECT span_id, cost_micros FROM traces ORDER BY span_id").to_pylist()
        assert [c["cost_micros"] for c in costs] == [7500, 7500, 2000]
        assert (
            db.cost_summary(None, None, ["model_id"], {"model_id": "our-own-model"}).to_pylist()[0][
                "cost_micros"
            ]
            == 2000
        )

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "prices:\n  - model_id: x\n"
        "    input_cost_per_million_tokens: 2.5\n"
        "    output_cost_per_million_tokens: 1\n"
    )
    message = failed(
        "costs", "recompute", "--since", "1d", "--prices", str(bad), "--store", store, cwd=tmp_path
    )
    assert str(bad) in message and "input_cost_per_million_tokens" in message
    assert "--since" in failed("costs", "recompute", "--store", store, cwd=tmp_path, code=2)
