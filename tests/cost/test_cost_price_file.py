"""User prices from YAML: the spec's ModelPricing entries, history, and every bad file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pyflare.cost.prices import PriceBook
from pyflare.errors import ConfigError

NS = 1_000_000_000
OCT = int(datetime(2026, 10, 15, tzinfo=UTC).timestamp()) * NS
NOV = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) * NS


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return path


def test_price_change_mid_period(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
prices:
  - model_id: acme-llm
    provider: acme
    input_cost_per_million_tokens: 1000000
    output_cost_per_million_tokens: 2000000
    effective_from: 2026-10-01
  - model_id: acme-llm
    provider: acme
    input_cost_per_million_tokens: 500000
    output_cost_per_million_tokens: 1000000
    effective_from: 2026-11-01T00:00:00Z
aliases:
  acme-prod: acme-llm
""",
    )
    book = PriceBook.from_yaml(path)
    october = book.cost(
        "acme-llm", provider="acme", input_tokens=1_000, output_tokens=1_000, at_ns=OCT
    )
    november = book.cost(
        "acme-prod", provider="acme", input_tokens=1_000, output_tokens=1_000, at_ns=NOV
    )
    assert october is not None and november is not None
    assert october.total_micros == 3_000
    assert november.total_micros == 1_500
    assert book.lookup("acme-llm", at_ns=NOV - 1) == october.price
    assert book.lookup("acme-llm", at_ns=OCT - 30 * 86_400 * NS) is None


def test_user_price_over_catalogue_and_catalogue_off(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
- model_id: gpt-4o
  input_cost_per_million_tokens: 1
  output_cost_per_million_tokens: 1
  cached_input_cost_per_million_tokens: 0
  request_cost_micros: 7
""",
    )
    price = PriceBook.from_yaml(path).lookup("gpt-4o", "openai", at_ns=NOV)
    assert price is not None and price.source == "user" and price.request_micros == 7
    only_mine = write(tmp_path, "catalogue: false\nprices: []\n")
    assert PriceBook.from_yaml(only_mine).lookup("gpt-4o", at_ns=NOV) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prices: [\n", "not valid YAML"),
        ("just a string", "expected a mapping"),
        ("prices: {a: 1}", "'prices' must be a list"),
        ("extra: 1", "unknown key"),
        ("prices: [1]", r"entry 0: must be a mapping"),
        (
            "prices: [{model_id: m, input_cost_per_million_tokens: 1}]",
            r"entry 0 \(m\): missing required field\(s\) \['output_cost_per_million_tokens'\]",
        ),
        (
            "prices: [{model_id: m, input_cost_per_million_tokens: 2.5, output_cost_per_million_tokens: 1}]",
            "input_cost_per_million_tokens must be a whole number of micro-dollars.*2500000",
        ),
        (
            "prices: [{model_id: m, input_cost_per_million_tokens: -1, output_cost_per_million_tokens: 1}]",
            "must not be negative",
        ),
        (
            "prices: [{model_id: m, input_cost_per_million_tokens: 1, output_cost_per_million_tokens: 1, effective_from: soon}]",
            "effective_from must be a date",
        ),
        (
            "prices: [{model_id: m, input_cost_per_million_tokens: 1, output_cost_per_million_tokens: 1, colour: red}]",
            r"unknown field\(s\) \['colour'\]",
        ),
        (
            "prices: [{model_id: '', input_cost_per_million_tokens: 1, output_cost_per_million_tokens: 1}]",
            "model_id must be a non-empty string",
        ),
        (
            "prices:\n - {model_id: m, input_cost_per_million_tokens: 1, output_cost_per_million_tokens: 1}\n"
            " - {model_id: m, input_cost_per_million_tokens: 2, output_cost_per_million_tokens: 2}",
            "entry 1 .*same model, provider and effective_from as entry 0",
        ),
        ("aliases: [a]", "'aliases' must map names"),
        ("catalogue: maybe", "'catalogue' must be true or false"),
    ],
)
def test_bad_files_name_file_entry_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        PriceBook.from_yaml(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="can't be read"):
        PriceBook.from_yaml(tmp_path / "nope.yaml")
