"""Query-string parameters and result rows, as every API resource reads and writes them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pyflare._time import parse_instant
from pyflare.errors import InvalidArgumentError
from pyflare_server.api._http import ApiError

if TYPE_CHECKING:
    from starlette.datastructures import QueryParams

__all__ = ["INT64_MAX", "instant", "integer", "invalid", "no_parameters", "records", "single"]

INT64_MAX = 2**63 - 1
# The fraction of a second in an ISO 8601 time, which datetime would cut to microseconds.
_FRACTION = re.compile(r"(?<=\d\d:\d\d:\d\d)[.,](\d+)")


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_argument", message)


def single(params: QueryParams, allowed: tuple[str, ...]) -> dict[str, str]:
    """Each parameter's one value; unknown or repeated parameters are errors."""
    for name in params:
        if name not in allowed:
            expected = ", ".join(allowed) if allowed else "none"
            raise invalid(f"unknown parameter {name!r}; expected one of: {expected}")
    values: dict[str, str] = {}
    for name in params:
        given = params.getlist(name)
        if len(given) > 1:
            raise invalid(f"parameter {name!r} is given {len(given)} times; give it once")
        values[name] = given[0]
    return values


def no_parameters(params: QueryParams) -> None:
    single(params, ())


def integer(name: str, value: str, low: int, high: int) -> int:
    text = value.strip()
    if text.isascii() and text.isdigit() and len(text) <= 19 and low <= int(text) <= high:
        return int(text)
    raise invalid(f"{name} must be an integer from {low} to {high}, got {value!r}")


def instant(name: str, value: str, now_ns: int) -> int:
    """An instant from ISO 8601 (Z or an offset; none means UTC), a duration ago, or ns."""
    text = value.strip()
    fraction_ns = 0
    if text.isascii() and text.isdigit():
        ns = int(text)
    else:
        # datetime keeps microseconds; the digits after them are added here, so a
        # time this API wrote (nanosecond digits) reads back exactly.
        fraction = _FRACTION.search(text)
        if fraction is not None:
            text = text[: fraction.start()] + text[fraction.end() :]
            fraction_ns = int(fraction[1][:9].ljust(9, "0"))
        try:
            parsed = parse_instant(text, name=name, now_ns=now_ns)
        except InvalidArgumentError:
            raise invalid(
                f"{name}={value!r} is not a time; use ISO 8601 such as 2026-01-01T10:00:00Z "
                "(an offset such as +02:00 is fine; none means UTC), a duration back from now "
                "such as 15m or 1h, or nanoseconds since the epoch"
            ) from None
        ns = (0 if parsed is None else parsed) + fraction_ns
    if not -INT64_MAX <= ns <= INT64_MAX:
        raise invalid(f"{name}={value!r} is out of range (years 1678 to 2261)")
    return ns


def _with_times(type_: pa.DataType, time_type: pa.DataType) -> pa.DataType:
    """``type_`` with every timestamp in it (nested ones too) replaced by ``time_type``."""
    if pa.types.is_timestamp(type_):
        return time_type
    if pa.types.is_list(type_):
        return pa.list_(type_.value_field.with_type(_with_times(type_.value_type, time_type)))
    if pa.types.is_struct(type_):
        return pa.struct([field.with_type(_with_times(field.type, time_type)) for field in type_])
    return type_


def records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts: times as integer nanoseconds (exact), top-level maps as dicts."""
    columns: list[list[Any]] = []
    for column in table.columns:
        # Through timestamp[ns] first, so a store's µs column still comes out in ns.
        nanos = column.cast(_with_times(column.type, pa.timestamp("ns")))
        values = nanos.cast(_with_times(column.type, pa.int64())).to_pylist()
        if pa.types.is_map(column.type):
            values = [None if v is None else dict(v) for v in values]
        columns.append(values)
    names = table.column_names
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
