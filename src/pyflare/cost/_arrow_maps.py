"""Reading and editing string->string map columns (span attributes, resources) in bulk.

The cost processor needs a few keys out of every span's attribute map and writes
a few back. Both are done over the map's flat key and value arrays with Arrow and
numpy kernels, never with a Python loop over rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["STR_MAP", "build_maps", "edit_maps", "edit_rows", "map_values", "scatter"]

STR_MAP = pa.map_(pa.string(), pa.string())


def _as_array(column: pa.Array | pa.ChunkedArray) -> pa.MapArray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _flat_arrays(maps: pa.MapArray) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """(offsets from 0, keys, values) of a map array."""
    offsets = maps.offsets.to_numpy().astype(np.int64)
    start, end = int(offsets[0]), int(offsets[-1])
    keys = maps.keys.slice(start, end - start)
    values = maps.items.slice(start, end - start)
    return offsets - start, keys, values


def _flat(maps: pa.MapArray) -> tuple[np.ndarray, pa.Array, pa.Array, np.ndarray]:
    """(offsets from 0, keys, values, row of each entry) of a map array."""
    offsets, keys, values = _flat_arrays(maps)
    rows = np.repeat(np.arange(len(maps), dtype=np.int64), np.diff(offsets))
    return offsets, keys, values, rows


def scatter(values: pa.Array, rows: np.ndarray, length: int) -> pa.Array:
    """An array of ``length`` nulls with ``values[i]`` at position ``rows[i]``.

    ``rows`` must be increasing for strings (built from buffers, without a take).
    """
    if len(values) == 0:
        return pa.nulls(length, values.type)
    if values.type == pa.string() and values.null_count == 0:
        return _scatter_strings(values, rows, length)
    positions = np.full(length, -1, dtype=np.int64)
    positions[rows] = np.arange(len(values), dtype=np.int64)
    return values.take(pa.array(positions, mask=positions < 0))


def _scatter_strings(values: pa.StringArray, rows: np.ndarray, length: int) -> pa.Array:
    source = np.frombuffer(values.buffers()[1], dtype=np.int32)[
        values.offset : values.offset + len(values) + 1
    ]
    lengths = np.zeros(length, dtype=np.int64)
    lengths[rows] = np.diff(source)
    offsets = np.zeros(length + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = values.buffers()[2]
    start, end = int(source[0]), int(source[-1])
    valid = np.zeros(length, dtype=bool)
    valid[rows] = True
    validity = pa.array(valid).buffers()[1]
    offsets_buffer = pa.py_buffer((offsets + start).astype(np.int32))
    if end - start >= 2**31:  # pragma: no cover - a single batch's values over 2 GiB
        raise ValueError("attribute values too large for one batch")
    return pa.StringArray.from_buffers(length, offsets_buffer, data, validity)


def map_values(column: pa.Array | pa.ChunkedArray, keys: Sequence[str]) -> dict[str, pa.Array]:
    """For each key some row has, a string array of each row's value there (null when absent)."""
    maps = _as_array(column)
    length = len(maps)
    wanted = list(dict.fromkeys(keys))
    if not wanted or length == 0:
        return {}
    offsets, flat_keys, flat_values = _flat_arrays(maps)
    encoded = flat_keys.dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    code_of = {key: i for i, key in enumerate(encoded.dictionary.to_pylist())}
    # Row of each entry: count the row starts at or before it (empty rows included).
    starts = np.bincount(offsets[1:-1], minlength=len(flat_keys) + 1)[: len(flat_keys)]
    entry_rows = np.cumsum(starts)
    out: dict[str, pa.Array] = {}
    for key in wanted:
        code = code_of.get(key)
        if code is None:
            continue
        hits = np.flatnonzero(codes == code)
        out[key] = scatter(flat_values.take(pa.array(hits)), entry_rows[hits], length)
    return out


def build_maps(entries: Mapping[str, pa.Array], length: int) -> pa.MapArray:
    """A map array whose row i holds ``key: entries[key][i]`` for every non-null value."""
    if not entries:
        return pa.MapArray.from_arrays(
            pa.array(np.zeros(length + 1, dtype=np.int32)),
            pa.array([], pa.string()),
            pa.array([], pa.string()),
        )
    names = list(entries)
    columns = [entries[name].cast(pa.string()) for name in names]
    valid = np.stack([c.is_valid().to_numpy(zero_copy_only=False) for c in columns], axis=1)
    counts = valid.sum(axis=1)
    offsets = np.zeros(length + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    # Entries row by row, keys in the order given: positions in the key-major concatenation.
    row_idx, key_idx = np.nonzero(valid)
    take = key_idx.astype(np.int64) * length + row_idx
    values = pa.concat_arrays(columns).take(pa.array(take))
    keys = pa.array(names, pa.string()).take(pa.array(key_idx))
    return pa.MapArray.from_arrays(pa.array(offsets), keys, values)


def edit_maps(
    column: pa.Array | pa.ChunkedArray,
    drop: Sequence[str],
    add: Mapping[str, pa.Array],
    drop_in: np.ndarray | None = None,
) -> pa.MapArray:
    """Each row's map without the keys in ``drop``, then with ``add``'s non-null values.

    ``drop_in`` (a boolean mask over rows), when given, limits dropping to those rows.
    """
    maps = _as_array(column)
    length = len(maps)
    _, flat_keys, flat_values, rows = _flat(maps)
    keep = np.ones(len(flat_keys), dtype=bool)
    if drop and len(flat_keys):
        keep = ~pc.is_in(flat_keys, value_set=pa.array(list(drop), pa.string())).to_numpy(
            zero_copy_only=False
        )
        if drop_in is not None:
            keep |= ~drop_in[rows]
    kept_counts = np.bincount(rows[keep], minlength=length) if len(rows) else np.zeros(length, int)
    added = build_maps(add, length)
    add_offsets, add_keys, add_values, _ = _flat(added)
    add_counts = np.diff(add_offsets)
    new_offsets = np.zeros(length + 1, dtype=np.int64)
    np.cumsum(kept_counts + add_counts, out=new_offsets[1:])
    # Where each kept and each added entry lands in the new flat arrays.
    kept_rows = rows[keep]
    kept_rank = np.arange(len(kept_rows), dtype=np.int64) - np.repeat(
        np.concatenate(([0], np.cumsum(kept_counts)[:-1])), kept_counts
    )
    kept_pos = new_offsets[kept_rows] + kept_rank
    add_rows = np.repeat(np.arange(length, dtype=np.int64), add_counts)
    add_rank = np.arange(len(add_rows), dtype=np.int64) - np.repeat(add_offsets[:-1], add_counts)
    add_pos = new_offsets[add_rows] + kept_counts[add_rows] + add_rank
    total = int(new_offsets[-1])
    source = np.empty(total, dtype=np.int64)
    kept_index = np.flatnonzero(keep)
    source[kept_pos] = kept_index
    source[add_pos] = len(flat_keys) + np.arange(len(add_rows), dtype=np.int64)
    index = pa.array(source)
    keys = pa.concat_arrays([flat_keys, add_keys]).take(index)
    values = pa.concat_arrays([flat_values, add_values]).take(index)
    if new_offsets[-1] < 2**31:
        return pa.MapArray.from_arrays(pa.array(new_offsets.astype(np.int32)), keys, values)
    raise ValueError("attribute maps too large for one batch")  # pragma: no cover - 2**31 entries


# Up to this share of rows edited, edit_rows() splices the edited rows into the
# untouched runs (cheap slices); beyond it, one pass over every entry is cheaper.
_SPLICE_SHARE = 0.1


def edit_rows(
    column: pa.Array | pa.ChunkedArray,
    rows: np.ndarray,
    drop: Sequence[str],
    add: Mapping[str, pa.Array],
) -> pa.MapArray:
    """``column`` with only ``rows`` (sorted positions) edited as :func:`edit_maps` does.

    ``add``'s arrays have one value per edited row. Rows not edited are copied as
    they are, in runs.
    """
    maps = _as_array(column)
    length = len(maps)
    if len(rows) == 0:
        return maps
    if len(rows) > _SPLICE_SHARE * length:
        full = {key: scatter(values, rows, length) for key, values in add.items()}
        mask = np.zeros(length, dtype=bool)
        mask[rows] = True
        return edit_maps(maps, drop, full, mask)
    edited = edit_maps(maps.take(pa.array(rows)), drop, add)
    offsets, flat_keys, flat_values = _flat_arrays(maps)
    new_offsets, new_keys, new_values = _flat_arrays(edited)
    key_pieces: list[pa.Array] = []
    value_pieces: list[pa.Array] = []
    previous = 0
    old_keys, old_values = flat_keys.slice, flat_values.slice
    add_keys, add_values = new_keys.slice, new_values.slice
    for start, end, a, b in zip(
        offsets[rows].tolist(),
        offsets[rows + 1].tolist(),
        new_offsets[:-1].tolist(),
        new_offsets[1:].tolist(),
        strict=True,
    ):
        key_pieces += (old_keys(previous, start - previous), add_keys(a, b - a))
        value_pieces += (old_values(previous, start - previous), add_values(a, b - a))
        previous = end
    key_pieces.append(flat_keys.slice(previous))
    value_pieces.append(flat_values.slice(previous))
    counts = np.diff(offsets)
    counts[rows] = np.diff(new_offsets)
    out_offsets = np.zeros(length + 1, dtype=np.int64)
    np.cumsum(counts, out=out_offsets[1:])
    return pa.MapArray.from_arrays(
        pa.array(out_offsets.astype(np.int32)),
        pa.concat_arrays(key_pieces),
        pa.concat_arrays(value_pieces),
    )
