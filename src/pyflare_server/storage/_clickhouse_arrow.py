"""Arrow helpers of the ClickHouse store: result types, span keys, last rows."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pyflare.store.batches import first_of_each_span

__all__ = ["last_of_each_span", "naive_utc", "span_keys"]


def _naive(kind: pa.DataType) -> pa.DataType:
    """``kind`` with every timestamp's zone dropped (PyFlare keeps naive UTC)."""
    if pa.types.is_timestamp(kind):
        return pa.timestamp(kind.unit) if kind.tz is not None else kind
    if pa.types.is_map(kind):
        return pa.map_(_naive(kind.key_type), _naive(kind.item_type))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        field = kind.value_field
        inner = pa.field(field.name, _naive(field.type), field.nullable)
        return pa.large_list(inner) if pa.types.is_large_list(kind) else pa.list_(inner)
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _naive(f.type), f.nullable) for f in kind])
    return kind


def naive_utc(table: pa.Table) -> pa.Table:
    """``table`` with ClickHouse's UTC timestamps as PyFlare's naive UTC ones."""
    schema = pa.schema(
        [pa.field(f.name, _naive(f.type), f.nullable) for f in table.schema],
        metadata=table.schema.metadata,
    )
    return table if schema == table.schema else table.cast(schema)


def span_keys(table: pa.Table) -> pa.ChunkedArray:
    """One ``trace_id/span_id`` string per row (ids are hex: '/' never occurs in them)."""
    return pc.binary_join_element_wise(
        table.column("trace_id").cast(pa.string()), table.column("span_id").cast(pa.string()), "/"
    )


def last_of_each_span(batch: pa.Table) -> pa.Table:
    """``batch`` without repeated (trace_id, span_id) pairs, keeping the last."""
    if pc.count_distinct(batch.column("span_id")).as_py() == batch.num_rows:
        return batch
    reversed_rows = pa.array(range(batch.num_rows - 1, -1, -1), pa.int64())
    return first_of_each_span(batch.take(reversed_rows))
