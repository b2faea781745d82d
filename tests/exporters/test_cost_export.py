"""Local mode prices spans: the exporter fills cost_micros and writes the costs table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from opentelemetry.sdk.trace.export import SpanExportResult
from tests._readable_spans import make_span

from pyflare.cost.prices import ModelPrice, PriceBook
from pyflare.cost.processor import CostOutput, CostProcessor
from pyflare.exporters.duckdb import DuckDBSpanExporter
from pyflare.store.duckdb import DuckDBSpanStore

GPT = {
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.provider.name": "openai",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 500,
    "user.id": "alice",
}
UNKNOWN = {
    "gen_ai.request.model": "brand-new-model-xyz",
    "gen_ai.usage.input_tokens": 10,
    "gen_ai.usage.output_tokens": 5,
}


def spans() -> list[Any]:
    return [
        make_span(1, 1, name="chain"),
        make_span(1, 2, parent=1, attributes=GPT),
        make_span(1, 3, parent=1, attributes=UNKNOWN),
    ]


class Broken:
    """A cost processor that fails every batch."""

    def apply(self, batch: pa.Table) -> CostOutput:
        raise RuntimeError("the price data is corrupt")


def exporter(store: DuckDBSpanStore, costs: Any = True) -> DuckDBSpanExporter:
    return DuckDBSpanExporter(lambda: store, costs=costs)


def test_spans_get_their_cost_and_the_costs_table_its_rows(tmp_path: Path) -> None:
    with DuckDBSpanStore(tmp_path / "s.duckdb") as store:
        assert exporter(store).export(spans()) is SpanExportResult.SUCCESS
        stored = store.sql("SELECT span_id, cost_micros FROM traces ORDER BY span_id").to_pylist()
        # gpt-4o at $2.50 / $10 per million tokens; the unknown model has no cost, not $0.
        assert [s["cost_micros"] for s in stored] == [None, 7500, None]
        rows = store.sql(
            "SELECT model_id, user_id, price_source, total_cost_micros FROM costs ORDER BY span_id"
        ).to_pylist()
        assert rows == [
            {
                "model_id": "gpt-4o",
                "user_id": "alice",
                "price_source": "genai-prices",
                "total_cost_micros": 7500,
            },
            {
                "model_id": "brand-new-model-xyz",
                "user_id": None,
                "price_source": None,
                "total_cost_micros": None,
            },
        ]
        flagged = store.sql(
            "SELECT attributes['pyflare.cost.unpriced'] AS f FROM traces WHERE span_id = ?",
            ["0000000000000003"],
        ).to_pylist()
        assert flagged == [{"f": "true"}]
        # Redelivered: nothing is counted twice.
        assert exporter(store).export(spans()) is SpanExportResult.SUCCESS
        summary = store.cost_summary(None, None).to_pylist()[0]
        assert (summary["requests"], summary["cost_micros"], summary["unpriced_requests"]) == (
            2,
            7500,
            1,
        )


def test_a_given_processor_and_prices_are_used(tmp_path: Path) -> None:
    book = PriceBook([ModelPrice("brand-new-model-xyz", None, 1_000_000, 2_000_000)])
    with DuckDBSpanStore(tmp_path / "s.duckdb") as store:
        exporter(store, CostProcessor(book)).export(spans())
        costs = store.sql("SELECT total_cost_micros AS c FROM costs ORDER BY span_id").to_pylist()
        assert costs == [{"c": 7500}, {"c": 20}]  # 10 x $1/M + 5 x $2/M


def test_costs_off_stores_spans_unpriced(tmp_path: Path) -> None:
    with DuckDBSpanStore(tmp_path / "s.duckdb") as store:
        assert exporter(store, costs=False).export(spans()) is SpanExportResult.SUCCESS
        assert store.sql("SELECT count(cost_micros) AS n FROM traces").to_pylist() == [{"n": 0}]
        assert store.cost_summary(None, None).to_pylist()[0]["requests"] == 0


def test_a_failing_processor_never_loses_spans(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with DuckDBSpanStore(tmp_path / "s.duckdb") as store, caplog.at_level(logging.WARNING):
        sink = exporter(store, Broken())
        assert sink.export(spans()) is SpanExportResult.SUCCESS
        assert sink.export([make_span(2, 1, attributes=GPT)]) is SpanExportResult.SUCCESS
        assert store.sql("SELECT count(*) AS n FROM traces").to_pylist() == [{"n": 4}]
    warnings = [r.getMessage() for r in caplog.records if "could not price" in r.getMessage()]
    assert len(warnings) == 1  # once, not per batch
    assert "the price data is corrupt" in warnings[0]


class NoCostWrites(DuckDBSpanStore):
    def write_costs(self, batch: pa.Table) -> int:
        raise OSError("disk full")


def test_a_failing_cost_write_keeps_the_spans(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with NoCostWrites(tmp_path / "s.duckdb") as store, caplog.at_level(logging.WARNING):
        assert exporter(store).export(spans()) is SpanExportResult.SUCCESS
        assert store.sql("SELECT sum(cost_micros) AS c FROM traces").to_pylist() == [{"c": 7500}]
    assert any("not their cost rows" in r.getMessage() for r in caplog.records)


def test_init_prices_what_record_usage_reports(run_python: Any, tmp_path: Path) -> None:
    store = tmp_path / "app.duckdb"
    child = run_python(
        f"""
        import json
        import pyflare

        pyflare.init(service_name="shop", store="duckdb:///{store}")

        @pyflare.trace(name="answer", kind="llm")
        def answer() -> str:
            pyflare.record_usage(input_tokens=2000, output_tokens=100, model="gpt-4o-mini")
            return "ok"

        for user in ("alice", "bob"):
            with pyflare.context(user_id=user, feature_id="search"):
                answer()
        with pyflare.span("mystery", kind="llm"):
            pyflare.set_model("in-house-model-7", inference_type="llm")
            pyflare.record_usage(input_tokens=5, output_tokens=5)
        by_model = pyflare.costs("model_id", since="1h")
        out = by_model[["model_id", "requests", "cost_micros", "cost_usd", "unpriced_requests"]]
        print("RESULT", json.dumps(out.astype(object).where(out.notna(), None).to_dict("records")))
        """
    )
    rows = {r["model_id"]: r for r in run_python.result(child.stdout)}
    # gpt-4o-mini: $0.15 / $0.60 per million tokens -> 300 + 60 micro-dollars a call.
    assert rows["gpt-4o-mini"]["requests"] == 2
    assert rows["gpt-4o-mini"]["cost_micros"] == 720
    assert rows["gpt-4o-mini"]["cost_usd"] == pytest.approx(0.00072)
    assert rows["in-house-model-7"]["cost_micros"] is None
    assert rows["in-house-model-7"]["unpriced_requests"] == 1
    with DuckDBSpanStore(store, read_only=True) as db:
        users = db.cost_summary(None, None, ["user_id", "feature_id"]).to_pylist()
    assert {(u["user_id"], u["feature_id"], u["cost_micros"]) for u in users} == {
        ("alice", "search", 360),
        ("bob", "search", 360),
        (None, None, None),
    }
