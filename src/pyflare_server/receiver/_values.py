"""What both OTLP encodings share about attribute values: rendering, limits, maps.

A value comes out twice: as the Python value the ML fields and the PII masker
read (str, bool, int, float, bytes; arrays as lists and key-value lists as
dicts) and as the string the row's maps store, rendered the way
:func:`pyflare.mlfields.stringify` renders the SDK's values. Nested bytes
become hex and nested maps JSON objects, so the rendering is plain JSON.
:mod:`._pbvalues` and :mod:`._jsonvalues` decode values of each encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import orjson

from pyflare.mlfields import stringify
from pyflare_server.receiver._decoding import TRUNCATED, DecodeLimits

__all__ = [
    "TOO_DEEP",
    "Attributes",
    "Budget",
    "Entry",
    "Mask",
    "attribute_map",
    "cut_text",
    "flag",
    "items_at",
    "render",
    "resource_entry",
    "take",
    "value_text",
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
    return cut_text(text, limits)


def cut_text(text: str, limits: DecodeLimits) -> tuple[str, bool]:
    """``text`` cut to ``max_attribute_chars``, and whether it was cut."""
    if len(text) > limits.max_attribute_chars:
        return text[: limits.max_attribute_chars], True
    return text, False


class Budget:
    """How many more nested elements one value may decode (bounds work and memory)."""

    __slots__ = ("cut", "left")

    def __init__(self, limits: DecodeLimits) -> None:
        # Every element renders to 2 characters or more, so more could never be shown.
        self.left = limits.max_attribute_chars // 2 + 1
        self.cut = False


def take(items: list[Any], budget: Budget) -> list[Any]:
    """The elements of an array or map the budget allows; the budget pays for them."""
    if len(items) > budget.left:
        items = items[: max(budget.left, 0)]
        budget.cut = True
    budget.left -= len(items)
    return items


def value_text(value: Any, budget: Budget, limits: DecodeLimits) -> tuple[Any, str, bool]:
    """(value, its rendering, whether any of it was cut); None and "" for no value."""
    if value is None:
        return None, "", budget.cut
    text, cut = render(value, limits)
    return value, text, budget.cut or cut


def items_at(positions: tuple[int, ...]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A getter of the items at ``positions`` of a sequence, always as a tuple."""
    if len(positions) > 1:
        getter: Callable[[Sequence[Any]], tuple[Any, ...]] = itemgetter(*positions)
        return getter
    if positions:
        (position,) = positions
        return lambda values: (values[position],)
    return lambda values: ()


# -- attribute maps ---------------------------------------------------------------------


def flag(cut: list[str], dropped: int) -> str:
    """The ``pyflare.truncated`` value for these cut keys and dropped pairs ("" for none)."""
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
