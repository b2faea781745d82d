"""The built-in price catalogue: genai-prices' offline snapshot, read into PyFlare prices.

genai-prices ships its data in the wheel (no network). A model's prices there are a
standard price or a list of conditional prices (from a start date; within UTC
hours of the day), each with per-million-token rates that may be tiered by the
call's input tokens. :func:`catalogue_schedule` turns one model into PyFlare's
price schedule: :class:`~pyflare.cost.prices.ModelPrice` entries in integer
micro-dollars per million tokens, with the same conditions.

:func:`update_catalogue` downloads the latest data, only when called.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyflare.errors import ConfigError, PyFlareError

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo, Provider

    from pyflare.cost.prices import ModelPrice

__all__ = [
    "catalogue_generation",
    "catalogue_providers",
    "catalogue_schedule",
    "find_catalogue_model",
    "load_catalogue_file",
    "to_micros",
    "update_catalogue",
]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
# Bumped whenever the catalogue changes, so price books drop what they resolved.
_generation = 0


def catalogue_generation() -> int:
    """A number that changes whenever the catalogue in use changes."""
    return _generation


def _snapshot() -> DataSnapshot:
    from genai_prices import data_snapshot

    return data_snapshot.get_snapshot()


def catalogue_providers() -> dict[str, str]:
    """Provider id -> its API URL pattern, for every provider the catalogue knows."""
    return {provider.id: provider.api_pattern for provider in _snapshot().providers}


def to_micros(usd: Decimal) -> int:
    """Dollars as integer micro-dollars, rounded half up."""
    return int((usd * 1_000_000).to_integral_value(rounding=ROUND_HALF_UP))


def find_catalogue_model(
    model_ref: str, provider_id: str | None, base_url: str | None
) -> tuple[Provider, ModelInfo] | None:
    """The catalogue's provider and model for a name, or None when it has none.

    With neither a provider nor a base URL, a name no provider claims by its
    pattern is looked for among the model makers' own price lists, then everyone's.
    """
    snapshot = _snapshot()
    try:
        return snapshot.find_provider_model(model_ref, None, provider_id, base_url)
    except LookupError:
        if provider_id is not None or base_url is not None:
            return None
    ranked = sorted(
        snapshot.providers,
        key=lambda p: _FIRST_PARTY.index(p.id) if p.id in _FIRST_PARTY else len(_FIRST_PARTY),
    )
    for provider in ranked:
        model = provider.find_model(model_ref)
        if model is not None:
            return provider, model
    return None


# Providers that make the models they sell: a bare model name is theirs first.
_FIRST_PARTY = (
    "openai",
    "anthropic",
    "google",
    "mistral",
    "cohere",
    "deepseek",
    "x-ai",
    "voyageai",
    "moonshotai",
    "zai",
    "minimax",
)


def _rate(value: Any) -> tuple[int, tuple[tuple[int, int], ...]] | None:
    """A per-million rate as (base micros, ((input-token threshold, micros), ...))."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return to_micros(value), ()
    base = getattr(value, "base", None)
    tiers = getattr(value, "tiers", None)
    if isinstance(base, Decimal) and tiers is not None:
        return to_micros(base), tuple((int(t.start), to_micros(t.price)) for t in tiers)
    return None


def _seconds_of_day(value: Any) -> int:
    moment = datetime.combine(datetime(1970, 1, 1).date(), value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _conditions(model: ModelInfo) -> list[tuple[int, tuple[int, int] | None, Any]]:
    """(start ns, UTC seconds-of-day window or None, genai-prices ModelPrice), in list order."""
    prices = model.prices
    if not isinstance(prices, list):
        return [(0, None, prices)]
    out: list[tuple[int, tuple[int, int] | None, Any]] = []
    for conditional in prices:
        constraint = conditional.constraint
        start = getattr(constraint, "start_date", None)
        start_time = getattr(constraint, "start_time", None)
        end_time = getattr(constraint, "end_time", None)
        if constraint is None:
            out.append((0, None, conditional.prices))
        elif start is not None:
            moment = datetime(start.year, start.month, start.day, tzinfo=UTC)
            out.append((int(moment.timestamp()) * 1_000_000_000, None, conditional.prices))
        elif start_time is not None and end_time is not None:
            window = (_seconds_of_day(start_time), _seconds_of_day(end_time))
            out.append((0, window, conditional.prices))
        # any other kind of condition: not one PyFlare can evaluate; left out
    return out


def catalogue_schedule(provider: Provider, model: ModelInfo) -> tuple[ModelPrice, ...]:
    """The model's prices in PyFlare's terms, in the catalogue's order.

    The price of a call is the last one whose conditions hold (from its start date,
    within its hours), else the first: genai-prices' rule, see
    :func:`pyflare.cost.prices.price_at`. Empty when the model has no per-token
    price (image or audio only models).
    """
    from pyflare.cost.prices import ModelPrice

    schedule: list[ModelPrice] = []
    for start_ns, window, raw in _conditions(model):
        fields = raw.__dict__
        input_rate = _rate(fields.get("input_mtok"))
        output_rate = _rate(fields.get("output_mtok"))
        if input_rate is None and output_rate is None:
            continue
        cached_rate = _rate(fields.get("cache_read_mtok"))
        requests = fields.get("requests_kcount")
        request_micros = to_micros(requests / 1000) if isinstance(requests, Decimal) else 0
        schedule.append(
            ModelPrice(
                model_id=model.id,
                provider=provider.id,
                input_micros_per_mtok=input_rate[0] if input_rate else 0,
                output_micros_per_mtok=output_rate[0] if output_rate else 0,
                cached_input_micros_per_mtok=cached_rate[0] if cached_rate else None,
                request_micros=request_micros,
                effective_from_ns=start_ns,
                source="genai-prices",
                input_tiers=input_rate[1] if input_rate else (),
                output_tiers=output_rate[1] if output_rate else (),
                cached_input_tiers=cached_rate[1] if cached_rate else (),
                utc_hours=window,
            )
        )
    return tuple(schedule)


def _install(raw: Any, *, source: str) -> int:
    global _generation
    from genai_prices import data_snapshot
    from genai_prices.types import _providers_from_raw

    if not isinstance(raw, list):
        raise ConfigError(f"{source}: expected a list of providers, got {type(raw).__name__}")
    try:
        providers = _providers_from_raw(raw)
    except Exception as exc:  # genai-prices raises its validation library's errors
        raise ConfigError(f"{source}: not genai-prices data ({exc})") from exc
    with _lock:
        data_snapshot.set_custom_snapshot(
            data_snapshot.DataSnapshot(providers=providers, from_auto_update=True)
        )
        _generation += 1
    return len(providers)


def load_catalogue_file(path: str | Path) -> int:
    """Use a catalogue saved by :func:`update_catalogue` (``save_to``); returns the provider count.

    Raises:
        ConfigError: the file can't be read or is not genai-prices data.
    """
    file = Path(path)
    try:
        raw = json.loads(file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"price catalogue {file}: can't be read ({exc})") from exc
    return _install(raw, source=f"price catalogue {file}")


def update_catalogue(*, url: str | None = None, save_to: str | Path | None = None) -> int:
    """Download the latest genai-prices data and use it in this process (network; only on request).

    ``save_to`` also writes the data to a file that :func:`load_catalogue_file` (or
    ``PriceBook(catalogue_file=...)``) reads later, offline. Returns the number of providers.

    Raises:
        PyFlareError: the download failed; the built-in snapshot stays in use.
    """
    import httpx2
    from genai_prices.update_prices import DEFAULT_UPDATE_URL

    target = url or DEFAULT_UPDATE_URL
    try:
        response = httpx2.get(target, timeout=httpx2.Timeout(timeout=10, connect=5))
        response.raise_for_status()
        raw = json.loads(response.content)
    except Exception as exc:  # network and HTTP errors: translated at the boundary
        raise PyFlareError(f"could not download prices from {target}: {exc}") from exc
    count = _install(raw, source=target)
    if save_to is not None:
        Path(save_to).write_bytes(response.content)
    logger.info("price catalogue updated from %s: %d providers", target, count)
    return count


def reset_catalogue() -> None:
    """Go back to the snapshot shipped with genai-prices (for tests)."""
    global _generation
    from genai_prices import data_snapshot

    with _lock:
        data_snapshot.set_custom_snapshot(None)
        _generation += 1
