"""Writes of the ClickHouse store that take more than one insert: migrations, costs.

Costs: ``costs`` keeps one row per model call; writing a row for a span that has
one replaces it (ReplacingMergeTree, versioned by insert time). The hourly
rollup (``costs_hourly_mv``, a SummingMergeTree) learns of every change through
``cost_changes``: the new rows with sign +1, the rows they replace with -1.
``costs`` is the truth that the cost methods read; the rollup serves
``costs_hourly``. A failure between the two inserts leaves the rollup off by
that batch until the batch is written again, which the at-least-once pipeline does.

Span cost rewrites (``pyflare costs recompute``): the changed spans are written
again, whole, with a newer ``_version`` than the stored ones, through a staging
table (the hidden version column can only be set by ``INSERT … SELECT``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pyflare.errors import StoreError
from pyflare.records import SPAN_SCHEMA
from pyflare_server.storage._clickhouse_arrow import span_keys
from pyflare_server.storage._clickhouse_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    VERSION_TABLE,
    Retention,
    migration_statements,
)

__all__ = ["CostWriter", "migrate"]

Command = Callable[..., None]
Read = Callable[..., pa.Table]
Insert = Callable[[str, pa.Table, str], None]

_CHANGE_SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("ns")),
        ("service_name", pa.string()),
        ("model_id", pa.string()),
        ("provider", pa.string()),
        ("user_id", pa.string()),
        ("feature_id", pa.string()),
        ("team", pa.string()),
        ("environment", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("total_tokens", pa.int64()),
        ("tokens_estimated", pa.bool_()),
        ("input_cost_micros", pa.int64()),
        ("output_cost_micros", pa.int64()),
        ("total_cost_micros", pa.int64()),
    ]
)
# The span columns update_span_costs() rewrites.
_SPAN_COST_COLUMNS = ("input_tokens", "output_tokens", "total_tokens", "cost_micros", "attributes")
_SPAN_COLUMNS = ", ".join(f"`{name}`" for name in SPAN_SCHEMA.names)


def migrate(
    command: Command, read_rows: Callable[[str], list[tuple[Any, ...]]], retention: Retention
) -> None:
    """Create what the database lacks, migration by migration."""
    command(VERSION_TABLE)
    applied = {int(row[0]) for row in read_rows("SELECT version FROM pyflare_schema")}
    newest = max(applied, default=0)
    if newest > SCHEMA_VERSION:
        raise StoreError(
            f"the ClickHouse database has schema version {newest}, newer than this PyFlare "
            f"supports ({SCHEMA_VERSION}); upgrade PyFlare to open it"
        )
    for version, description, statements in MIGRATIONS:
        if version in applied:
            continue
        for statement in migration_statements(statements, retention):
            command(statement)
        command(
            "INSERT INTO pyflare_schema (version, description) VALUES ({v:UInt32}, {d:String})",
            {"v": version, "d": description},
        )


def _range(column: pa.ChunkedArray) -> dict[str, int]:
    lo, hi = pc.min_max(column.cast(pa.int64())).values()
    return {"lo": int(lo.as_py()), "hi": int(hi.as_py())}


class CostWriter:
    """Replacing cost writes and span cost rewrites over the store's read/insert/command."""

    def __init__(self, read: Read, insert: Insert, command: Command) -> None:
        self._read = read
        self._insert = insert
        self._command = command

    def _stored(self, table: str, time_column: str, batch: pa.Table, columns: str) -> pa.Table:
        """The stored rows of ``table`` for the spans of ``batch``."""
        params: dict[str, Any] = {
            **_range(batch.column(time_column)),
            "traces": pc.unique(batch.column("trace_id")).to_pylist(),
        }
        stored = self._read(
            f"SELECT {columns} FROM {table} WHERE {time_column} BETWEEN "
            "fromUnixTimestamp64Nano({lo:Int64}) AND fromUnixTimestamp64Nano({hi:Int64}) "
            "AND trace_id IN {traces:Array(String)}",
            params,
        )
        keep = pc.is_in(span_keys(stored), value_set=span_keys(batch).combine_chunks())
        return stored.filter(keep)

    def replace(self, batch: pa.Table) -> int:
        """Store cost rows (one per span), replacing stored ones; rows written."""
        names = ", ".join(f"`{n}`" for n in ("trace_id", "span_id", *_CHANGE_SCHEMA.names))
        old = self._stored("costs", "timestamp", batch, names)
        self._insert("costs", batch, "cost rows")
        changes = pa.concat_tables(
            [
                _signed(batch, 1),
                _signed(old.drop_columns(["trace_id", "span_id"]), -1),
            ]
        )
        self._insert("cost_changes", changes, "cost changes")
        return int(batch.num_rows)

    def rewrite_spans(self, batch: pa.Table, stage: str) -> int:
        """Rewrite the cost columns of stored spans; spans changed."""
        stored = self._stored("traces", "start_time", batch, "*").cast(SPAN_SCHEMA)
        if stored.num_rows == 0:
            return 0
        position = {key: i for i, key in enumerate(span_keys(batch).to_pylist())}
        wanted = batch.select(list(_SPAN_COST_COLUMNS)).to_pylist()
        have = stored.select(list(_SPAN_COST_COLUMNS)).to_pylist()
        rows: list[int] = []
        sources: list[int] = []
        for index, key in enumerate(span_keys(stored).to_pylist()):
            source = position[key]
            if _differs(have[index], wanted[source]):
                rows.append(index)
                sources.append(source)
        if not rows:
            return 0
        updated = stored.take(pa.array(rows, pa.int64()))
        replacements = batch.take(pa.array(sources, pa.int64()))
        for name in _SPAN_COST_COLUMNS:
            where = updated.schema.get_field_index(name)
            updated = updated.set_column(where, name, replacements.column(name))
        self._command(f"CREATE TABLE `{stage}` ENGINE = Memory AS SELECT * FROM traces WHERE 0")
        try:
            self._insert(stage, updated, "rewritten spans")
            self._command(
                f"INSERT INTO traces ({_SPAN_COLUMNS}, _version) "
                f"SELECT {_SPAN_COLUMNS}, {{version:UInt64}} FROM `{stage}`",
                {"version": time.time_ns()},
                insert_allow_materialized_columns=1,
            )
        finally:
            self._command(f"DROP TABLE IF EXISTS `{stage}`")
        return len(rows)


def _differs(have: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    for name in _SPAN_COST_COLUMNS:
        a, b = have[name], want[name]
        if name == "attributes":
            a, b = dict(a or []), dict(b or [])
        if a != b:
            return True
    return False


def _signed(rows: pa.Table, sign: int) -> pa.Table:
    changes = rows.select(_CHANGE_SCHEMA.names).cast(_CHANGE_SCHEMA)
    return changes.add_column(0, "sign", pa.array([sign] * rows.num_rows, pa.int8()))
