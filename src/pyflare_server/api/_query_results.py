"""A SQL answer (an Arrow table) as the body POST /api/v1/query sends: JSON, CSV or Arrow.

JSON and CSV carry times as ISO 8601 UTC text with the column's own precision
(``2026-01-01T10:00:00.000000123Z`` for nanoseconds), nested ones too; maps become
objects; binary values base64; decimals numbers; values JSON can't hold (128-bit
integers, intervals) text. In CSV a list, map or struct cell holds its JSON text and
a null is an empty cell. Arrow is the table as the store answered, untouched.
"""

from __future__ import annotations

import base64
import csv
import io
from decimal import Decimal
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["MEDIA_TYPES", "arrow_body", "column_types", "csv_body", "json_rows"]

MEDIA_TYPES: Final = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
}
_INT64: Final = 2**63


def column_types(table: pa.Table) -> list[dict[str, str]]:
    """``[{"name", "type"}]`` with Arrow's type names (``int64``, ``timestamp[ns]``)."""
    return [{"name": f.name, "type": str(f.type)} for f in table.schema]


def _texts_for_times(array: pa.Array) -> pa.Array:
    """``array`` with every timestamp in it, nested or not, as ISO 8601 UTC text."""
    type_ = array.type
    if pa.types.is_timestamp(type_):
        naive = array.cast(pa.timestamp(type_.unit)) if type_.tz else array
        return pc.strftime(naive, format="%Y-%m-%dT%H:%M:%SZ")
    if pa.types.is_map(type_):
        offsets = array.offsets
        keys, items = _texts_for_times(array.keys), _texts_for_times(array.items)
        return pa.MapArray.from_arrays(offsets, keys, items, mask=array.is_null())
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        values = _texts_for_times(array.values)
        kind = pa.ListArray if pa.types.is_list(type_) else pa.LargeListArray
        return kind.from_arrays(array.offsets, values, mask=array.is_null())
    if pa.types.is_struct(type_):
        fields = [array.field(i) for i in range(type_.num_fields)]
        return pa.StructArray.from_arrays(
            [_texts_for_times(f) for f in fields],
            names=[type_.field(i).name for i in range(type_.num_fields)],
            mask=array.is_null(),
        )
    return array


def _has_time(type_: pa.DataType) -> bool:
    if pa.types.is_timestamp(type_):
        return True
    if pa.types.is_map(type_):
        return _has_time(type_.key_type) or _has_time(type_.item_type)
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return _has_time(type_.value_type)
    if pa.types.is_struct(type_):
        return any(_has_time(type_.field(i).type) for i in range(type_.num_fields))
    return False


def _column_values(column: pa.ChunkedArray) -> list[Any]:
    if _has_time(column.type):
        chunks = [_texts_for_times(chunk) for chunk in column.chunks]
        return [v for chunk in chunks for v in chunk.to_pylist(maps_as_pydicts="lossy")]
    values: list[Any] = column.to_pylist(maps_as_pydicts="lossy")
    return values


def json_rows(table: pa.Table) -> list[list[Any]]:
    """The table's rows as lists of JSON-ready values (see :func:`dumps` for the rest)."""
    columns = [_column_values(column) for column in table.columns]
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and -_INT64 <= value < 2 * _INT64:
            return int(value)
        return float(value) if value.is_finite() else None
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def dumps(content: Any) -> bytes:
    """JSON with the conversions above for what orjson doesn't know."""
    try:
        return orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        # An integer past 64 bits (ClickHouse's UInt128/Int256): as text, like other oddities.
        return orjson.dumps(
            _wide_ints_as_text(content), default=_default, option=orjson.OPT_NON_STR_KEYS
        )


def _wide_ints_as_text(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < 2 * _INT64 else str(value)
    if isinstance(value, Decimal):
        return _wide_ints_as_text(int(value)) if value == value.to_integral_value() else value
    if isinstance(value, list):
        return [_wide_ints_as_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _wide_ints_as_text(v) for k, v in value.items()}
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    text = dumps(value).decode()
    # dumps of a scalar such as a Decimal or bytes is a JSON string: the cell is its text.
    return orjson.loads(text) if text.startswith('"') else text


def csv_body(table: pa.Table) -> bytes:
    """A header line of column names, then one line per row (RFC 4180 quoting)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.column_names)
    writer.writerows([_cell(v) for v in row] for row in json_rows(table))
    return out.getvalue().encode()


def arrow_body(table: pa.Table) -> bytes:
    """The table as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())
