"""Pricing many calls at once: one price resolution per distinct model, numpy for the rest.

:func:`price_rows` gives the same integers as :meth:`ModelPrice.cost
<pyflare.cost.prices.ModelPrice.cost>` for every row (a test checks it): the price
in force at the row's time (dates, hours), the tier set by its input tokens,
components rounded half up to a micro-dollar. Products that could pass int64
(absurd token counts) are worked out in Python integers instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pyflare.cost.prices import ModelPrice, PriceBook, detect_provider

__all__ = ["PricedRows", "price_rows"]

_MTOK = 1_000_000
_HALF = _MTOK // 2
_SAFE = 2.0**62  # products below this fit int64 with room for the sums


@dataclass(frozen=True)
class PricedRows:
    """Per-row results; the int64 columns are null where the row is unpriced."""

    input: pa.Array
    output: pa.Array
    total: pa.Array
    source: pa.Array
    price_model: pa.Array
    provider: pa.Array
    known: pa.Array  # the model has a price (it may still lack tokens)


def _ints(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values with nulls as 0, validity) of an int64 array."""
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    values = pc.fill_null(array, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return values, valid


def _url(host: str | None) -> str | None:
    if not host:
        return None
    return host if "://" in host else f"https://{host}"


def _choose(schedule: tuple[ModelPrice, ...], at_ns: np.ndarray) -> np.ndarray:
    """Index into ``schedule`` of the price in force at each time (-1: none yet)."""
    chosen = np.full(len(at_ns), -1, dtype=np.int64)
    seconds = (at_ns // 1_000_000_000) % 86_400
    for j in range(len(schedule) - 1, -1, -1):
        price = schedule[j]
        applies = (at_ns >= price.effective_from_ns) & (chosen < 0)
        if price.utc_hours is not None:
            start, end = price.utc_hours
            if start <= end:
                applies &= (seconds >= start) & (seconds < end)
            else:
                applies &= (seconds >= start) | (seconds < end)
        chosen[applies] = j
    first_started = (chosen < 0) & (at_ns >= schedule[0].effective_from_ns)
    chosen[first_started] = 0
    return chosen


def _tiered(base: int, tiers: tuple[tuple[int, int], ...], tokens: np.ndarray) -> np.ndarray:
    rate = np.full(len(tokens), base, dtype=np.int64)
    for threshold, tier_rate in tiers:
        rate[tokens > threshold] = tier_rate
    return rate


def price_rows(
    book: PriceBook,
    *,
    model: pa.Array,
    provider: pa.Array,
    host: pa.Array,
    at_ns: pa.Array,
    input_tokens: pa.Array,
    output_tokens: pa.Array,
    cached_tokens: pa.Array,
) -> PricedRows:
    """Price every row (see the module docstring)."""
    n = len(model)
    keys = pc.binary_join_element_wise(
        model, pc.fill_null(provider, ""), pc.fill_null(host, ""), "\x1f"
    ).dictionary_encode()
    codes = keys.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    groups = keys.dictionary.to_pylist()
    times = pc.fill_null(at_ns, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    tokens_in, valid_in = _ints(input_tokens)
    tokens_out, valid_out = _ints(output_tokens)
    tokens_cached, _ = _ints(cached_tokens)

    input_rate = np.zeros(n, dtype=np.int64)
    output_rate = np.zeros(n, dtype=np.int64)
    cached_rate = np.zeros(n, dtype=np.int64)
    request = np.zeros(n, dtype=np.int64)
    price_index = np.full(n, -1, dtype=np.int64)
    known = np.zeros(n, dtype=bool)
    prices: list[ModelPrice] = []
    group_provider: list[str | None] = []
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(codes, minlength=len(groups)))))
    for code, key in enumerate(groups):
        model_id, provider_attr, address = key.split("\x1f")
        schedule = book.schedule(model_id, provider_attr or None, _url(address))
        group_provider.append(
            schedule[0].provider
            if schedule
            else detect_provider(model_id, provider_attr or None, _url(address))
        )
        if not schedule:
            continue
        idx = order[bounds[code] : bounds[code + 1]]
        known[idx] = True
        chosen = _choose(schedule, times[idx])
        for j, price in enumerate(schedule):
            at = idx[chosen == j]
            if len(at) == 0:
                continue
            price_index[at] = len(prices)
            prices.append(price)
            volume = tokens_in[at]
            input_rate[at] = _tiered(price.input_micros_per_mtok, price.input_tiers, volume)
            output_rate[at] = _tiered(price.output_micros_per_mtok, price.output_tiers, volume)
            cached_rate[at] = (
                input_rate[at]
                if price.cached_input_micros_per_mtok is None
                else _tiered(price.cached_input_micros_per_mtok, price.cached_input_tiers, volume)
            )
            request[at] = price.request_micros

    priced = (price_index >= 0) & valid_in & valid_out
    cached = np.minimum(tokens_cached, tokens_in)
    uncached = tokens_in - cached
    bound = (
        uncached.astype(np.float64) * input_rate
        + cached.astype(np.float64) * cached_rate
        + tokens_out.astype(np.float64) * output_rate
    )
    big = priced & (bound >= _SAFE)
    safe = np.where(big, 0, 1)
    in_micros = (uncached * input_rate * safe + cached * cached_rate * safe + _HALF) // _MTOK
    out_micros = (tokens_out * output_rate * safe + _HALF) // _MTOK
    total = in_micros + out_micros + request
    for i in np.flatnonzero(big).tolist():  # exact, in Python integers
        price = prices[price_index[i]]
        cost = price.cost(int(tokens_in[i]), int(tokens_out[i]), int(tokens_cached[i]))
        if cost.total_micros >= 2**63:
            priced[i] = False
            continue
        in_micros[i], out_micros[i], total[i] = (
            cost.input_micros,
            cost.output_micros,
            cost.total_micros,
        )

    mask = ~priced
    sources = np.array([p.source for p in prices] + [None], dtype=object)
    models = np.array([p.model_id for p in prices] + [None], dtype=object)
    picked = np.where(priced, price_index, len(prices))
    return PricedRows(
        input=pa.array(in_micros, pa.int64(), mask=mask),
        output=pa.array(out_micros, pa.int64(), mask=mask),
        total=pa.array(total, pa.int64(), mask=mask),
        source=pa.array(sources[picked], pa.string()),
        price_model=pa.array(models[picked], pa.string()),
        provider=pa.array(group_provider, pa.string()).take(pa.array(codes)),
        known=pa.array(known),
    )
