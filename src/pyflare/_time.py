"""Time arguments users type ("1h", "30m", ISO 8601, a datetime), and times shown as ISO 8601."""

from __future__ import annotations

import datetime as dt
import re
import time

from pyflare.errors import InvalidArgumentError

__all__ = ["iso_ns", "parse_duration_ns", "parse_instant"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$", re.IGNORECASE)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_UNIT_NS = {
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
    "w": 7 * 86400 * 1_000_000_000,
}


def parse_duration_ns(value: str, *, name: str) -> int:
    match = _DURATION.match(value)
    if match is None:
        raise InvalidArgumentError(
            f"{name}={value!r} is not a duration; use e.g. '500ms', '30s', '15m', '1h', '7d', '2w'"
        )
    return int(float(match[1]) * _UNIT_NS[match[2].lower()])


def parse_instant(value: object, *, name: str, now_ns: int | None = None) -> int | None:
    """An instant as UTC nanoseconds.

    Accepts None, a duration back from now ("1h" = one hour ago), an ISO 8601
    string (naive means UTC), a ``datetime`` (naive means UTC) or integer
    nanoseconds since the epoch.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be a time, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        # Integer arithmetic: timestamp() is a float and loses microseconds far from 1970.
        return (moment - _EPOCH) // _MICROSECOND * 1000
    if isinstance(value, str):
        now = time.time_ns() if now_ns is None else now_ns
        if _DURATION.match(value):
            return now - parse_duration_ns(value, name=name)
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidArgumentError(
                f"{name}={value!r} is neither a duration ('1h', '30m', '7d') nor an ISO 8601 time "
                "('2026-11-29T10:00:00Z')"
            ) from None
        return parse_instant(parsed, name=name)
    raise InvalidArgumentError(
        f"{name} must be a duration string, an ISO 8601 string, a datetime or nanoseconds, "
        f"got {type(value).__name__}"
    )


def iso_ns(ns: int) -> str:
    """UTC nanoseconds as ISO 8601 with all nine digits: ``2026-01-01T00:00:00.000000123Z``."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    moment = _EPOCH + dt.timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"
