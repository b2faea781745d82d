"""Arrow batches on their way into a store: checked, deduplicated, compacted.

What every store does to a batch before it inserts it, whatever the engine.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pyflare.errors import StoreError

__all__ = ["conform", "first_of_each_span", "shared_resource"]


def conform(batch: pa.Table | pa.RecordBatch, schema: pa.Schema, what: str) -> pa.Table:
    """``batch`` as a table with exactly ``schema``, or ``StoreError`` saying why not.

    Columns are selected and cast by name, so a batch with extra columns or its
    columns in another order is accepted; ``what`` names the schema in messages.
    """
    if not isinstance(batch, pa.Table | pa.RecordBatch):
        raise StoreError(
            f"a batch must be a pyarrow Table with the {what} schema, got {type(batch).__name__}"
        )
    if isinstance(batch, pa.RecordBatch):
        batch = pa.Table.from_batches([batch])
    if batch.schema != schema:
        try:
            batch = batch.select(schema.names).cast(schema)
        except (KeyError, pa.ArrowException, ValueError, TypeError) as exc:
            raise StoreError(f"batch does not have the {what} schema: {exc}") from exc
    missing = [
        field.name for field in schema if not field.nullable and batch.column(field.name).null_count
    ]
    if missing:
        raise StoreError(f"batch has nulls in columns that require a value: {missing}")
    return batch


def first_of_each_span(batch: pa.Table) -> pa.Table:
    """``batch`` without repeated (trace_id, span_id) pairs, keeping the first."""
    # Span ids are random 64-bit numbers: when they are all distinct, so are the pairs.
    if pc.count_distinct(batch.column("span_id")).as_py() == batch.num_rows:
        return batch
    numbered = batch.append_column("_row", pa.array(range(batch.num_rows), pa.int64()))
    first = numbered.group_by(["trace_id", "span_id"], use_threads=False).aggregate(
        [("_row", "min")]
    )
    if first.num_rows == batch.num_rows:
        return batch
    keep = first.column("_row_min")
    return batch.take(keep.take(pc.sort_indices(keep)))


_ENTRIES = pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())]))


def shared_resource(column: pa.ChunkedArray) -> tuple[list[str], list[str]] | None:
    """(keys, values) of the resource map when every row has the same one, else None."""
    if column.null_count or len(column) == 0:
        return None
    # The same layout as the map, seen as a list, which Arrow's kernels take.
    entries = column.cast(_ENTRIES)
    first = entries[0].as_py()
    width = len(first)
    if width == 0 or not pc.all(pc.equal(pc.list_value_length(entries), width)).as_py():
        return None
    keys = [entry["key"] for entry in first]
    values = [entry["value"] for entry in first]
    flat = pc.list_flatten(entries).combine_chunks()
    # Every row has `width` entries, so row r's entries sit at r * width + i.
    pattern = pa.array(list(range(width)) * len(column), pa.int32())
    for field, expected in (("key", keys), ("value", values)):
        tiled = pc.take(pa.array(expected, pa.string()), pattern)
        if not pc.all(pc.equal(flat.field(field), tiled)).as_py():
            return None
    return keys, values
