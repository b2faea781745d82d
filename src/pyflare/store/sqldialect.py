"""ClickHouse SQL made to run on DuckDB (DESIGN.md §7).

The read-only guard (:mod:`pyflare.store.sqlguard`) accepts ClickHouse SQL even when the
store is DuckDB, so that one query works against either backend. sqlglot translates
much of ClickHouse already; :func:`clickhouse_to_duckdb` fills the gaps that come up in
observability queries:

* ClickHouse functions with no sqlglot mapping (``toStartOfFiveMinutes``, ``uniqExact``,
  ``quantile(p)(x)``, the ``-If`` combinator, …) become their DuckDB equivalents;
* ``now()``/``today()`` read the clock in UTC, because PyFlare stores naive UTC timestamps;
* ``PREWHERE`` joins ``WHERE`` (sqlglot would drop it) and ``FINAL`` is removed;
* typed parameters ``{name:Type}`` become ``CAST($name AS type)``;
* ClickHouse-only clauses (``LIMIT … BY``, ``ARRAY JOIN``, ``SAMPLE``, scalar ``WITH``)
  are refused with a hint instead of being translated into something else.

Anything not listed passes through and fails in DuckDB with its own "function does not
exist" error. The tree given here has already passed the guard's checks, and the guard
checks the DuckDB text it writes from it again, so no rewrite here can open a way around
them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from sqlglot import exp

from pyflare.errors import QueryError

__all__ = ["NAMED_CALLS", "clickhouse_to_duckdb"]

# Calls sqlglot has no class for, so it names them by their own ``this``: their
# ``name`` is the function's name as written. The guard reads the same tuple.
NAMED_CALLS: Final = (exp.Anonymous, exp.AnonymousAggFunc, exp.ParameterizedAgg)


def clickhouse_to_duckdb(tree: exp.Query) -> exp.Query:
    """Rewrite a parsed ClickHouse query in place so that DuckDB can run it.

    Raises:
        QueryError: the query uses a ClickHouse-only clause with no DuckDB form.
    """
    # Reversed pre-order reaches every child before its parent, so rewritten children
    # are already in place when their parent is rebuilt around them.
    for node in reversed(list(tree.dfs())):
        new = _duckdb_equivalent(node)
        if new is not None and new is not node and node is not tree:
            node.replace(new)
    return tree


def _call(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _utc_now(zone: exp.Expr | None = None) -> exp.Expr:
    # PyFlare stores naive UTC timestamps. DuckDB's now() is a TIMESTAMPTZ that won't
    # compare with them; ClickHouse's is a naive DateTime, which this matches.
    return _call("timezone", zone or exp.Literal.string("UTC"), _call("now"))


def _to_date(value: exp.Expr) -> exp.Expr:
    return exp.Cast(this=value, to=exp.DataType.build("DATE"))


def _today() -> exp.Expr:
    return _to_date(_utc_now())


def _interval(amount: exp.Expr, unit: str) -> exp.Interval:
    return exp.Interval(this=amount, unit=exp.var(unit.upper()))


_CASTS: Final = {
    "todate": "DATE", "todatetime": "TIMESTAMP", "todatetime64": "TIMESTAMP_NS",
    "tostring": "VARCHAR", "tofloat32": "FLOAT", "tofloat64": "DOUBLE",
    "toint8": "TINYINT", "toint16": "SMALLINT", "toint32": "INTEGER", "toint64": "BIGINT",
    "touint8": "UTINYINT", "touint16": "USMALLINT", "touint32": "UINTEGER", "touint64": "UBIGINT",
}  # fmt: skip
_RENAMES: Final = {
    "tohour": "hour", "tominute": "minute", "tosecond": "second", "toyear": "year",
    "tomonth": "month", "toquarter": "quarter", "todayofmonth": "day",
    "mapcontains": "map_contains", "mapkeys": "map_keys", "mapvalues": "map_values",
    "anylast": "last", "replaceall": "replace", "lowerutf8": "lower", "upperutf8": "upper",
}  # fmt: skip
_UNARY: Final[dict[str, Callable[[exp.Expr], exp.Expr]]] = {
    "isnull": lambda v: exp.Is(this=v, expression=exp.Null()),
    "isnotnull": lambda v: exp.Not(this=exp.Is(this=v, expression=exp.Null())),
    "uniqexact": lambda v: exp.Count(this=exp.Distinct(expressions=[v])),
    "countdistinct": lambda v: exp.Count(this=exp.Distinct(expressions=[v])),
    "uniqcombined": lambda v: exp.ApproxDistinct(this=v),
    "uniqcombined64": lambda v: exp.ApproxDistinct(this=v),
    "uniqhll12": lambda v: exp.ApproxDistinct(this=v),
    "uniqtheta": lambda v: exp.ApproxDistinct(this=v),
    "stddevpop": lambda v: exp.StddevPop(this=v),
    "stddevsamp": lambda v: exp.StddevSamp(this=v),
    "varpop": lambda v: exp.VariancePop(this=v),
    "varsamp": lambda v: exp.Variance(this=v),
    "grouparray": lambda v: exp.ArrayAgg(this=v),
    "groupuniqarray": lambda v: exp.ArrayAgg(this=exp.Distinct(expressions=[v])),
}
_BUCKET_MINUTES: Final = {
    "tostartoffiveminutes": 5,
    "tostartoftenminutes": 10,
    "tostartoffifteenminutes": 15,
}
_UNITS: Final = frozenset({"second", "minute", "hour", "day", "week", "month", "year"})


def _rewrite_call(name: str, args: list[exp.Expr]) -> exp.Expr | None:
    key = name.lower()
    if key in _CASTS and (len(args) == 1 or (key == "todatetime64" and len(args) == 2)):
        return exp.Cast(this=args[0], to=exp.DataType.build(_CASTS[key], dialect="duckdb"))
    if key in _RENAMES:
        return _call(_RENAMES[key], *args)
    if key in _UNARY and len(args) == 1:
        return _UNARY[key](args[0])
    match key, args:
        case ("now", [] | [_]):
            return _utc_now(*args)
        case ("now64", [] | [_] | [_, _]):
            return _utc_now(*args[1:])
        case ("today", []):
            return _today()
        case ("yesterday", []):
            return exp.Sub(this=_today(), expression=exp.Literal.number(1))
        case (_, [value]) if key in _BUCKET_MINUTES:
            bucket = _interval(exp.Literal.number(_BUCKET_MINUTES[key]), "minute")
            return _call("time_bucket", bucket, value)
        case ("tostartofweek", [value]):
            # ClickHouse's default weeks start on Sunday, DuckDB's on Monday.
            day = _interval(exp.Literal.number(1), "day")
            monday = exp.TimestampTrunc(
                this=exp.Add(this=value, expression=day), unit=exp.var("WEEK")
            )
            return _to_date(exp.Sub(this=monday, expression=day.copy()))
        case ("tomonday", [value]):
            return _to_date(exp.TimestampTrunc(this=value, unit=exp.var("WEEK")))
        case ("tounixtimestamp", [value]):
            seconds = _call("floor", _call("epoch", value))
            return exp.Cast(this=seconds, to=exp.DataType.build("BIGINT"))
        case ("toyyyymm", [value]):
            year = exp.Mul(this=_call("year", value), expression=exp.Literal.number(100))
            return exp.paren(exp.Add(this=year, expression=_call("month", value.copy())))
        case ("tostartofinterval", [value, exp.Interval() as interval]):
            return _call("time_bucket", interval, value)
        case ("intdiv", [left, right]):
            return exp.IntDiv(this=left, expression=right)
        case ("multiif", [_, _, _, *_]) if len(args) % 2:
            pairs = [exp.If(this=c, true=v) for c, v in zip(args[:-1:2], args[1::2], strict=True)]
            return exp.Case(ifs=pairs, default=args[-1])
        case (_, [value, amount]) if key.startswith(("add", "subtract")) and key.endswith("s"):
            unit = key.removeprefix("add").removeprefix("subtract")[:-1]
            if unit in _UNITS:
                shift = exp.Add if key.startswith("add") else exp.Sub
                return shift(this=value, expression=_interval(amount, unit))
        case (_, [amount]) if key.startswith("tointerval") and key[10:] in _UNITS:
            return _interval(amount, key[10:])
    return None


def _parameterized(name: str, params: list[exp.Expr], args: list[exp.Expr]) -> exp.Expr | None:
    """``quantile*(p)(x)``, ``quantiles*(p, …)(x)`` and ``topK(n)(x)``."""
    if len(args) != 1 or not params:
        return None
    if name.startswith("quantiles"):
        return exp.Quantile(this=args[0], quantile=exp.Array(expressions=params))
    if name.startswith("quantile") and len(params) == 1:
        return exp.Quantile(this=args[0], quantile=params[0])
    if name == "topk" and len(params) == 1:
        return _call("approx_top_k", args[0], params[0])
    return None


def _duckdb_equivalent(node: exp.Expr) -> exp.Expr | None:
    """The DuckDB form of one ClickHouse node, or None to keep it as it is."""
    if isinstance(node, exp.Placeholder):
        kind = node.args.get("kind")
        if isinstance(kind, exp.DataType):
            return exp.Cast(this=exp.Placeholder(this=node.name), to=kind)
        return None
    if isinstance(node, exp.DataType):
        if node.this == exp.DataType.Type.DATETIME64:
            return exp.DataType.build("TIMESTAMP_NS", dialect="duckdb")
        if node.this == exp.DataType.Type.LOWCARDINALITY and node.expressions:
            inner: exp.Expr = node.expressions[0]
            return inner  # a storage hint with no DuckDB counterpart
        return None
    if isinstance(node, exp.Final):
        table: exp.Expr = node.this
        return table  # DuckDB tables have no unmerged parts to collapse
    if isinstance(node, exp.Select) and node.args.get("prewhere") is not None:
        # sqlglot drops PREWHERE for DuckDB, which would silently lose the filter.
        condition = node.args["prewhere"].this
        node.set("prewhere", None)
        node.where(condition, copy=False)
        return None
    if isinstance(node, exp.CTE) and node.args.get("scalar"):
        raise QueryError(
            f"WITH <expression> AS {node.alias} runs on ClickHouse only; inline the expression"
        )
    if isinstance(node, exp.Limit) and node.args.get("expressions"):
        raise QueryError(
            "LIMIT ... BY runs on ClickHouse only; use row_number() OVER (PARTITION BY ...)"
        )
    if isinstance(node, exp.Join) and node.text("kind").upper() == "ARRAY":
        raise QueryError(
            "ARRAY JOIN runs on ClickHouse only; use arrayJoin(...) in the SELECT list"
        )
    if isinstance(node, exp.Table) and node.args.get("sample") is not None:
        raise QueryError("SAMPLE runs on ClickHouse only")
    if not isinstance(node, NAMED_CALLS):
        return None
    name = node.name
    params: list[exp.Expr] | None = None
    args: list[exp.Expr] = list(node.expressions)
    if isinstance(node, exp.ParameterizedAgg):
        # ClickHouse's f(params)(args): sqlglot keeps the params in `expressions`.
        params, args = args, list(node.args.get("params") or [])

    def rewrite(name: str, args: list[exp.Expr]) -> exp.Expr | None:
        if params is None:
            return _rewrite_call(name, args)
        return _parameterized(name.lower(), params, args)

    rewritten = rewrite(name, args)
    if rewritten is not None or not name.endswith("If") or not args:
        return rewritten
    # The -If combinator: aggregate over the rows where the last argument holds.
    base = rewrite(name[:-2], args[:-1])
    if base is None and params is None:
        base = exp.func(name[:-2], *args[:-1], dialect="clickhouse")
    if base is None:
        return None
    return exp.Filter(this=base, expression=exp.Where(this=args[-1]))
