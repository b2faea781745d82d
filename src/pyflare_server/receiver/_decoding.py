"""What every OTLP decoder shares: its error, its limits, and its tally of rejected items."""

from __future__ import annotations

from dataclasses import dataclass

from pyflare.errors import PyFlareError

__all__ = ["TRUNCATED", "DecodeError", "DecodeLimits", "ItemError", "Rejections"]

#: The attribute that lists what was cut from an item (see :class:`DecodeLimits`).
TRUNCATED = "pyflare.truncated"


class DecodeError(PyFlareError, ValueError):
    """An OTLP request could not be decoded at all (HTTP 400, gRPC INVALID_ARGUMENT)."""


class ItemError(Exception):
    """One item (span, log record, data point) is invalid; it is rejected with this reason."""


@dataclass(frozen=True)
class DecodeLimits:
    """How much of one item PyFlare keeps; what goes past a limit is cut and flagged.

    An item (span, event, log record, data point, resource) that was cut keeps
    its place and gets the attribute ``pyflare.truncated``: a comma-separated
    list of the attribute keys whose values were cut (too long, or nested too
    deep), plus ``[attributes]`` when attributes past ``max_attributes`` were
    dropped, ``[events]`` for dropped events, ``[name]``, ``[status_message]``
    or ``[body]`` for a cut span or event name, status message or log body.
    """

    max_attribute_chars: int = 64 * 1024
    """Longer strings (attribute values, names, log bodies) are cut to this length."""
    max_attributes: int = 1024
    """Attributes kept per item; array and map values keep as many elements."""
    max_depth: int = 16
    """Nesting of array and map values kept; deeper values become ``"[too deep]"``."""
    max_events: int = 1024
    """Events kept per span."""

    def __post_init__(self) -> None:
        for name in ("max_attribute_chars", "max_attributes", "max_depth", "max_events"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"DecodeLimits.{name} must be a positive int, got {value!r}")


# Reasons quoted in the partial-success message; the rest are only counted.
_MAX_REASONS = 3


class Rejections:
    """Items rejected one by one (OTLP partial success): a count and the first reasons."""

    __slots__ = ("count", "reasons")

    def __init__(self) -> None:
        self.count = 0
        self.reasons: list[str] = []

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if len(self.reasons) < _MAX_REASONS:
            self.reasons.append(f"{where}: {reason}")

    def message(self, what: str) -> str:
        if not self.count:
            return ""
        more = self.count - len(self.reasons)
        tail = f"; and {more} more" if more else ""
        return f"{self.count} {what} rejected: " + "; ".join(self.reasons) + tail
