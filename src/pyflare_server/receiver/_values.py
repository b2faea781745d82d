"""OTLP attribute values (``AnyValue``) in both encodings, within :class:`DecodeLimits`.

A value comes out twice: as the Python value the ML fields and the PII masker
read (str, bool, int, float, bytes; arrays as lists and key-value lists as
dicts) and as the string the row's maps store, rendered the way
:func:`pyflare.mlfields.stringify` renders the SDK's values. Nested bytes
become hex and nested maps JSON objects, so the rendering is plain JSON.

Protobuf attributes arrive as encoded ``KeyValue`` bytes (see
:mod:`._pbviews`); the decoded pair is cached by those bytes, since most pairs
(a model name, a span kind, a mime type) recur in every request.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import orjson

from pyflare.mlfields import stringify
from pyflare_server.receiver._decoding import TRUNCATED, DecodeLimits, ItemError
from pyflare_server.receiver._jsonfields import json_bytes, json_float, json_int

__all__ = [
    "TOO_DEEP",
    "Attributes",
    "Entry",
    "Mask",
    "attribute_map",
    "flag",
    "json_any",
    "json_attributes",
    "kv_cache",
    "pb_any",
    "pb_attributes",
    "render",
    "resource_entry",
]

#: What a value nested deeper than ``max_depth`` becomes.
TOO_DEEP = "[too deep]"

# (key, Python value, rendered string); a value that is None was empty and is dropped.
Entry = tuple[str, Any, str]
# An attribute list: (keys, Python values, rendered values, the keys whose values
# were cut, how many pairs past max_attributes were dropped).
Attributes = tuple[tuple[str, ...], Sequence[Any], Sequence[str], list[str], int]
# Masks a dict of attribute values in place (the SDK's SpanMasker.mask_in_place).
Mask = Callable[[dict[str, Any]], None]


# -- rendering ---------------------------------------------------------------------


def render(value: Any, limits: DecodeLimits) -> tuple[str, bool]:
    """``value`` as the maps store it, cut to ``max_attribute_chars``; and whether it was cut."""
    if type(value) is str:
        text = value
    elif type(value) is list or type(value) is dict:
        # Decoded values hold only JSON types (nested bytes are hex, ints int64).
        text = orjson.dumps(value).decode()
    else:
        text = stringify(value)
    if len(text) > limits.max_attribute_chars:
        return text[: limits.max_attribute_chars], True
    return text, False


def _cut(text: str, limits: DecodeLimits) -> tuple[str, bool]:
    if len(text) > limits.max_attribute_chars:
        return text[: limits.max_attribute_chars], True
    return text, False


class _Budget:
    """How many more nested elements one value may decode (bounds work and memory)."""

    __slots__ = ("cut", "left")

    def __init__(self, limits: DecodeLimits) -> None:
        # Every element renders to 2 characters or more, so more could never be shown.
        self.left = limits.max_attribute_chars // 2 + 1
        self.cut = False


# -- protobuf ------------------------------------------------------------------------

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
    text, shortened = _cut(text, limits)
    return text, cut or shortened


def _pb_any(data: bytes, limits: DecodeLimits, depth: int, budget: _Budget) -> Any:
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


def _take(items: list[Any], budget: _Budget) -> list[Any]:
    """The elements of an array or map the budget allows; the budget pays for them."""
    if len(items) > budget.left:
        items = items[: max(budget.left, 0)]
        budget.cut = True
    budget.left -= len(items)
    return items


def _pb_elements(data: bytes, budget: _Budget) -> list[bytes]:
    """The encoded elements (field 1) of an ``ArrayValue`` or ``KeyValueList``."""
    fields = _fields(data, most=max(budget.left, 0) + 1)
    return _take([raw for number, wire, raw in fields if number == 1 and wire == 2], budget)


def _pb_pair(data: bytes, limits: DecodeLimits, depth: int, budget: _Budget) -> tuple[str, Any]:
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


def _rendered(value: Any, budget: _Budget, limits: DecodeLimits) -> tuple[Any, str, bool]:
    """(value, its rendering, whether any of it was cut); None and "" for no value."""
    if value is None:
        return None, "", budget.cut
    text, cut = render(value, limits)
    return value, text, budget.cut or cut


def pb_any(data: bytes, limits: DecodeLimits) -> tuple[Any, str, bool]:
    """An encoded ``AnyValue``: (Python value or None when empty, rendered, cut)."""
    budget = _Budget(limits)
    return _rendered(_pb_any(data, limits, 0, budget), budget, limits)


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
            budget = _Budget(limits)
            key, found = _pb_pair(raw, limits, 0, budget)
            value, text, cut = _rendered(found, budget, limits)
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


# -- JSON ------------------------------------------------------------------------------

_VALUE_KEYS = {
    "stringValue": 1,
    "string_value": 1,
    "boolValue": 2,
    "bool_value": 2,
    "intValue": 3,
    "int_value": 3,
    "doubleValue": 4,
    "double_value": 4,
    "arrayValue": 5,
    "array_value": 5,
    "kvlistValue": 6,
    "kvlist_value": 6,
    "bytesValue": 7,
    "bytes_value": 7,
}


def _json_values(container: Any, what: str) -> list[Any]:
    if type(container) is not dict:
        raise ItemError(f"{what} must be an object with a values list")
    values = container.get("values", [])
    if type(values) is not list:
        raise ItemError(f"{what}.values must be a list")
    return values


def _json_any(obj: Any, limits: DecodeLimits, depth: int, budget: _Budget) -> Any:
    if type(obj) is not dict:
        raise ItemError(f"an AnyValue must be an object, got {type(obj).__name__}")
    for name in obj:
        kind = _VALUE_KEYS.get(name)
        if kind is not None:
            break  # the first value counts; unknown fields are ignored
    else:
        return None
    raw = obj[name]
    if kind == 1:
        if type(raw) is not str:
            raise ItemError(f"{name} must be a string, got {type(raw).__name__}")
        text, cut = _cut(raw, limits)
        budget.cut |= cut
        return text
    if kind == 2:
        if type(raw) is not bool:
            raise ItemError(f"{name} must be true or false, got {raw!r:.40}")
        return raw
    if kind == 3:
        return json_int(raw, name)
    if kind == 4:
        return json_float(raw, name)
    if kind == 7:
        data = json_bytes(raw, name)
        return data.hex() if depth else data
    if depth >= limits.max_depth:
        budget.cut = True
        return TOO_DEEP
    items = _take(_json_values(raw, name), budget)
    if kind == 5:
        return [_json_any(item, limits, depth + 1, budget) for item in items]
    return dict(_json_pair(item, limits, depth + 1, budget) for item in items)


def _json_pair(item: Any, limits: DecodeLimits, depth: int, budget: _Budget) -> tuple[str, Any]:
    if type(item) is not dict:
        raise ItemError(f"an attribute must be an object, got {type(item).__name__}")
    key = item.get("key", "")
    if type(key) is not str:
        raise ItemError(f"an attribute key must be a string, got {type(key).__name__}")
    raw = item.get("value")
    return key, None if raw is None else _json_any(raw, limits, depth, budget)


def json_any(obj: Any, limits: DecodeLimits) -> tuple[Any, str, bool]:
    """An OTLP/JSON ``AnyValue``: (Python value or None when empty, rendered, cut)."""
    budget = _Budget(limits)
    return _rendered(_json_any(obj, limits, 0, budget), budget, limits)


_KEY = itemgetter("key")
_VALUE = itemgetter("value")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# Per tuple of AnyValue kinds ("stringValue", "intValue"…) of an attribute list:
# (a getter of its strings, the positions and kinds of its other values), or None
# when a kind is unknown.
_Conversion = tuple[Callable[[Sequence[Any]], tuple[Any, ...]], tuple[tuple[int, int], ...]]
_CONVERSIONS: dict[tuple[str, ...], _Conversion | None] = {}


def items_at(positions: tuple[int, ...]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A getter of the items at ``positions`` of a sequence, always as a tuple."""
    if len(positions) > 1:
        getter: Callable[[Sequence[Any]], tuple[Any, ...]] = itemgetter(*positions)
        return getter
    if positions:
        (position,) = positions
        return lambda values: (values[position],)
    return lambda values: ()


_NO_CONVERSION: _Conversion = (lambda values: (), ())


def _conversion(kinds: tuple[str, ...]) -> _Conversion | None:
    codes = [_VALUE_KEYS.get(kind) for kind in kinds]
    conversion: _Conversion | None = None
    if None not in codes:
        strings = tuple(i for i, code in enumerate(codes) if code == 1)
        others = tuple((i, code) for i, code in enumerate(codes) if code != 1 and code is not None)
        conversion = (items_at(strings), others)
    if len(_CONVERSIONS) >= 4096:
        _CONVERSIONS.clear()
    _CONVERSIONS[kinds] = conversion
    return conversion


def json_attributes(items: Any, limits: DecodeLimits) -> Attributes:
    """OTLP/JSON attributes (a list of ``{"key", "value"}`` objects).

    Pairs with an empty value are left out, pairs past ``max_attributes`` dropped.
    """
    if items is None:
        return (), (), (), [], 0
    if type(items) is not list:
        raise ItemError(f"attributes must be a list, got {type(items).__name__}")
    most = limits.max_attributes
    dropped = len(items) - most if len(items) > most else 0
    if dropped:
        items = items[:most]
    # The common shape, read with C-level maps: every item an object with a string
    # key and a value object of one known kind. Anything else takes the careful path.
    try:
        names = tuple(map(_KEY, items))
        objects = list(map(_VALUE, items))
        kinds = tuple(map(next, map(iter, objects)))
        conversion = _CONVERSIONS.get(kinds) or _conversion(kinds)
        values = list(map(dict.__getitem__, objects, kinds))
        # join() takes only strings: it checks the keys' and string values' types in C.
        "".join(names)
        strings, others = conversion or _NO_CONVERSION
        texts = "".join(strings(values))
    except (KeyError, TypeError):
        return _json_attributes(items, limits, dropped)
    if (
        conversion is None
        or len(kinds) != len(names)  # an empty value object ends the map early
        or (
            len(texts) > limits.max_attribute_chars
            and max(map(len, strings(values))) > limits.max_attribute_chars
        )
    ):
        return _json_attributes(items, limits, dropped)
    if not others:
        return names, values, values, [], dropped
    rendered = list(values)
    cut_keys: list[str] = []
    for index, code in others:
        raw = values[index]
        # The common scalars inline; anything else through _json_any().
        if code == 3 and type(raw) is str and len(raw) < 19 and raw.isdigit() and raw.isascii():
            values[index] = number = int(raw)
            rendered[index] = text = repr(number)
        elif (code == 3 and type(raw) is int and _INT64_MIN <= raw <= _INT64_MAX) or (
            code == 4 and type(raw) is float
        ):
            rendered[index] = text = repr(raw)
        elif code == 2 and type(raw) is bool:
            rendered[index] = text = "true" if raw else "false"
        else:
            text = ""
        if text and len(text) <= limits.max_attribute_chars:
            continue
        budget = _Budget(limits)
        value = _json_any({kinds[index]: raw}, limits, 0, budget)
        values[index] = value
        rendered[index], cut = render(value, limits)
        if cut or budget.cut:
            cut_keys.append(names[index])
    return names, values, rendered, cut_keys, dropped


def _json_attributes(items: list[Any], limits: DecodeLimits, dropped: int) -> Attributes:
    """json_attributes() for any shape: every item checked, empty values left out."""
    out: list[Entry] = []
    cut_keys: list[str] = []
    for item in items:
        budget = _Budget(limits)
        key, found = _json_pair(item, limits, 0, budget)
        value, text, cut = _rendered(found, budget, limits)
        if value is None:
            continue
        if cut:
            cut_keys.append(key)
        out.append((key, value, text))
    if not out:
        return (), (), (), cut_keys, dropped
    names, values, rendered = zip(*out, strict=True)
    return names, values, rendered, cut_keys, dropped


# -- attribute maps ---------------------------------------------------------------------


def flag(cut: list[str], dropped: int) -> str:
    return ",".join([*cut, "[attributes]"] if dropped else cut)


def attribute_map(
    attributes: Attributes, limits: DecodeLimits, mask: Mask | None
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Python values (masked) and the map entries of one attribute list, off the hot path.

    Later duplicates of a key win; ``pyflare.truncated`` gets what was cut, added
    to what the sender had already flagged.
    """
    names, python_values, texts, cut, dropped = attributes
    values = dict(zip(names, python_values, strict=True))
    rendered = dict(zip(names, texts, strict=True))
    if mask is not None:
        before = dict(values)
        mask(values)
        for key, value in values.items():
            if value is not before.get(key):
                rendered[key], was_cut = render(value, limits)
                if was_cut:
                    cut.append(key)
    flagged = flag(cut, dropped)
    if flagged:
        earlier = rendered.get(TRUNCATED)
        rendered[TRUNCATED] = f"{earlier},{flagged}" if earlier else flagged
    return values, list(rendered.items())


def resource_entry(
    attributes: Attributes, limits: DecodeLimits
) -> tuple[list[str], list[str], str]:
    """(keys, values, service name) of a resource."""
    values, pairs = attribute_map(attributes, limits, None)
    service = values.get("service.name")
    return (
        [key for key, _ in pairs],
        [text for _, text in pairs],
        "unknown_service" if service is None else render(service, limits)[0],
    )
