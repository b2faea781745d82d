"""Protobuf attribute values: encoded ``KeyValue`` pairs and ``AnyValue``s, decoded in Python.

Protobuf attributes arrive as encoded ``KeyValue`` bytes (see :mod:`._pbviews`).
The decoded pair is cached by those bytes, since most pairs (a model name, a
span kind, a mime type) recur request after request; a short scalar pair is
decoded inline, anything else by a small wire-format reader that never nests
deeper than ``max_depth`` and stops at the element budget.
"""

from __future__ import annotations

import struct
from typing import Any

from pyflare_server.receiver._decoding import DecodeLimits, ItemError
from pyflare_server.receiver._values import (
    TOO_DEEP,
    Attributes,
    Budget,
    Entry,
    cut_text,
    take,
    value_text,
)

__all__ = ["kv_cache", "pb_any", "pb_attributes"]

_DOUBLE = struct.Struct("<d")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ItemError("malformed protobuf: bad varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7


def _fields(data: bytes, most: int = -1) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of the fields in ``data`` (the first ``most``).

    Values are ints, or bytes for the length-delimited and fixed-width wire types.
    """
    fields: list[tuple[int, int, Any]] = []
    pos = 0
    end = len(data)
    while pos < end and len(fields) != most:
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise ItemError("malformed protobuf: a field runs past its message")
            value = data[pos : pos + size]
            pos += size
        elif wire == 1 or wire == 5:
            width = 8 if wire == 1 else 4
            if pos + width > end:
                raise ItemError("malformed protobuf: a field runs past its message")
            value = data[pos : pos + width]
            pos += width
        else:
            raise ItemError(f"malformed protobuf: wire type {wire}")
        if number == 0:
            raise ItemError("malformed protobuf: field number 0")
        fields.append((number, wire, value))
    return fields


def _text(data: bytes, limits: DecodeLimits) -> tuple[str, bool]:
    """UTF-8 ``data`` as text (invalid sequences replaced), cut to the limit."""
    # Decode no more than the limit can keep: 4 bytes a character, one more for a cut one.
    longest = 4 * limits.max_attribute_chars + 4
    cut = len(data) > longest
    text = (data[:longest] if cut else data).decode("utf-8", "replace")
    text, shortened = cut_text(text, limits)
    return text, cut or shortened


def _pb_any(data: bytes, limits: DecodeLimits, depth: int, budget: Budget) -> Any:
    value: Any = None
    for number, wire, raw in _fields(data):
        if number == 1 and wire == 2:
            value, cut = _text(raw, limits)
            budget.cut |= cut
        elif number == 2 and wire == 0:
            value = raw != 0
        elif number == 3 and wire == 0:
            value = raw - (1 << 64) if raw >= 1 << 63 else raw
        elif number == 4 and wire == 1:
            value = _DOUBLE.unpack(raw)[0]
        elif number == 7 and wire == 2:
            value = raw if depth == 0 else raw.hex()
        elif (number == 5 or number == 6) and wire == 2:
            if depth >= limits.max_depth:
                budget.cut = True
                value = TOO_DEEP
            elif number == 5:
                value = [
                    _pb_any(item, limits, depth + 1, budget) for item in _pb_elements(raw, budget)
                ]
            else:
                value = dict(
                    _pb_pair(item, limits, depth + 1, budget) for item in _pb_elements(raw, budget)
                )
    return value


def _pb_elements(data: bytes, budget: Budget) -> list[bytes]:
    """The encoded elements (field 1) of an ``ArrayValue`` or ``KeyValueList``."""
    fields = _fields(data, most=max(budget.left, 0) + 1)
    return take([raw for number, wire, raw in fields if number == 1 and wire == 2], budget)


def _pb_pair(data: bytes, limits: DecodeLimits, depth: int, budget: Budget) -> tuple[str, Any]:
    key = b""
    value: Any = None
    for number, wire, raw in _fields(data):
        if wire != 2:
            continue
        if number == 1:
            key = raw
        elif number == 2:
            value = _pb_any(raw, limits, depth, budget)
    return key.decode("utf-8", "replace"), value


def pb_any(data: bytes, limits: DecodeLimits) -> tuple[Any, str, bool]:
    """An encoded ``AnyValue``: (Python value or None when empty, rendered, cut)."""
    budget = Budget(limits)
    return value_text(_pb_any(data, limits, 0, budget), budget, limits)


# Decoded pairs by their encoding, one cache per set of limits. A pair whose value
# was cut is not cached (it is long, so rarely repeated), nor is a long one.
_CACHEABLE_BYTES = 1024
_MAX_CACHED = 8192
_CACHES: dict[DecodeLimits, dict[bytes, Entry]] = {}


def kv_cache(limits: DecodeLimits) -> dict[bytes, Entry]:
    """The cache of decoded ``KeyValue`` bytes for ``limits``."""
    cache = _CACHES.get(limits)
    if cache is None:
        if len(_CACHES) >= 8:
            _CACHES.clear()
        cache = _CACHES[limits] = {}
    return cache


_UNPACK_DOUBLE = _DOUBLE.unpack_from


def _common_pair(raw: bytes, max_chars: int) -> Entry | None:
    """The common ``KeyValue`` (a short key, one short scalar) decoded inline, else None.

    Equal to decoding with :func:`_pb_pair` and :func:`render`, at a fraction of the
    cost; anything unusual (long or nested values, extra fields) returns None.
    """
    end = len(raw)
    if end < 4 or raw[0] != 0x0A:
        return None
    key_end = raw[1] + 2
    if key_end > 129 or key_end + 2 > end or raw[key_end] != 0x12:
        return None
    size = raw[key_end + 1]
    start = key_end + 2
    if size > 127:
        if start >= end or raw[start] > 127:
            return None
        size = (size & 0x7F) | (raw[start] << 7)
        start += 1
    if start + size != end or size < 2:
        return None
    tag = raw[start]
    if tag == 0x0A:  # string_value
        length = raw[start + 1]
        first = start + 2
        if length > 127:
            if first >= end or raw[first] > 127:
                return None
            length = (length & 0x7F) | (raw[first] << 7)
            first += 1
        if first + length != end or length > max_chars:
            return None
        text = raw[first:].decode("utf-8", "replace")
        return raw[2:key_end].decode("utf-8", "replace"), text, text
    if tag == 0x18:  # int_value, a varint of up to 10 bytes ending the pair
        digits = raw[start + 1 :]
        last = len(digits) - 1
        if last > 9:
            return None
        number = 0
        for index, byte in enumerate(digits):
            if (byte < 0x80) != (index == last):
                return None
            number |= (byte & 0x7F) << (7 * index)
        number &= 0xFFFFFFFFFFFFFFFF
        if number >= 1 << 63:
            number -= 1 << 64
        text = repr(number)
        if len(text) > max_chars:
            return None
        return raw[2:key_end].decode("utf-8", "replace"), number, text
    if tag == 0x21 and size == 9:  # double_value
        value = _UNPACK_DOUBLE(raw, start + 1)[0]
        text = repr(value)
        if len(text) > max_chars:
            return None
        return raw[2:key_end].decode("utf-8", "replace"), value, text
    if tag == 0x10 and size == 2 and raw[start + 1] < 2 and max_chars >= 5:  # bool_value
        flag = raw[start + 1] == 1
        return raw[2:key_end].decode("utf-8", "replace"), flag, "true" if flag else "false"
    return None


def pb_attributes(raws: Any, limits: DecodeLimits, cache: dict[bytes, Entry]) -> Attributes:
    """Decode a repeated field of encoded ``KeyValue`` pairs (see :mod:`._pbviews`).

    Pairs with an empty value are left out, pairs past ``max_attributes`` dropped.
    """
    most = limits.max_attributes
    kept = raws[:most]
    dropped = len(raws) - most if len(kept) == most else 0
    if not kept:
        return (), (), (), [], dropped
    entries: list[Any] = list(map(cache.get, kept))
    if all(entries):  # every pair was in the cache (an entry is a non-empty tuple)
        names, values, rendered = zip(*entries, strict=True)
        return names, values, rendered, [], dropped
    cut_keys: list[str] = []
    out: list[Entry] = []
    if len(cache) > _MAX_CACHED:
        cache.clear()
    max_chars = limits.max_attribute_chars
    for raw, entry in zip(kept, entries, strict=True):
        if entry is None:
            entry = _common_pair(raw, max_chars)
            if entry is not None:
                if len(raw) <= _CACHEABLE_BYTES:
                    cache[raw] = entry
                out.append(entry)
                continue
            budget = Budget(limits)
            key, found = _pb_pair(raw, limits, 0, budget)
            value, text, cut = value_text(found, budget, limits)
            if value is None:
                continue
            entry = (key, value, text)
            if cut:
                cut_keys.append(key)
            elif len(raw) <= _CACHEABLE_BYTES:
                cache[raw] = entry
        out.append(entry)
    if not out:
        return (), (), (), cut_keys, dropped
    names, values, rendered = zip(*out, strict=True)
    return names, values, rendered, cut_keys, dropped
