"""Trace sampling by rules, decided on the trace id so a trace is kept or dropped whole.

A span's rate is the highest rate among the rules it matches (a service rule
matches ``service_name``, an attribute rule ``attributes[key] == value``, a
rule with both needs both), else ``default_rate``. A trace is kept when the
lower 64 bits of its id, as an unsigned integer, are below ``rate * 2**64``
for the highest rate among its spans in the batch. The same trace id gives the
same answer in every batch and on every server, and a trace kept at one rate
is kept at any higher one, so a trace whose spans agree on their rate is never
split (OpenTelemetry's TraceIdRatioBased sampler uses the same test).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pyflare_server.settings import SamplingRule, SamplingSettings

__all__ = ["Sampler", "trace_kept"]

_ALL_64 = 1 << 64
_HEX_DIGITS = 32
# Hex digit value of each byte; 255 for a byte that is not a hex digit.
_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _value, _char in enumerate(b"0123456789abcdef"):
    _NIBBLE[_char] = _value
for _value, _char in enumerate(b"ABCDEF", start=10):
    _NIBBLE[_char] = _value

U64 = npt.NDArray[np.uint64]


def _threshold(rate: float) -> int:
    """The least integer not below ``rate * 2**64``: keep iff low64 < threshold."""
    return math.ceil(rate * float(_ALL_64))


def _low64_of(trace_id: str | None) -> int:
    """The lower 64 bits of a hex trace id (its last 16 digits); 0 when not hex."""
    if not trace_id:
        return 0
    try:
        return int(trace_id[-16:], 16) % _ALL_64
    except ValueError:
        return 0


def trace_kept(trace_id: str, rate: float) -> bool:
    """Whether a trace with this id is kept at ``rate`` (what :class:`Sampler` decides)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return _low64_of(trace_id) < _threshold(rate)


def low64(trace_ids: pa.Array | pa.ChunkedArray) -> U64:
    """:func:`trace_kept`'s number for each trace id, vectorised for 32-digit ids."""
    array = trace_ids.combine_chunks() if isinstance(trace_ids, pa.ChunkedArray) else trace_ids
    if not pa.types.is_string(array.type):
        array = array.cast(pa.string())
    n = len(array)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    if array.null_count == 0:
        _, offsets_buffer, data_buffer = array.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[array.offset : array.offset + n + 1]
        if data_buffer is not None and bool((np.diff(offsets) == _HEX_DIGITS).all()):
            first = int(offsets[0])
            text = np.frombuffer(data_buffer, dtype=np.uint8)[first : first + n * _HEX_DIGITS]
            nibbles = _NIBBLE[text.reshape(n, _HEX_DIGITS)[:, 16:]]
            if bool((nibbles != 255).all()):
                packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
                return np.ascontiguousarray(packed).view(">u8").reshape(n).astype(np.uint64)
    # Ids of another length, or not hex: one at a time (the decoder rejects those anyway).
    return np.fromiter((_low64_of(v) for v in array.to_pylist()), dtype=np.uint64, count=n)


class Sampler:
    """Keeps or drops whole traces by the configured rules (see the module docstring)."""

    def __init__(self, settings: SamplingSettings | None = None) -> None:
        self.settings = settings if settings is not None else SamplingSettings()
        self.rules: tuple[SamplingRule, ...] = self.settings.rules
        self.default_rate = self.settings.default_rate
        self.keeps_everything = self.default_rate >= 1.0 and all(r.rate >= 1.0 for r in self.rules)

    def sample(self, batch: pa.Table) -> tuple[pa.Table, int]:
        """``(kept rows, number dropped)`` of a batch of canonical span rows."""
        if self.keeps_everything or batch.num_rows == 0:
            return batch, 0
        trace_ids = batch.column("trace_id")
        rates = self.span_rates(batch)
        keep = _below(low64(trace_ids), rates)
        if bool(keep.all()):
            return batch, 0
        if not bool(keep.any()):
            return batch.slice(0, 0), batch.num_rows
        kept_traces = pc.unique(trace_ids.filter(pa.array(keep)))
        kept = batch.filter(pc.is_in(trace_ids, value_set=kept_traces))
        return kept, batch.num_rows - kept.num_rows

    def span_rates(self, batch: pa.Table) -> npt.NDArray[np.float64]:
        """Each row's rate: the highest of the rules it matches, else the default."""
        best = np.full(batch.num_rows, -1.0)
        for rule in self.rules:
            matches: pa.ChunkedArray | None = None
            if rule.service is not None:
                matches = pc.equal(batch.column("service_name"), rule.service)
            if rule.attribute is not None:
                values = pc.map_lookup(
                    batch.column("attributes"), pa.scalar(rule.attribute.key), "first"
                )
                has = pc.equal(values, rule.attribute.value)
                matches = has if matches is None else pc.and_(matches, has)
            hit = np.asarray(pc.fill_null(matches, False).to_numpy(zero_copy_only=False), bool)
            best = np.where(hit, np.maximum(best, rule.rate), best)
        result: npt.NDArray[np.float64] = np.where(best < 0.0, self.default_rate, best)
        return result


def _below(low: U64, rates: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    keep = np.zeros(len(low), dtype=bool)
    for rate in np.unique(rates):
        rows = rates == rate
        if rate >= 1.0:
            keep[rows] = True
        elif rate > 0.0:
            keep[rows] = low[rows] < np.uint64(_threshold(float(rate)))
    return keep
