"""Prices: published per-million prices, the integer arithmetic, user prices and history."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import genai_prices
import pytest

from pyflare.cost.prices import ModelPrice, PriceBook, detect_provider
from pyflare.errors import InvalidArgumentError

# 2026-01-01 10:00 UTC: DeepSeek's standard (not off-peak) hours.
AT = int(datetime(2026, 1, 1, 10, tzinfo=UTC).timestamp()) * 1_000_000_000

# Providers' published list prices, USD per million tokens (input, output), as their
# pricing pages stated them in 2025 (this machine has no web access, so they were not
# re-read on a later date); each is checked against the offline genai-prices 0.2.3
# snapshot below (test_table_matches_genai_prices), priced at 2026-01-01 (AT).
PUBLISHED = [
    ("openai", "gpt-4o", 2.5, 10),
    ("openai", "gpt-4o-mini", 0.15, 0.6),
    ("openai", "gpt-4-turbo", 10, 30),
    ("openai", "gpt-3.5-turbo", 0.5, 1.5),
    ("openai", "o1", 15, 60),
    ("openai", "o3-mini", 1.1, 4.4),
    ("openai", "gpt-4.1", 2, 8),
    ("openai", "gpt-4.1-mini", 0.4, 1.6),
    ("openai", "text-embedding-3-small", 0.02, 0),
    ("openai", "text-embedding-3-large", 0.13, 0),
    ("anthropic", "claude-3-5-sonnet-20241022", 3, 15),
    ("anthropic", "claude-3-5-haiku-20241022", 0.8, 4),
    ("anthropic", "claude-3-opus-20240229", 15, 75),
    ("anthropic", "claude-3-haiku-20240307", 0.25, 1.25),
    ("google", "gemini-1.5-pro", 1.25, 5),
    ("google", "gemini-1.5-flash", 0.075, 0.3),
    ("google", "gemini-2.0-flash", 0.1, 0.4),
    ("mistral", "mistral-large-latest", 2, 6),
    ("mistral", "mistral-small-latest", 0.1, 0.3),
    ("mistral", "codestral-latest", 0.3, 0.9),
    ("cohere", "command-r-plus", 2.5, 10),
    ("cohere", "command-r", 0.15, 0.6),
    ("deepseek", "deepseek-chat", 0.27, 1.1),
    ("deepseek", "deepseek-reasoner", 0.55, 2.19),
    ("x-ai", "grok-2-1212", 2, 10),
]
USAGE = (12_345, 678)


def expected_micros(price_per_mtok: float, tokens: int) -> int:
    exact = Decimal(str(price_per_mtok)) * tokens  # micro-dollars: $/Mtok x tokens
    return int(exact.to_integral_value(rounding=ROUND_HALF_UP))


@pytest.mark.parametrize(("provider", "model", "usd_in", "usd_out"), PUBLISHED)
def test_published_prices(provider: str, model: str, usd_in: float, usd_out: float) -> None:
    book = PriceBook()
    cost = book.cost(
        model, provider=provider, input_tokens=USAGE[0], output_tokens=USAGE[1], at_ns=AT
    )
    assert cost is not None
    assert cost.input_micros == expected_micros(usd_in, USAGE[0])
    assert cost.output_micros == expected_micros(usd_out, USAGE[1])
    assert cost.total_micros == cost.input_micros + cost.output_micros
    assert cost.price.source == "genai-prices"


def test_table_covers_enough() -> None:
    assert len(PUBLISHED) >= 20
    assert len({provider for provider, *_ in PUBLISHED}) >= 5


@pytest.mark.parametrize(("provider", "model", "usd_in", "usd_out"), PUBLISHED)
def test_table_matches_genai_prices(
    provider: str, model: str, usd_in: float, usd_out: float
) -> None:
    calc = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=USAGE[0], output_tokens=USAGE[1]),
        model,
        provider_id=provider,
        genai_request_timestamp=datetime.fromtimestamp(AT / 1e9, tz=UTC),
    )
    ours = PriceBook().cost(
        model, provider=provider, input_tokens=USAGE[0], output_tokens=USAGE[1], at_ns=AT
    )
    assert ours is not None
    assert abs(Decimal(ours.total_micros) - calc.total_price * 1_000_000) <= 1


def test_cached_tokens_billed_at_cached_rate() -> None:
    cost = PriceBook().cost(
        "gpt-4o", input_tokens=10_000, output_tokens=1_000, cached_input_tokens=4_000, at_ns=AT
    )
    assert cost is not None
    # 6000 x $2.50 + 4000 x $1.25 per million; 1000 x $10 per million.
    assert (cost.input_micros, cost.output_micros, cost.total_micros) == (20_000, 10_000, 30_000)


def test_reasoning_tokens_are_part_of_output() -> None:
    book = PriceBook()
    plain = book.cost("o3-mini", input_tokens=100, output_tokens=2_000, at_ns=AT)
    reasoning = book.cost(
        "o3-mini", input_tokens=100, output_tokens=2_000, reasoning_tokens=1_500, at_ns=AT
    )
    assert plain == reasoning


def test_tiered_price_above_threshold() -> None:
    book = PriceBook()
    small = book.cost("gemini-1.5-pro", input_tokens=100_000, output_tokens=1_000, at_ns=AT)
    large = book.cost("gemini-1.5-pro", input_tokens=200_000, output_tokens=1_000, at_ns=AT)
    assert small is not None and large is not None
    assert small.input_micros == 125_000  # $1.25/M
    assert large.input_micros == 500_000  # $2.50/M above 128k
    assert large.output_micros == 10_000  # $10/M above 128k


def test_time_of_day_price() -> None:
    book = PriceBook()
    off_peak = AT - 10 * 3600 * 1_000_000_000 + 18 * 3600 * 1_000_000_000  # 18:00 UTC
    peak = book.lookup("deepseek-chat", at_ns=AT)
    night = book.lookup("deepseek-chat", at_ns=off_peak)
    assert peak is not None and night is not None
    assert night.input_micros_per_mtok < peak.input_micros_per_mtok


def test_rounding_half_up_per_component() -> None:
    price = ModelPrice("m", None, input_micros_per_mtok=2_500_000, output_micros_per_mtok=1_500_000)
    cost = price.cost(1, 1)  # 2.5 and 1.5 micro-dollars
    assert (cost.input_micros, cost.output_micros, cost.total_micros) == (3, 2, 5)
    assert price.cost(0, 0).total_micros == 0


def test_million_tiny_calls_sum_exactly() -> None:
    price = ModelPrice(
        "m", None, input_micros_per_mtok=2_500_000, output_micros_per_mtok=10_000_000
    )
    total = sum(price.cost(100, 10).total_micros for _ in range(1_000_000))
    # 100 x 2.5 + 10 x 10 = 350 micro-dollars per call, exactly.
    assert total == 350_000_000


def test_request_fee_added_to_total() -> None:
    price = ModelPrice("m", None, 1_000_000, 1_000_000, request_micros=5_000)
    cost = price.cost(1_000, 1_000)
    assert (cost.input_micros, cost.output_micros, cost.total_micros) == (1_000, 1_000, 7_000)


def test_unknown_model_is_none_never_zero() -> None:
    book = PriceBook()
    assert book.lookup("in-house-model-x") is None
    assert book.cost("in-house-model-x", input_tokens=10, output_tokens=10) is None


def test_self_hosted_provider_is_unpriced() -> None:
    assert PriceBook().lookup("gpt-4o", provider="ollama") is None


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("openai/gpt-4o-2024-08-06", None),
        ("gpt-4o-2024-08-06", "openai"),
        ("GPT-4o", None),
        ("gpt-4o-mini-2024-07-18", None),
    ],
)
def test_name_normalisation(model: str, provider: str | None) -> None:
    price = PriceBook().lookup(model, provider, at_ns=AT)
    assert price is not None
    assert price.model_id in {"gpt-4o", "gpt-4o-mini"}


def test_bedrock_and_vertex_names() -> None:
    book = PriceBook()
    bedrock = book.lookup("anthropic.claude-3-5-sonnet-20240620-v1:0", "aws.bedrock", at_ns=AT)
    vertex = book.lookup("claude-3-5-sonnet@20240620", "gcp.vertex_ai", at_ns=AT)
    assert bedrock is not None and bedrock.provider == "aws"
    assert vertex is not None and vertex.provider == "google"
    assert bedrock.input_micros_per_mtok == vertex.input_micros_per_mtok == 3_000_000


@pytest.mark.parametrize(
    ("model", "attr", "url", "expected"),
    [
        ("gpt-4o", "openai", None, "openai"),
        ("gpt-4o", "azure.ai.openai", None, "azure"),
        ("gpt-4o", None, "https://my-res.openai.azure.com/openai", "azure"),
        ("llama3", None, "http://localhost:11434/v1", "ollama"),
        ("claude-3-5-haiku-20241022", None, None, "anthropic"),
        ("anthropic/claude-3-5-haiku", None, None, "anthropic"),
        ("x", "mistral_ai", None, "mistral"),
        ("x", "gcp.gemini", None, "google"),
        ("text-embedding-3-small", None, None, "openai"),
        ("some-unknown-model", None, None, None),
    ],
)
def test_detect_provider(
    model: str, attr: str | None, url: str | None, expected: str | None
) -> None:
    assert detect_provider(model, attr, url) == expected


def test_azure_deployment_alias() -> None:
    book = PriceBook(aliases={"prod-chat-deployment": "gpt-4o"})
    price = book.lookup("prod-chat-deployment", "azure.ai.openai", at_ns=AT)
    assert price is not None and price.model_id == "gpt-4o" and price.provider == "azure"
    assert PriceBook().lookup("prod-chat-deployment", "azure.ai.openai") is None


def test_user_price_wins_and_keeps_history() -> None:
    nov = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
    book = PriceBook([ModelPrice("gpt-4o", "openai", 2_000_000, 8_000_000, effective_from_ns=nov)])
    before = book.lookup("gpt-4o", at_ns=nov - 1)
    after = book.lookup("gpt-4o", at_ns=nov)
    assert before is not None and before.source == "genai-prices"
    assert after is not None and after.source == "user"
    assert after.input_micros_per_mtok == 2_000_000


def test_user_only_price_not_before_its_date() -> None:
    book = PriceBook([ModelPrice("ours", None, 1, 1, effective_from_ns=10)], use_catalogue=False)
    assert book.lookup("ours", at_ns=9) is None
    assert book.lookup("ours", at_ns=10) is not None
    assert book.lookup("gpt-4o", at_ns=10) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_tokens": -1, "output_tokens": 0}, "input_tokens"),
        ({"input_tokens": 1.5, "output_tokens": 0}, "input_tokens"),
        ({"input_tokens": 1, "output_tokens": True}, "output_tokens"),
        ({"input_tokens": 1, "output_tokens": 1, "cached_input_tokens": 2}, "cached_input_tokens"),
        ({"input_tokens": 1, "output_tokens": 1, "reasoning_tokens": 2}, "reasoning_tokens"),
    ],
)
def test_cost_bad_counts(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        PriceBook().cost("gpt-4o", **kwargs)  # type: ignore[arg-type]


def test_bad_user_price_and_alias() -> None:
    with pytest.raises(InvalidArgumentError, match="input_micros_per_mtok"):
        PriceBook([ModelPrice("m", None, -1, 0)])
    with pytest.raises(InvalidArgumentError, match="ModelPrice"):
        PriceBook(["gpt-4o"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="aliases"):
        PriceBook(aliases={"x": ""})
    with pytest.raises(InvalidArgumentError, match="model_id"):
        PriceBook().lookup("")


def test_default_book_is_shared_and_replaceable() -> None:
    first = PriceBook.default()
    assert PriceBook.default() is first
    mine = PriceBook(use_catalogue=False)
    PriceBook.set_default(mine)
    try:
        assert PriceBook.default() is mine
    finally:
        PriceBook.set_default(None)
    assert PriceBook.default() is not mine


def test_span_attributes_of_a_cost() -> None:
    cost = PriceBook().cost("gpt-4o", input_tokens=1_000, output_tokens=0, at_ns=AT)
    assert cost is not None
    assert cost.span_attributes() == {
        "pyflare.cost.micros": 2_500,
        "pyflare.cost.source": "genai-prices",
        "pyflare.cost.price_model": "gpt-4o",
    }
