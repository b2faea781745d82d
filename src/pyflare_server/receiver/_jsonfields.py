"""Fields of OTLP/JSON requests: ids, times, enums and numbers as the OTLP/JSON encoding writes them.

Each reader raises :class:`~._decoding.ItemError` naming the field and what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from pyflare_server.receiver._decoding import DecodeLimits, ItemError

__all__ = [
    "field",
    "json_bytes",
    "json_enum",
    "json_float",
    "json_id",
    "json_int",
    "json_list",
    "json_object",
    "json_text",
    "json_time",
]

_INT = re.compile(r"-?[0-9]+\Z")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_WORDS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def json_int(value: Any, what: str) -> int:
    """An OTLP/JSON int64: a JSON integer or a decimal string."""
    if type(value) is int:
        number = value
    elif (type(value) is str and _INT.match(value)) or (
        type(value) is float and value.is_integer()
    ):
        number = int(value)
    else:
        raise ItemError(f"{what} must be an integer, got {value!r:.40}")
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise ItemError(f"{what} is out of the int64 range: {number}")
    return number


def json_float(value: Any, what: str) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    if type(value) is str:
        word = _FLOAT_WORDS.get(value)
        if word is not None:
            return word
        try:
            return float(value)
        except ValueError:
            pass
    raise ItemError(f"{what} must be a number, got {value!r:.40}")


def json_bytes(value: Any, what: str) -> bytes:
    """Base64 (standard or URL-safe alphabet) as protobuf's JSON mapping writes bytes."""
    if type(value) is not str:
        raise ItemError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ItemError(f"{what} is not valid base64: {value!r:.40}") from None


def field(obj: dict[str, Any], camel: str, snake: str) -> Any:
    """An OTLP/JSON field by its lowerCamelCase name, or its proto (snake_case) name."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def json_list(obj: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = field(obj, camel, snake)
    if value is None:
        return []
    if type(value) is not list:
        raise ItemError(f"{where}.{camel} must be a list, got {type(value).__name__}")
    return value


def json_object(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise ItemError(f"{where} must be an object, got {type(value).__name__}")
    return value


def json_enum(value: Any, words: dict[str, int], what: str) -> int:
    if value is None:
        return 0
    if type(value) is str and value in words:
        return words[value]
    return json_int(value, what)


def json_time(value: Any, what: str) -> int:
    """A fixed64 time in ns: a decimal string or a JSON integer (0 when absent)."""
    if value is None:
        return 0
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    if type(value) is int and value >= 0:
        return value
    raise ItemError(f"{what} must be an unsigned integer (a decimal string), got {value!r:.40}")


def json_id(value: Any, size: int, what: str, *, optional: bool = False) -> str | None:
    """A trace or span id: ``2 * size`` hex digits, not all zero; lowercased."""
    if value is None or value == "":
        if optional:
            return None
        raise ItemError(f"{what} is missing")
    if type(value) is str and len(value) == 2 * size:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = b""
        if len(raw) == size:
            if raw == b"\0" * size:
                if optional:
                    return None
                raise ItemError(f"{what} is all zeros")
            return raw.hex()
    raise ItemError(f"{what} must be {2 * size} hex digits, got {value!r:.40}")


def json_text(value: Any, what: str, limits: DecodeLimits) -> tuple[str, bool]:
    if value is None:
        return "", False
    if type(value) is not str:
        raise ItemError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > limits.max_attribute_chars:
        return value[: limits.max_attribute_chars], True
    return value, False
