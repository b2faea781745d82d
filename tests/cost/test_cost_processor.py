"""The cost processor on Arrow span batches: costs, flags, cost rows, recompute."""

from __future__ import annotations

import logging
import random
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pyflare.cost._pricing import price_rows
from pyflare.cost.attribution import Attribution
from pyflare.cost.prices import ModelPrice, PriceBook
from pyflare.cost.processor import CostProcessor
from pyflare.records import COST_SCHEMA, SPAN_SCHEMA, from_readable_spans, to_pylist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _readable_spans import T0, make_span

LLM = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}


def batch(*attribute_sets: dict[str, Any], resource: dict[str, Any] | None = None) -> pa.Table:
    return from_readable_spans(
        [
            make_span(1, i + 1, attributes=attrs, resource=resource)
            for i, attrs in enumerate(attribute_sets)
        ]
    )


def llm(model: str = "gpt-4o", i: int = 1000, o: int = 500, **extra: Any) -> dict[str, Any]:
    return {
        **LLM,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": i,
        "gen_ai.usage.output_tokens": o,
        **extra,
    }


def test_prices_calls_and_builds_cost_rows() -> None:
    out = CostProcessor().apply(
        batch(
            llm(**{"gen_ai.usage.cache_read.input_tokens": 200, "user.id": "u1"}),
            {"foo": "bar"},
        )
    )
    assert out.spans.schema == SPAN_SCHEMA
    assert out.costs.schema == COST_SCHEMA
    assert out.spans.column("cost_micros").to_pylist() == [7_250, None]
    (row,) = out.costs.to_pylist()
    assert row["model_id"] == "gpt-4o" and row["provider"] == "openai"
    assert (row["input_cost_micros"], row["output_cost_micros"]) == (2_250, 5_000)
    assert row["price_source"] == "genai-prices" and row["price_model"] == "gpt-4o"
    assert row["cached_input_tokens"] == 200 and row["user_id"] == "u1"
    assert row["timestamp"].value == T0 and row["tokens_estimated"] is False


def test_matches_scalar_cost_on_random_rows() -> None:
    rng = random.Random(3)
    models = ["gpt-4o", "gemini-1.5-pro", "claude-3-5-haiku-20241022", "deepseek-chat", "nope"]
    n = 3_000
    rows = [
        (
            rng.choice(models),
            rng.randint(0, 300_000),
            rng.randint(0, 5_000),
            rng.randint(0, 1_000),
            T0 + rng.randint(0, 86_400) * 1_000_000_000,
        )
        for _ in range(n)
    ]
    book = PriceBook()
    priced = price_rows(
        book,
        model=pa.array([r[0] for r in rows]),
        provider=pa.nulls(n, pa.string()),
        host=pa.nulls(n, pa.string()),
        at_ns=pa.array([r[4] for r in rows], pa.int64()),
        input_tokens=pa.array([r[1] for r in rows], pa.int64()),
        output_tokens=pa.array([r[2] for r in rows], pa.int64()),
        cached_tokens=pa.array([min(r[3], r[1]) for r in rows], pa.int64()),
    )
    for i, (model, tin, tout, cached, at) in enumerate(rows):
        cost = book.cost(
            model,
            input_tokens=tin,
            output_tokens=tout,
            cached_input_tokens=min(cached, tin),
            at_ns=at,
        )
        expected = (
            None if cost is None else (cost.input_micros, cost.output_micros, cost.total_micros)
        )
        got = (priced.input[i].as_py(), priced.output[i].as_py(), priced.total[i].as_py())
        assert got == (expected or (None, None, None)), (model, tin, tout, cached, at)


def test_huge_counts_priced_exactly_without_overflow() -> None:
    book = PriceBook([ModelPrice("big", None, 10**12, 10**12)], use_catalogue=False)
    priced = price_rows(
        book,
        model=pa.array(["big"]),
        provider=pa.nulls(1, pa.string()),
        host=pa.nulls(1, pa.string()),
        at_ns=pa.array([1], pa.int64()),
        input_tokens=pa.array([10**9], pa.int64()),
        output_tokens=pa.array([3], pa.int64()),
        cached_tokens=pa.nulls(1, pa.int64()),
    )
    assert priced.total.to_pylist() == [10**15 + 3 * 10**6]


def test_unknown_model_null_flag_counter_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    processor = CostProcessor()
    with caplog.at_level(logging.WARNING, logger="pyflare.cost.processor"):
        first = processor.apply(batch(llm("in-house-7b"), llm("in-house-7b"), llm()))
        processor.apply(batch(llm("in-house-7b")))
    assert first.spans.column("cost_micros").to_pylist()[:2] == [None, None]
    assert first.costs.column("total_cost_micros").to_pylist()[:2] == [None, None]
    rows = to_pylist(first.spans)
    assert rows[0]["attributes"]["pyflare.cost.unpriced"] == "true"
    assert "pyflare.cost.unpriced" not in rows[2]["attributes"]
    assert processor.unpriced_total == 3
    assert sum("in-house-7b" in r.message for r in caplog.records) == 1


def test_user_given_cost_wins() -> None:
    out = CostProcessor().apply(batch(llm(**{"pyflare.cost.micros": 42})))
    (row,) = out.costs.to_pylist()
    assert row["total_cost_micros"] == 42 and row["price_source"] == "span"
    assert row["input_cost_micros"] is None
    assert out.spans.column("cost_micros").to_pylist() == [42]


def test_cost_priced_by_an_instrumentor_keeps_its_source() -> None:
    cost = PriceBook().cost("gpt-4o", input_tokens=1000, output_tokens=500)
    assert cost is not None
    out = CostProcessor().apply(batch(llm(**cost.span_attributes())))
    (row,) = out.costs.to_pylist()
    assert row["price_source"] == "genai-prices" and row["total_cost_micros"] == cost.total_micros
    assert row["input_cost_micros"] == cost.input_micros


def test_streaming_usage_from_final_chunk_and_missing_usage_estimated() -> None:
    # A streamed call whose usage came with the final chunk looks like any other call;
    # one without usage is counted from its (uncut) previews and flagged.
    spans = batch(
        llm(i=25, o=40),
        {
            **LLM,
            "gen_ai.request.model": "gpt-4o",
            "pyflare.input.preview": "Say hi",
            "pyflare.output.preview": "hi",
        },
        {**LLM, "gen_ai.request.model": "gpt-4o", "pyflare.input.preview": "x" * 1000},
    )
    out = CostProcessor().apply(spans)
    rows = to_pylist(out.spans)
    assert rows[0]["cost_micros"] == 463  # 25 x 2.5 + 40 x 10 = 462.5 -> 463
    assert rows[1]["input_tokens"] == 2 and rows[1]["output_tokens"] == 1
    assert rows[1]["attributes"]["pyflare.tokens.estimated"] == "true"
    assert rows[1]["cost_micros"] == 15  # 5 + 10
    assert rows[2]["input_tokens"] is None and rows[2]["cost_micros"] is None  # cut preview
    assert rows[2]["attributes"]["pyflare.cost.unpriced"] == "true"
    assert out.costs.column("tokens_estimated").to_pylist() == [False, True, False]


def test_embedding_total_only() -> None:
    out = CostProcessor().apply(
        batch(
            {
                "openinference.span.kind": "EMBEDDING",
                "embedding.model_name": "text-embedding-3-small",
                "llm.token_count.total": 1000,
            }
        )
    )
    (row,) = out.costs.to_pylist()
    assert row["input_tokens"] == 1000 and row["total_cost_micros"] == 20


def test_azure_alias_and_host_detection() -> None:
    book = PriceBook(aliases={"prod-chat": "gpt-4o"})
    out = CostProcessor(book).apply(
        batch(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "prod-chat",
                "server.address": "myco.openai.azure.com",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 0,
            }
        )
    )
    (row,) = out.costs.to_pylist()
    assert row["provider"] == "azure" and row["total_cost_micros"] == 2_500


def test_recompute_reprices_computed_costs_only(tmp_path: Path) -> None:
    first = CostProcessor().apply(batch(llm(), llm(**{"pyflare.cost.micros": 1}), llm("acme")))
    cheaper = PriceBook(
        [
            ModelPrice("gpt-4o", None, 1_000_000, 1_000_000),
            ModelPrice("acme", None, 1_000_000, 1_000_000),
        ]
    )
    again = CostProcessor(cheaper).recompute(first.spans)
    assert again.spans.column("cost_micros").to_pylist() == [1_500, 1, 1_500]
    assert again.costs.column("price_source").to_pylist() == ["user", "span", "user"]
    rows = to_pylist(again.spans)
    assert "pyflare.cost.unpriced" not in rows[2]["attributes"]
    # apply() on already-priced spans gives the same answer as the first pass.
    assert CostProcessor().apply(first.spans).costs.equals(first.costs)


def test_attribution_defaults_and_config() -> None:
    spans = batch(
        llm(
            **{"user.id": "u", "gen_ai.conversation.id": "c", "pyflare.team": "t", "tenant": "acme"}
        ),
        resource={"deployment.environment": "staging"},
    )
    (row,) = CostProcessor().apply(spans).costs.to_pylist()
    assert (row["user_id"], row["session_id"], row["team"], row["environment"]) == (
        "u",
        "c",
        "t",
        "staging",
    )
    custom = Attribution(user_keys=["tenant"], dimension_keys=["tenant", "absent"])
    (row,) = CostProcessor(attribution=custom).apply(spans).costs.to_pylist()
    assert row["user_id"] == "acme" and dict(row["dimensions"]) == {"tenant": "acme"}


def test_attribution_scalar_matches() -> None:
    row = Attribution(dimension_keys=["x"]).from_mappings(
        {"session.id": "s", "x": 1}, {"deployment.environment.name": "prod"}
    )
    assert row["session_id"] == "s" and row["environment"] == "prod"
    assert row["dimensions"] == {"x": "1"}


def test_attribution_bad_config() -> None:
    from pyflare.errors import ConfigError

    with pytest.raises(ConfigError, match="user_keys must be a list"):
        Attribution(user_keys="user.id")
    with pytest.raises(ConfigError, match="unknown field"):
        Attribution.from_mapping({"users": ["a"]})
    with pytest.raises(ConfigError, match="non-empty string"):
        Attribution.from_mapping({"team_keys": [""]})


def test_empty_and_modelless_batches() -> None:
    out = CostProcessor().apply(SPAN_SCHEMA.empty_table())
    assert out.costs.num_rows == 0 and out.spans.num_rows == 0
    plain = batch({"a": "b"})
    assert CostProcessor().apply(plain).spans.equals(plain)


def test_bad_batches() -> None:
    with pytest.raises(TypeError, match="pyarrow Table"):
        CostProcessor().apply([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['span_id'"):
        CostProcessor().apply(batch(llm()).drop_columns(["span_id"]))


def test_bad_token_attributes_are_ignored() -> None:
    out = CostProcessor().apply(
        batch(
            llm(
                **{
                    "gen_ai.usage.cache_read.input_tokens": "lots",
                    "pyflare.usage.reasoning_tokens": "-3",
                }
            )
        )
    )
    (row,) = out.costs.to_pylist()
    assert row["cached_input_tokens"] is None and row["reasoning_tokens"] is None
    assert row["total_cost_micros"] == 7_500


def test_million_tiny_calls_sum_exactly() -> None:
    n = 1_000_000
    book = PriceBook([ModelPrice("tiny", None, 2_500_000, 10_000_000)], use_catalogue=False)
    priced = price_rows(
        book,
        model=pa.array(["tiny"] * n),
        provider=pa.nulls(n, pa.string()),
        host=pa.nulls(n, pa.string()),
        at_ns=pa.array([T0] * n, pa.int64()),
        input_tokens=pa.array([101] * n, pa.int64()),
        output_tokens=pa.array([3] * n, pa.int64()),
        cached_tokens=pa.nulls(n, pa.int64()),
    )
    # Each call: 101 x 2.5 = 252.5 -> 253, 3 x 10 = 30: 283 micro-dollars, exactly.
    assert pa.compute.sum(priced.total).as_py() == 283 * n
