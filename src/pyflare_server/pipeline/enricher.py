"""Resource entries the collector adds to what it stores: its host, environment, version.

Every row's resource map gets ``pyflare.collector.host`` (this collector's
host, replacing one set upstream); ``deployment.environment.name`` and
``service.version`` are added when configured and the row has none (the
deprecated ``deployment.environment`` counts as one). Original entries keep
their order and the new ones follow, so rows that shared a resource still do
(the store writes a shared resource once).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pyflare_server.settings import EnricherSettings

__all__ = ["COLLECTOR_HOST", "Enricher"]

#: Resource key of the host of the collector that received the data.
COLLECTOR_HOST = "pyflare.collector.host"
_ENVIRONMENT = "deployment.environment.name"
_ENVIRONMENT_KEYS = (_ENVIRONMENT, "deployment.environment")
_VERSION = "service.version"
Ints = npt.NDArray[np.int64]
_MAX_CACHED_RESOURCES = 32
_MAX_CACHED_ROWS = 1024
_MAX_INT32 = 2**31 - 1


class Enricher:
    """Adds the configured resource entries to every row (see the module docstring)."""

    def __init__(self, settings: EnricherSettings | None = None) -> None:
        self.settings = settings if settings is not None else EnricherSettings()
        # Enriched resource columns by original resource: a client sends the same one.
        self._columns: dict[tuple[tuple[str, ...], tuple[str, ...]], pa.Array] = {}

    def enrich(self, signal: str, batch: pa.Table) -> pa.Table:
        """``batch`` with its ``resource`` column enriched (any signal with one)."""
        if batch.num_rows == 0 or "resource" not in batch.column_names:
            return batch
        index = batch.schema.get_field_index("resource")
        return batch.set_column(index, batch.schema.field(index), self._column(batch[index]))

    def _column(self, column: pa.ChunkedArray) -> pa.Array:
        maps = column.combine_chunks()
        offsets = np.asarray(maps.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        first, last = int(offsets[0]), int(offsets[-1])
        # A slice's children are not sliced: cut them to its entries.
        keys = maps.keys.slice(first, last - first)
        values = maps.items.slice(first, last - first)
        offsets -= first
        shared = None if maps.null_count else _shared_row(offsets, keys, values)
        if shared is not None:
            return self._tiled(*shared, len(maps))
        return self._per_row(offsets, keys, values)

    def _added(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(key, value, keys that count as present) of each optional entry configured."""
        added: list[tuple[str, str, tuple[str, ...]]] = []
        if self.settings.environment is not None:
            added.append((_ENVIRONMENT, self.settings.environment, _ENVIRONMENT_KEYS))
        if self.settings.version is not None:
            added.append((_VERSION, self.settings.version, (_VERSION,)))
        return added

    def _tiled(self, keys: list[str], values: list[str], n: int) -> pa.Array:
        """Every row has the resource ``keys``/``values``: enrich it once, repeat it.

        The repeated column is kept per resource (Arrow arrays are immutable), so a
        client's next request of up to as many rows takes a slice of it.
        """
        cache_key = (tuple(keys), tuple(values))
        cached = self._columns.get(cache_key)
        if cached is not None and len(cached) >= n:
            return cached.slice(0, n)
        new_keys, new_values = self._enriched_row(keys, values)
        width = len(new_keys)
        column = pa.MapArray.from_arrays(
            pa.array(np.arange(n + 1, dtype=np.int32) * width),
            _repeat(new_keys, n),
            _repeat(new_values, n),
        )
        if n <= _MAX_CACHED_ROWS:
            if len(self._columns) >= _MAX_CACHED_RESOURCES:
                self._columns.clear()  # a collector sees few distinct resources
            self._columns[cache_key] = column
        return column

    def _enriched_row(self, keys: list[str], values: list[str]) -> tuple[pa.Array, pa.Array]:
        row = [(k, v) for k, v in zip(keys, values, strict=True) if k != COLLECTOR_HOST]
        row.append((COLLECTOR_HOST, self.settings.host))
        for key, value, present in self._added():
            if not any(k in present for k, _ in row):
                row.append((key, value))
        return pa.array([k for k, _ in row], pa.string()), pa.array(
            [v for _, v in row], pa.string()
        )

    def _per_row(self, offsets: Ints, keys: pa.Array, values: pa.Array) -> pa.Array:
        n = len(offsets) - 1
        parents = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
        # Drop an upstream collector's host; ours replaces it.
        ours = pc.fill_null(pc.equal(keys, COLLECTOR_HOST), False)
        if pc.any(ours).as_py():
            own = _bools(ours)
            keys, values, parents = keys.filter(~own), values.filter(~own), parents[~own]
        added_parents = [np.arange(n, dtype=np.int64)]
        added_keys = [COLLECTOR_HOST]
        added_values = [self.settings.host]
        for key, value, present in self._added():
            found = _bools(pc.fill_null(pc.is_in(keys, pa.array(present)), False))
            lacking = np.bincount(parents[found], minlength=n) == 0
            added_parents.append(np.flatnonzero(lacking))
            added_keys.append(key)
            added_values.append(value)
        all_parents = np.concatenate([parents, *added_parents])
        # Which added entry each new position is: 0 for the first added key, ...
        which = pa.array(np.concatenate([np.full(len(p), i) for i, p in enumerate(added_parents)]))
        all_keys = pa.concat_arrays([keys, pc.take(pa.array(added_keys, pa.string()), which)])
        all_values = pa.concat_arrays([values, pc.take(pa.array(added_values, pa.string()), which)])
        # Stable: a row's own entries, then the added ones, in that order.
        order = pa.array(np.argsort(all_parents, kind="stable"))
        new_offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(np.bincount(all_parents, minlength=n), out=new_offsets[1:])
        return pa.MapArray.from_arrays(
            pa.array(new_offsets), pc.take(all_keys, order), pc.take(all_values, order)
        )


def _repeat(strings: pa.Array, n: int) -> pa.Array:
    """``strings`` (no nulls, unsliced) repeated ``n`` times, by copying its bytes."""
    _, offsets_buffer, data_buffer = strings.buffers()
    width = len(strings)
    ends = np.frombuffer(offsets_buffer, dtype=np.int32)[: width + 1]
    data = (
        np.frombuffer(data_buffer, dtype=np.uint8)[: ends[-1]]
        if data_buffer is not None
        else np.zeros(0, dtype=np.uint8)
    )
    if n * len(data) >= _MAX_INT32:  # too big for string offsets: let Arrow do it
        return pc.take(strings, pa.array(np.tile(np.arange(width, dtype=np.int64), n)))
    offsets = np.empty(n * width + 1, dtype=np.int32)
    offsets[:-1] = (ends[:-1] + np.arange(n, dtype=np.int32)[:, None] * len(data)).ravel()
    offsets[-1] = n * len(data)
    return pa.StringArray.from_buffers(
        n * width, pa.py_buffer(offsets), pa.py_buffer(np.tile(data, n))
    )


def _bools(mask: pa.Array) -> npt.NDArray[np.bool_]:
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _string_buffers(array: pa.Array) -> tuple[Ints, npt.NDArray[np.uint8]]:
    """(offsets, bytes) of a string array without nulls; offsets index the bytes."""
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[
        array.offset : array.offset + len(array) + 1
    ]
    if data_buffer is None:
        return offsets.astype(np.int64), np.zeros(0, dtype=np.uint8)
    return offsets.astype(np.int64), np.frombuffer(data_buffer, dtype=np.uint8)


def _shared_row(
    offsets: Ints, keys: pa.Array, values: pa.Array
) -> tuple[list[str], list[str]] | None:
    """The one resource every row has, as (keys, values), or None when rows differ.

    Compares the raw bytes (one numpy pass), since a request's rows nearly
    always share their resource and the check runs on every request.
    """
    n = len(offsets) - 1
    width = int(offsets[1]) if n else 0
    if n == 0 or not bool((np.diff(offsets) == width).all()):
        return None
    if keys.null_count or values.null_count:
        return None
    if not pa.types.is_string(keys.type) or not pa.types.is_string(values.type):
        return None
    for strings in (keys, values):
        if width == 0:
            break
        ends, data = _string_buffers(strings)
        row_bytes = int(ends[width] - ends[0])
        if int(ends[-1] - ends[0]) != row_bytes * n:
            return None
        lengths = np.diff(ends).reshape(n, width)
        if not bool((lengths == lengths[0]).all()):
            return None
        region = data[int(ends[0]) : int(ends[-1])]
        if row_bytes and not bool((region.reshape(n, row_bytes) == region[:row_bytes]).all()):
            return None
    return keys.slice(0, width).to_pylist(), values.slice(0, width).to_pylist()
