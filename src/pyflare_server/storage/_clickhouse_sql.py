"""User SQL on the ClickHouse store: guarded, parameters typed, time-limited.

ClickHouse SQL goes through :func:`~pyflare.store.sqlguard.guard_select` as
written (``{name:Type}`` parameters, bound from a dict). DuckDB SQL (the
default dialect of :meth:`SpanStore.sql`, what ``pyflare.sql()`` users write)
is guarded in DuckDB first, then its ``?``/``$n``/``$name`` parameters become
typed ClickHouse ones from the Python values bound to them, and the ClickHouse
text is guarded again before it runs: what runs is always what the guard checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError

from pyflare.errors import QueryError
from pyflare.store.base import PYFLARE_TABLES
from pyflare.store.sqlguard import GuardedQuery, guard_select

__all__ = ["guarded_clickhouse"]


def _type_of(name: str, value: Any) -> str:
    if value is None:
        return "Nullable(String)"
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, int):
        return "Int64"
    if isinstance(value, float):
        return "Float64"
    if isinstance(value, str | bytes):
        return "String"
    if isinstance(value, dt.datetime):
        return "DateTime64(6, 'UTC')"
    if isinstance(value, dt.date):
        return "Date"
    raise QueryError(
        f"parameter {name} has a {type(value).__name__} value; "
        "use None, bool, int, float, str, bytes, date or datetime"
    )


def _bound(
    parameters: tuple[str, ...], params: Sequence[Any] | Mapping[str, Any] | None
) -> dict[str, Any]:
    """The value of each DuckDB parameter (positional ones named "1", "2", …)."""
    if not parameters:
        if params:
            raise QueryError("the query has no parameters, but values were given")
        return {}
    if params is None:
        raise QueryError(f"the query has parameters {list(parameters)} but no values were given")
    if isinstance(params, Mapping):
        values = {str(k): v for k, v in params.items()}
    elif isinstance(params, Sequence) and not isinstance(params, str | bytes):
        values = {str(i): v for i, v in enumerate(params, start=1)}
    else:
        raise QueryError(f"parameters must be a list or a dict, got {type(params).__name__}")
    missing = [name for name in parameters if name not in values]
    if missing or len(values) != len(parameters):
        raise QueryError(
            f"the query takes parameters {list(parameters)}, got values for {list(values)}"
        )
    return values


def _from_duckdb(
    query: str, params: Sequence[Any] | Mapping[str, Any] | None, max_rows: int, database: str
) -> tuple[GuardedQuery, dict[str, Any]]:
    checked = guard_select(
        query, allowed_tables=PYFLARE_TABLES, read_dialect="duckdb", write_dialect="duckdb",
        max_rows=max_rows, database=database,
    )  # fmt: skip
    values = _bound(checked.parameters, params)
    try:
        tree = parse_one(checked.sql, dialect="duckdb")
        for node in list(tree.find_all(exp.Placeholder)):
            name = node.name
            kind = exp.DataType.build(_type_of(name, values[name]), dialect="clickhouse")
            node.replace(exp.Placeholder(this=f"p_{name}", kind=kind))
        text = tree.sql(dialect="clickhouse", comments=False)
    except (SqlglotError, ValueError, KeyError) as error:
        raise QueryError(f"the query can't be translated to ClickHouse: {error}") from error
    guarded = guard_select(
        text, allowed_tables=PYFLARE_TABLES, read_dialect="clickhouse",
        write_dialect="clickhouse", max_rows=max_rows, database=database,
    )  # fmt: skip
    return guarded, {f"p_{name}": value for name, value in values.items()}


def guarded_clickhouse(
    query: str,
    params: Sequence[Any] | Mapping[str, Any] | None,
    *,
    dialect: str,
    max_rows: int,
    database: str,
) -> tuple[str, dict[str, Any]]:
    """The checked ClickHouse text of ``query`` and its parameters, or ``QueryError``."""
    if dialect == "duckdb":
        guarded, bound = _from_duckdb(query, params, max_rows, database)
        return guarded.sql, bound
    guarded = guard_select(
        query, allowed_tables=PYFLARE_TABLES, read_dialect=dialect,
        write_dialect="clickhouse", max_rows=max_rows, database=database,
    )  # fmt: skip
    if params is not None and not isinstance(params, Mapping):
        raise QueryError(
            "ClickHouse SQL takes named parameters written {name:Type}: bind them with a dict"
        )
    values = dict(params or {})
    names = set(guarded.parameters)
    if set(values) != names:
        raise QueryError(
            f"the query takes parameters {sorted(names)}, got values for {sorted(values)}"
        )
    return guarded.sql, values
