"""What a model call costs: prices, where they come from, and the arithmetic.

A :class:`PriceBook` answers "what did this call cost?" in integer micro-dollars.
Prices come from, in order: the user's prices (:meth:`PriceBook.from_yaml`, or
``user_prices=``), which keep a history (each applies from its ``effective_from``
on, and the catalogue's price applies before the first of them), then the
genai-prices snapshot shipped with the package (offline; :func:`update_catalogue`
downloads a newer one, only when called). A model neither knows is *unpriced*:
callers store NULL, never 0.

Arithmetic (:meth:`ModelPrice.cost`), all in integers:

- ``input_tokens`` includes ``cached_input_tokens`` (the OpenAI and GenAI
  convention); cached tokens are billed at the cached rate when the price has
  one, else at the input rate.
- ``reasoning_tokens`` are part of ``output_tokens`` and billed at the output rate;
  they are reported, not added.
- When a rate is tiered, the tier is chosen by the call's input tokens (a tier
  applies when ``input_tokens`` is above its threshold), for every component.
- ``input_micros`` = (uncached x input rate + cached x cached rate) / 1e6 and
  ``output_micros`` = output x output rate / 1e6, each rounded half up to a whole
  micro-dollar; ``total_micros`` = input + output + the per-request fee. Sums of
  many calls are sums of these integers: exact, with no float drift.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pyflare import semconv as sc
from pyflare.cost import _catalogue
from pyflare.cost._catalogue import update_catalogue
from pyflare.cost._normalise import (
    SELF_HOSTED,
    canonical_provider,
    model_candidates,
    provider_from_url,
)
from pyflare.errors import InvalidArgumentError

__all__ = [
    "CallCost",
    "ModelPrice",
    "PriceBook",
    "PriceSource",
    "detect_provider",
    "update_catalogue",
]

PriceSource = Literal["user", "genai-prices"]
Tiers = tuple[tuple[int, int], ...]
_MTOK = 1_000_000
_HALF = _MTOK // 2


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's price from ``effective_from_ns`` on (0: always), in micro-dollars.

    Rates are micro-dollars per million tokens ($2.50 / 1M tokens is 2_500_000).
    In a schedule (:meth:`PriceBook.schedule`), the last price whose conditions
    hold at the call's time applies (:func:`price_at`).
    ``cached_input_micros_per_mtok`` None bills cached tokens at the input rate.
    The ``*_tiers`` are ((input-token threshold, rate), ...) in increasing order:
    the last tier whose threshold the call's input tokens exceed sets the rate.
    """

    model_id: str
    provider: str | None
    input_micros_per_mtok: int
    output_micros_per_mtok: int
    cached_input_micros_per_mtok: int | None = None
    request_micros: int = 0
    effective_from_ns: int = 0
    source: PriceSource = "user"
    input_tiers: Tiers = ()
    output_tiers: Tiers = ()
    cached_input_tiers: Tiers = ()
    #: (start, end) seconds after midnight UTC: the price applies only then (off-peak
    #: rates); end before start wraps past midnight. None: at any hour.
    utc_hours: tuple[int, int] | None = None

    def applies_at(self, at_ns: int) -> bool:
        """Whether this price's conditions (start date, hours) hold at ``at_ns``."""
        if at_ns < self.effective_from_ns:
            return False
        hours = self.utc_hours
        if hours is None:
            return True
        second = (at_ns // 1_000_000_000) % 86_400
        start, end = hours
        return start <= second < end if start <= end else (second >= start or second < end)

    def same_rates(self, other: ModelPrice) -> bool:
        """Whether ``other`` charges exactly what this price does (dates aside)."""
        return (
            self.input_micros_per_mtok,
            self.output_micros_per_mtok,
            self.cached_input_micros_per_mtok,
            self.request_micros,
            self.input_tiers,
            self.output_tiers,
            self.cached_input_tiers,
        ) == (
            other.input_micros_per_mtok,
            other.output_micros_per_mtok,
            other.cached_input_micros_per_mtok,
            other.request_micros,
            other.input_tiers,
            other.output_tiers,
            other.cached_input_tiers,
        )

    def rates(self, input_tokens: int) -> tuple[int, int, int]:
        """(input, output, cached input) rates for a call with ``input_tokens``."""
        cached = self.cached_input_micros_per_mtok
        return (
            _tiered(self.input_micros_per_mtok, self.input_tiers, input_tokens),
            _tiered(self.output_micros_per_mtok, self.output_tiers, input_tokens),
            _tiered(self.input_micros_per_mtok, self.input_tiers, input_tokens)
            if cached is None
            else _tiered(cached, self.cached_input_tiers, input_tokens),
        )

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> CallCost:
        """The cost of one call at this price (see the module docstring for the arithmetic)."""
        input_rate, output_rate, cached_rate = self.rates(input_tokens)
        cached = min(cached_input_tokens, input_tokens)
        input_micros = (
            (input_tokens - cached) * input_rate + cached * cached_rate + _HALF
        ) // _MTOK
        output_micros = (output_tokens * output_rate + _HALF) // _MTOK
        return CallCost(
            input_micros=input_micros,
            output_micros=output_micros,
            total_micros=input_micros + output_micros + self.request_micros,
            price=self,
        )


def _tiered(base: int, tiers: Tiers, input_tokens: int) -> int:
    rate = base
    for threshold, tier_rate in tiers:
        if input_tokens > threshold:
            rate = tier_rate
    return rate


@dataclass(frozen=True, slots=True)
class CallCost:
    """What one call cost, in integer micro-dollars, and the price used."""

    input_micros: int
    output_micros: int
    total_micros: int
    price: ModelPrice

    def span_attributes(self) -> dict[str, str | int]:
        """The attributes that record this cost on a span (and let it be repriced later)."""
        return {
            sc.COST_MICROS: self.total_micros,
            sc.COST_SOURCE: self.price.source,
            sc.COST_PRICE_MODEL: self.price.model_id,
        }


def detect_provider(
    model_id: str | None, provider_attr: str | None = None, base_url: str | None = None
) -> str | None:
    """The provider of a call: its provider attribute, else its base URL, else its model name.

    Returns the catalogue's provider id (``openai``, ``azure``, ``anthropic``,
    ``google``, ``aws``, ``mistral``…), a self-hosted server (``ollama``, ``vllm``…),
    the attribute lower-cased when it is none of those, or None when nothing tells.
    """
    provider = canonical_provider(provider_attr)
    if provider is not None:
        return provider
    if base_url:
        provider = provider_from_url(base_url)
        if provider is not None:
            return provider
        import re

        for provider_id, pattern in _catalogue.catalogue_providers().items():
            if re.match(pattern, base_url.strip()):
                return provider_id
    if not model_id:
        return None
    candidates = model_candidates(model_id)
    for _, prefix_provider in candidates:
        if prefix_provider is not None:
            return prefix_provider
    for candidate, _ in candidates:
        found = _catalogue.find_catalogue_model(candidate, None, None)
        if found is not None:
            return found[0].id
    return None


# (model id, provider, base url) -> (schedule, catalogue generation)
_Resolved = tuple[tuple[ModelPrice, ...], int]
_MAX_RESOLVED = 65536


class PriceBook:
    """Prices by model: the user's (with history) over the genai-prices catalogue.

    ``aliases`` maps names a span may carry (an Azure deployment name, a proxy's
    model name) to the model to price them as. ``use_catalogue=False`` prices only
    the user's models. Resolution is cached per (model, provider, base URL), so
    :meth:`cost` is cheap per call and :class:`~pyflare.cost.processor.CostProcessor`
    resolves each distinct model of a batch once.
    """

    def __init__(
        self,
        user_prices: Iterable[ModelPrice] = (),
        aliases: Mapping[str, str] | None = None,
        *,
        use_catalogue: bool = True,
    ) -> None:
        by_model: dict[str, dict[str | None, list[ModelPrice]]] = {}
        for price in user_prices:
            if not isinstance(price, ModelPrice):
                raise InvalidArgumentError(
                    f"user_prices must hold ModelPrice objects, got {type(price).__name__}"
                )
            _check_price(price)
            provider = canonical_provider(price.provider)
            key = price.model_id.strip().lower()
            by_model.setdefault(key, {}).setdefault(provider, []).append(price)
        self._user: dict[str, dict[str | None, tuple[ModelPrice, ...]]] = {
            model: {
                provider: tuple(sorted(prices, key=lambda p: p.effective_from_ns))
                for provider, prices in providers.items()
            }
            for model, providers in by_model.items()
        }
        self._aliases: dict[str, str] = {}
        for alias, target in (aliases or {}).items():
            if not isinstance(alias, str) or not isinstance(target, str) or not alias or not target:
                raise InvalidArgumentError(
                    f"aliases must map model names to model names, got {alias!r}: {target!r}"
                )
            self._aliases[alias.strip().lower()] = target
        self.use_catalogue = use_catalogue
        self._resolved: dict[tuple[str, str | None, str | None], _Resolved] = {}
        self._lock = threading.Lock()

    # --- construction -------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Path, *, use_catalogue: bool = True) -> PriceBook:
        """A price book with the user prices and aliases of a YAML file.

        The file holds ``prices:`` (a list of the spec's ModelPricing entries:
        ``model_id``, ``provider``, ``input_cost_per_million_tokens``,
        ``output_cost_per_million_tokens`` in integer micro-dollars, optional
        ``cached_input_cost_per_million_tokens``, ``request_cost_micros`` and
        ``effective_from`` (a date or ISO 8601 time, UTC)) and optionally
        ``aliases:`` (name -> model). A bare list is read as ``prices``.

        Raises:
            ConfigError: the file can't be read, or an entry is wrong (the message
                names the file, the entry and the field).
        """
        from pyflare.cost._price_file import read_price_file

        prices, aliases, catalogue = read_price_file(path)
        return cls(prices, aliases, use_catalogue=use_catalogue and catalogue)

    @classmethod
    def default(cls) -> PriceBook:
        """The process's price book: the catalogue plus any book set with :meth:`set_default`."""
        book = _default_book
        if book is None:
            with _default_lock:
                book = _default_book
                if book is None:
                    book = _set_default_unlocked(cls())
        return book

    @classmethod
    def set_default(cls, book: PriceBook | None) -> None:
        """Make ``book`` what :meth:`default` returns (None: back to the catalogue alone)."""
        with _default_lock:
            _set_default_unlocked(book)

    # --- lookup -------------------------------------------------------------

    def schedule(
        self, model_id: str, provider: str | None = None, base_url: str | None = None
    ) -> tuple[ModelPrice, ...]:
        """Every price of a model over time, oldest first (empty: unpriced)."""
        key = (model_id, provider, base_url)
        generation = _catalogue.catalogue_generation()
        hit = self._resolved.get(key)
        if hit is not None and hit[1] == generation:
            return hit[0]
        found = self._resolve(model_id, provider, base_url)
        with self._lock:
            if len(self._resolved) >= _MAX_RESOLVED:
                self._resolved.clear()  # distinct models are few; this only bounds memory
            self._resolved[key] = (found, generation)
        return found

    def lookup(
        self,
        model_id: str,
        provider: str | None = None,
        at_ns: int | None = None,
        base_url: str | None = None,
    ) -> ModelPrice | None:
        """The price in force for a model at ``at_ns`` (None: now), or None when unpriced."""
        if not isinstance(model_id, str) or not model_id.strip():
            raise InvalidArgumentError(f"model_id must be a non-empty string, got {model_id!r}")
        return price_at(self.schedule(model_id, provider, base_url), at_ns)

    def cost(
        self,
        model_id: str,
        *,
        provider: str | None = None,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        reasoning_tokens: int = 0,
        at_ns: int | None = None,
        base_url: str | None = None,
    ) -> CallCost | None:
        """The cost of one call, or None when the model is unpriced (never a 0 for unknown).

        ``reasoning_tokens`` are part of ``output_tokens`` (they are checked, not added).

        Raises:
            InvalidArgumentError: a token count is negative or not an int, or the
                cached/reasoning tokens exceed the input/output tokens.
        """
        counts = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cached_input_tokens": cached_input_tokens,
            "reasoning_tokens": reasoning_tokens,
        }
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgumentError(f"{name} must be an int >= 0, got {value!r}")
        if cached_input_tokens > input_tokens:
            raise InvalidArgumentError(
                f"cached_input_tokens ({cached_input_tokens}) is more than input_tokens "
                f"({input_tokens}); input_tokens includes the cached ones"
            )
        if reasoning_tokens > output_tokens:
            raise InvalidArgumentError(
                f"reasoning_tokens ({reasoning_tokens}) is more than output_tokens "
                f"({output_tokens}); output_tokens includes the reasoning ones"
            )
        price = self.lookup(model_id, provider, at_ns, base_url)
        if price is None:
            return None
        return price.cost(input_tokens, output_tokens, cached_input_tokens)

    # --- resolution ---------------------------------------------------------

    def _resolve(
        self, model_id: str, provider_attr: str | None, base_url: str | None
    ) -> tuple[ModelPrice, ...]:
        name = self._aliases.get(model_id.strip().lower(), model_id)
        provider = detect_provider(name, provider_attr, base_url)
        candidates = model_candidates(name)
        user = self._user_schedule(candidates, provider)
        if provider in SELF_HOSTED or not self.use_catalogue:
            return user
        catalogue = self._catalogue_schedule(candidates, provider, base_url)
        # price_at() takes the last price that applies: a user price once its date has
        # come, the catalogue's before.
        return catalogue + user

    def _user_schedule(
        self, candidates: tuple[tuple[str, str | None], ...], provider: str | None
    ) -> tuple[ModelPrice, ...]:
        for candidate, prefix_provider in candidates:
            by_provider = self._user.get(candidate)
            if by_provider is None:
                continue
            wanted = provider or prefix_provider
            if wanted in by_provider:
                return by_provider[wanted]
            if None in by_provider:
                return by_provider[None]
            if wanted is None and len(by_provider) == 1:
                return next(iter(by_provider.values()))
        return ()

    @staticmethod
    def _catalogue_schedule(
        candidates: tuple[tuple[str, str | None], ...], provider: str | None, base_url: str | None
    ) -> tuple[ModelPrice, ...]:
        known = _catalogue.catalogue_providers()
        for candidate, prefix_provider in candidates:
            wanted = provider or prefix_provider
            if wanted is not None and wanted not in known:
                wanted = None  # a provider the catalogue lacks: match the model alone
            found = _catalogue.find_catalogue_model(
                candidate, wanted, base_url if wanted is None else None
            )
            if found is None and wanted is None and base_url is not None:
                found = _catalogue.find_catalogue_model(candidate, None, None)
            if found is not None:
                schedule = _catalogue.catalogue_schedule(*found)
                if schedule:
                    return schedule
        return ()


def price_at(schedule: tuple[ModelPrice, ...], at_ns: int | None) -> ModelPrice | None:
    """The price of a schedule in force at ``at_ns`` (None: now).

    The last price whose conditions hold (:meth:`ModelPrice.applies_at`), else the
    first when it has started (the catalogue's default), else None.
    """
    if not schedule:
        return None
    moment = time.time_ns() if at_ns is None else at_ns
    for price in reversed(schedule):
        if price.applies_at(moment):
            return price
    first = schedule[0]
    return first if first.effective_from_ns <= moment else None


def _check_price(price: ModelPrice) -> None:
    for name in ("input_micros_per_mtok", "output_micros_per_mtok", "request_micros"):
        value = getattr(price, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgumentError(
                f"ModelPrice({price.model_id!r}).{name} must be an int >= 0 (micro-dollars), "
                f"got {value!r}"
            )
    cached = price.cached_input_micros_per_mtok
    if cached is not None and (
        isinstance(cached, bool) or not isinstance(cached, int) or cached < 0
    ):
        raise InvalidArgumentError(
            f"ModelPrice({price.model_id!r}).cached_input_micros_per_mtok must be None or an "
            f"int >= 0, got {cached!r}"
        )
    if not isinstance(price.model_id, str) or not price.model_id.strip():
        raise InvalidArgumentError(
            f"ModelPrice.model_id must be a non-empty string, got {price.model_id!r}"
        )


_default_lock = threading.Lock()
_default_book: PriceBook | None = None


def _set_default_unlocked(book: PriceBook | None) -> PriceBook:
    global _default_book
    _default_book = book
    return book if book is not None else PriceBook()
