"""The server's cost stage: priced batches, cost rows written, failures never lose spans."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tests._readable_spans import make_span

from pyflare.cost.processor import CostOutput
from pyflare.records import METRIC_SCHEMA, from_readable_spans
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.pipeline.cost import CostStage
from pyflare_server.pipeline.processors import Processor

GPT = {
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.provider.name": "openai",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 500,
}


def batch() -> pa.Table:
    return from_readable_spans([make_span(1, 1), make_span(1, 2, parent=1, attributes=GPT)])


class Broken:
    def apply(self, batch: pa.Table) -> CostOutput:
        raise RuntimeError("boom")


class NoCostWrites(DuckDBSpanStore):
    def write_costs(self, batch: pa.Table) -> int:
        raise OSError("disk full")


def test_the_stage_prices_the_batch_and_writes_cost_rows(tmp_path: Path) -> None:
    with DuckDBSpanStore(tmp_path / "s.duckdb") as store:
        stage = CostStage(store)
        assert isinstance(stage, Processor)
        out = stage.process("traces", batch())
        assert out.column("cost_micros").to_pylist() == [None, 7500]
        assert stage.process("traces", batch()).num_rows == 2  # redelivered
        assert store.cost_summary(None, None).to_pylist()[0]["requests"] == 1
        assert (stage.counters.batches, stage.counters.cost_rows, stage.counters.errors) == (
            2,
            2,
            0,
        )
        metrics = METRIC_SCHEMA.empty_table()
        assert stage.process("metrics", metrics) is metrics
        assert "cost_rows" in repr(stage)


@pytest.mark.parametrize(
    ("store_class", "processor", "priced"),
    [(DuckDBSpanStore, Broken(), False), (NoCostWrites, None, True)],
)
def test_failures_are_counted_and_the_spans_go_on(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    store_class: type[DuckDBSpanStore],
    processor: Any,
    priced: bool,
) -> None:
    with store_class(tmp_path / "s.duckdb") as store, caplog.at_level(logging.ERROR):
        stage = CostStage(store, processor)
        spans = batch()
        out = stage.process("traces", spans)
        assert out.num_rows == 2
        assert out.column("cost_micros").to_pylist() == ([None, 7500] if priced else [None, None])
        assert stage.counters.errors == 1
    assert any(r.name == "pyflare_server.pipeline.cost" for r in caplog.records)
