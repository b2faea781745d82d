"""OTLP/JSON attribute values: ``AnyValue`` objects and attribute lists as orjson gives them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from pyflare_server.receiver._decoding import DecodeLimits, ItemError
from pyflare_server.receiver._jsonfields import json_bytes, json_float, json_int
from pyflare_server.receiver._values import (
    TOO_DEEP,
    Attributes,
    Budget,
    Entry,
    cut_text,
    items_at,
    render,
    take,
    value_text,
)

__all__ = ["json_any", "json_attributes"]

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


def _json_any(obj: Any, limits: DecodeLimits, depth: int, budget: Budget) -> Any:
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
        text, cut = cut_text(raw, limits)
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
    items = take(_json_values(raw, name), budget)
    if kind == 5:
        return [_json_any(item, limits, depth + 1, budget) for item in items]
    return dict(_json_pair(item, limits, depth + 1, budget) for item in items)


def _json_pair(item: Any, limits: DecodeLimits, depth: int, budget: Budget) -> tuple[str, Any]:
    if type(item) is not dict:
        raise ItemError(f"an attribute must be an object, got {type(item).__name__}")
    key = item.get("key", "")
    if type(key) is not str:
        raise ItemError(f"an attribute key must be a string, got {type(key).__name__}")
    raw = item.get("value")
    return key, None if raw is None else _json_any(raw, limits, depth, budget)


def json_any(obj: Any, limits: DecodeLimits) -> tuple[Any, str, bool]:
    """An OTLP/JSON ``AnyValue``: (Python value or None when empty, rendered, cut)."""
    budget = Budget(limits)
    return value_text(_json_any(obj, limits, 0, budget), budget, limits)


_KEY = itemgetter("key")
_VALUE = itemgetter("value")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# Per tuple of AnyValue kinds ("stringValue", "intValue"…) of an attribute list:
# (a getter of its strings, the positions and kinds of its other values), or None
# when a kind is unknown.
_Conversion = tuple[Callable[[Sequence[Any]], tuple[Any, ...]], tuple[tuple[int, int], ...]]
_CONVERSIONS: dict[tuple[str, ...], _Conversion | None] = {}


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
        budget = Budget(limits)
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
        budget = Budget(limits)
        key, found = _json_pair(item, limits, 0, budget)
        value, text, cut = value_text(found, budget, limits)
        if value is None:
            continue
        if cut:
            cut_keys.append(key)
        out.append((key, value, text))
    if not out:
        return (), (), (), cut_keys, dropped
    names, values, rendered = zip(*out, strict=True)
    return names, values, rendered, cut_keys, dropped
