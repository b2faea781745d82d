"""The read-only guard in front of user SQL (DESIGN.md §7).

``pyflare.sql()`` and ``POST /api/v1/query`` both run SQL that a person typed. Rather
than trust a permission model we can't see from here, :func:`guard_select` parses the
statement with sqlglot and lets through one shape only: a SELECT (or a set operation
of SELECTs) over PyFlare's own tables, with no table functions, no file or URL readers
and no functions that read settings, the environment or other databases. The SQL that
comes back is generated from the checked tree, never the caller's string, and is parsed
and checked a second time in the target dialect before it is returned. ClickHouse input
bound for DuckDB is translated between the two checks by :mod:`pyflare.store.sqldialect`.

Parameters stay placeholders; values are never formatted into the text.

* DuckDB input takes ``?``, ``$1`` and ``$name``. ``?`` marks come back numbered
  (``$1``, ``$2``, …) so that no rewrite can change which value lands where; bind a
  list for positional marks and a dict for named ones. ``?`` can't be mixed with the
  other two forms.
* ClickHouse input takes ``{name:Type}``. On ClickHouse it stays as written; on DuckDB
  it becomes ``CAST($name AS type)``; bind a dict. Type ``Identifier`` is refused: it
  would let a bound value choose the table.
* Output for ClickHouse needs typed parameters, so DuckDB-style ones can't go there.

Input that is not a ``str`` is a :class:`~pyflare.errors.QueryError` like any other
unusable query, because the HTTP endpoint hands user JSON straight to the guard.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from sqlglot import Token, TokenType, exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, SqlglotError

from pyflare.errors import InvalidArgumentError, QueryError
from pyflare.store.sqldialect import NAMED_CALLS, clickhouse_to_duckdb

__all__ = ["DIALECTS", "MAX_SQL_CHARS", "GuardedQuery", "guard_select"]

DIALECTS: Final = frozenset({"clickhouse", "duckdb"})
# Well above any hand-written query; it bounds the parser's time and memory per request.
MAX_SQL_CHARS: Final = 100_000
_WRAP_ALIAS: Final = "_pyflare_q"


@dataclass(frozen=True)
class GuardedQuery:
    """A query that passed :func:`guard_select`.

    ``sql`` is in the target dialect with the row limit applied; ``tables`` holds the
    PyFlare tables it reads (lower-case, unqualified); ``limit`` is the LIMIT on the
    outermost query; ``parameters`` names the placeholders to bind, in order of first
    appearance (positional ones as ``"1"``, ``"2"``, …).
    """

    sql: str
    tables: frozenset[str]
    limit: int
    parameters: tuple[str, ...] = ()


# Anything that writes, changes the session, or runs a statement other than a query.
# Checked on every node, so a DELETE inside a CTE is caught like one at the top.
_STATEMENTS: Final[tuple[type[exp.Expr], ...]] = (
    exp.DDL,
    exp.DML,
    exp.Alter,
    exp.Analyze,
    exp.Attach,
    exp.Cache,
    exp.Command,
    exp.Commit,
    exp.Declare,
    exp.Describe,
    exp.Detach,
    exp.Drop,
    exp.Execute,
    exp.Export,
    exp.Grant,
    exp.Install,
    exp.Into,
    exp.Kill,
    exp.LoadData,
    exp.NextValueFor,
    exp.Pragma,
    exp.Refresh,
    exp.Revoke,
    exp.Rollback,
    exp.Set,
    exp.Show,
    exp.Summarize,
    exp.Transaction,
    exp.TruncateTable,
    exp.Uncache,
    exp.Use,
)
_LABELS: Final = {"truncatetable": "TRUNCATE", "loaddata": "LOAD DATA", "transaction": "BEGIN"}
_QUERY_STARTS: Final = frozenset({"SELECT", "WITH", "FROM", "("})

# Table functions are refused wherever they appear in FROM; these are refused anywhere,
# because they read the environment, settings, files, other servers, or mutate state.
_DENIED_FUNCTIONS: Final = frozenset(
    {
        # DuckDB
        "currval", "current_setting", "delta_scan", "getenv", "getvariable", "glob",
        "iceberg_scan", "json_execute_serialized_sql", "nextval", "parquet_scan", "query",
        "query_table", "read_blob", "read_csv", "read_csv_auto", "read_json",
        "read_json_auto", "read_ndjson", "read_parquet", "read_text", "setval", "sniff_csv",
        # ClickHouse
        "addresstoline", "addresstolinewithinlines", "addresstosymbol",
        "azureblobstorage", "catboostevaluate", "cluster", "clusterallreplicas", "demangle",
        "executable", "file", "filesystemavailable", "filesystemcapacity", "filesystemfree",
        "gcs", "getclienthttpheader", "getmacro", "getserverport", "getsetting",
        "hascolumnintable", "hdfs", "input", "jdbc", "merge", "mongodb", "mysql", "odbc",
        "postgresql", "redis", "remote", "remotesecure", "s3", "s3cluster", "sleep",
        "sleepeachrow", "sqlite", "system", "url",
    }
)  # fmt: skip
_DENIED_PREFIXES: Final = ("dict", "joinget")  # dictGet*, dictHas, joinGet*: other tables
_SYSTEM_SCHEMAS: Final = frozenset({"information_schema", "pg_catalog", "system", "temp"})
_SOURCES: Final = (exp.Table, exp.Subquery, exp.Unnest, exp.Values, exp.Lateral, exp.Final)


def guard_select(
    sql: str,
    *,
    allowed_tables: Collection[str],
    read_dialect: str = "duckdb",
    write_dialect: str = "duckdb",
    max_rows: int = 10_000,
    database: str | None = None,
) -> GuardedQuery:
    """Check that ``sql`` is one read-only query over ``allowed_tables`` and limit it.

    ``database`` is the one schema/database qualifier users may write (``pyflare.traces``);
    every other qualifier is refused. Table names match case-insensitively and come
    back spelled as in ``allowed_tables``.

    Raises:
        QueryError: the query is not one safe SELECT, or can't be parsed or translated.
        InvalidArgumentError: the caller passed an unusable option.
    """
    allowed = _check_options(allowed_tables, read_dialect, write_dialect, max_rows, database)
    try:
        return _guard(sql, allowed, read_dialect, write_dialect, max_rows, database)
    except RecursionError as error:
        raise QueryError("the query is nested too deeply to check; simplify it") from error


def _check_options(
    allowed_tables: Collection[str],
    read_dialect: str,
    write_dialect: str,
    max_rows: int,
    database: str | None,
) -> dict[str, str]:
    for option, dialect in (("read_dialect", read_dialect), ("write_dialect", write_dialect)):
        if dialect not in DIALECTS:
            raise InvalidArgumentError(
                f"{option} must be one of {sorted(DIALECTS)}, got {dialect!r}"
            )
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise InvalidArgumentError(f"max_rows must be a positive int, got {max_rows!r}")
    if isinstance(allowed_tables, str):
        raise InvalidArgumentError("allowed_tables must be a collection of names, not one str")
    if database is not None and not database:
        raise InvalidArgumentError("database must be a non-empty name or None")
    return {name.lower(): name for name in allowed_tables}


def _guard(
    sql: str,
    allowed: dict[str, str],
    read_dialect: str,
    write_dialect: str,
    max_rows: int,
    database: str | None,
) -> GuardedQuery:
    if not isinstance(sql, str):
        raise QueryError(f"the query must be a str, got {type(sql).__name__}")
    if len(sql) > MAX_SQL_CHARS:
        raise QueryError(f"the query is {len(sql):,} characters; the limit is {MAX_SQL_CHARS:,}")
    tree = _parse(sql, read_dialect)
    checker = _Checker(allowed, database, read_dialect)
    checker.check(tree)
    if write_dialect == "clickhouse" and any(
        p.args.get("kind") is None for p in tree.find_all(exp.Placeholder)
    ):
        raise QueryError("ClickHouse needs typed parameters: write them as {name:Type}")
    if read_dialect == "clickhouse" and write_dialect == "duckdb":
        tree = clickhouse_to_duckdb(tree)
    tree, limit = _apply_limit(tree, max_rows)
    try:
        # Comments are dropped: they serve no one downstream and are one less thing to escape.
        out = tree.sql(dialect=write_dialect, comments=False)
    except (SqlglotError, ValueError) as error:
        raise QueryError(f"the query can't be translated to {write_dialect}: {error}") from error
    try:
        # The generator is sqlglot's, not ours: check what it wrote, not what we meant.
        verified = _parse(out, write_dialect)
        _Checker(allowed, database, write_dialect).check(verified)
    except QueryError as error:
        raise QueryError(
            f"the query can't be translated to {write_dialect} safely: {error}"
        ) from error
    parameters = _parameter_names(verified)
    if sorted(parameters) != sorted(_parameter_names(tree)):
        raise QueryError(f"the query's parameters did not survive translation to {write_dialect}")
    return GuardedQuery(out, frozenset(checker.tables), limit, parameters)


def _parse(sql: str, dialect_name: str) -> exp.Query:
    dialect = Dialect.get_or_raise(dialect_name)
    tokens: list[Token] = []
    try:
        tokens = dialect.tokenize(sql)
        if dialect_name == "duckdb":
            sql, tokens = _number_question_marks(sql, tokens, dialect)
        statements = [
            s
            for s in dialect.parser().parse(tokens, sql)
            # A comment after the last semicolon parses as a bare Semicolon.
            if s is not None and not isinstance(s, exp.Semicolon)
        ]
    except ParseError as error:
        word = tokens[0].text.upper() if tokens else ""
        if word not in _QUERY_STARTS:
            # sqlglot has no grammar for some statements (EXPORT, KILL, ...): name the
            # statement rather than report a syntax error inside it.
            raise QueryError(f"only SELECT queries are allowed (got {word})") from error
        raise QueryError(_describe_parse_error(error)) from error
    except SqlglotError as error:
        raise QueryError(f"syntax error: {error}") from error
    if not statements:
        raise QueryError("the query is empty: write one SELECT over PyFlare's tables")
    if len(statements) > 1:
        raise QueryError(f"only one statement is allowed, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, (exp.Select, exp.SetOperation, exp.Subquery)):
        word = tokens[0].text.upper() if tokens else type(tree).__name__.upper()
        raise QueryError(f"only SELECT queries are allowed (got {_label(tree, word)})")
    return tree


def _describe_parse_error(error: ParseError) -> str:
    if not error.errors:
        return f"syntax error: {error}"
    first = error.errors[0]
    near = first.get("highlight")
    where = f" near {near!r}" if near else ""
    position = f"line {first.get('line')}, col {first.get('col')}"
    return f"syntax error at {position}: {first.get('description')}{where}"


def _number_question_marks(
    sql: str, tokens: list[Token], dialect: Dialect
) -> tuple[str, list[Token]]:
    """Rewrite each ``?`` as ``$n`` so no later rewrite can change the binding order."""
    marks = [t for t in tokens if t.token_type == TokenType.PLACEHOLDER and t.text == "?"]
    if not marks:
        return sql, tokens
    if any(t.token_type == TokenType.PARAMETER for t in tokens):
        raise QueryError("use either ? or $1/$name parameters in one query, not both")
    pieces, start = [], 0
    for number, mark in enumerate(marks, start=1):
        pieces += [sql[start : mark.start], f"${number}"]
        start = mark.end + 1
    sql = "".join([*pieces, sql[start:]])
    return sql, dialect.tokenize(sql)


def _label(node: exp.Expr, first_word: str) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    if isinstance(node, _STATEMENTS):
        return _LABELS.get(node.key, node.key.upper())
    return first_word


@dataclass
class _Checker:
    """Walks every node of a parsed query and raises on the first unsafe one."""

    allowed: dict[str, str]  # lower-case name -> spelling to emit
    database: str | None
    dialect: str
    tables: set[str] = field(default_factory=set)

    def check(self, root: exp.Expr) -> None:
        # An explicit stack, because long expressions make trees deeper than recursion allows.
        stack: list[tuple[exp.Expr, frozenset[str]]] = [(root, frozenset())]
        while stack:
            node, ctes = stack.pop()
            self._check_node(node, ctes)
            inner = ctes
            with_ = node.args.get("with_")
            if isinstance(with_, exp.With):
                inner = self._push_ctes(with_, ctes, stack)
            for key, value in node.args.items():
                if key == "with_":
                    continue
                for child in value if isinstance(value, list) else [value]:
                    if isinstance(child, exp.Expr):
                        stack.append((child, inner))

    def _key(self, name: str) -> str:
        # ClickHouse compares identifiers case-sensitively, so CTE `Users` doesn't hide
        # table `users` there the way it does in DuckDB.
        return name.lower() if self.dialect == "duckdb" else name

    def _push_ctes(
        self, with_: exp.With, ctes: frozenset[str], stack: list[tuple[exp.Expr, frozenset[str]]]
    ) -> frozenset[str]:
        names = [
            self._key(cte.alias)
            for cte in with_.expressions
            if isinstance(cte, exp.CTE) and not cte.args.get("scalar")
        ]
        seen: set[str] = set()
        for cte in with_.expressions:
            # A non-recursive CTE sees only the ones before it; a same-named reference in
            # its own body is the real table and must be checked as one.
            stack.append((cte, ctes | (set(names) if with_.args.get("recursive") else seen)))
            if isinstance(cte, exp.CTE) and not cte.args.get("scalar"):
                seen.add(self._key(cte.alias))
        return ctes | set(names)

    def _check_node(self, node: exp.Expr, ctes: frozenset[str]) -> None:
        if isinstance(node, exp.Into):
            raise QueryError("SELECT ... INTO is not allowed: it creates a table")
        if isinstance(node, _STATEMENTS):
            raise QueryError(f"only SELECT queries are allowed (got {_label(node, node.key)})")
        if isinstance(node, exp.Table):
            self._check_table(node, ctes)
        elif isinstance(node, (exp.From, exp.Join)):
            self._check_source(node)
        elif isinstance(node, exp.Lateral) and not isinstance(
            node.this, (exp.Subquery, exp.Unnest)
        ):
            raise QueryError(f"LATERAL {self._describe(node.this)} is not allowed")
        elif isinstance(node, exp.In) and node.args.get("field") is not None:
            self._check_in_table(node.args["field"], ctes)
        elif isinstance(node, exp.Placeholder):
            self._check_placeholder(node)
        elif isinstance(node, exp.Func):
            self._check_function(node)
        elif isinstance(node, exp.Select):
            if node.args.get("settings"):
                raise QueryError("SETTINGS is not allowed: query settings are fixed by the server")
            if node.args.get("format"):
                raise QueryError("FORMAT is not allowed: the caller chooses the result format")

    @property
    def _names(self) -> str:
        return ", ".join(sorted(self.allowed.values(), key=str.lower)) or "(none)"

    def _describe(self, node: exp.Expr) -> str:
        if isinstance(node, exp.Func):
            return f"table function {_function_name(node)}(...)"
        return repr(node.sql(dialect=self.dialect)[:80])

    def _check_source(self, node: exp.From | exp.Join) -> None:
        source = node.this
        if isinstance(node, exp.Join) and node.text("kind").upper() == "ARRAY":
            return  # ClickHouse ARRAY JOIN unfolds a column; its expression is walked as usual
        if not isinstance(source, _SOURCES):
            raise QueryError(
                f"{self._describe(source)} is not allowed in FROM: "
                f"query PyFlare's tables ({self._names}), subqueries or UNNEST"
            )

    def _check_table(self, table: exp.Table, ctes: frozenset[str]) -> None:
        source = table.this
        if not isinstance(source, exp.Identifier):
            raise QueryError(
                f"{self._describe(source)} is not allowed: query PyFlare's tables directly ({self._names})"
            )
        canonical = self._resolve(source.name, table.db, table.catalog, ctes)
        if canonical is not None:
            table.set("this", exp.to_identifier(canonical))
            if table.db and self.database is not None:
                table.set("db", exp.to_identifier(self.database))

    def _check_in_table(self, target: exp.Expr, ctes: frozenset[str]) -> None:
        # ClickHouse reads `x IN name` as membership in table `name`.
        if not isinstance(target, exp.Column) or target.catalog or target.db:
            raise QueryError(f"IN {self._describe(target)} is not allowed: use IN (SELECT ...)")
        canonical = self._resolve(target.name, target.table, "", ctes)
        if canonical is not None:
            target.set("this", exp.to_identifier(canonical))
            if target.table and self.database is not None:
                target.set("table", exp.to_identifier(self.database))

    def _resolve(self, name: str, db: str, catalog: str, ctes: frozenset[str]) -> str | None:
        """The spelling to emit for a table reference, or None for a CTE; raise if refused."""
        qualified = ".".join(part for part in (catalog, db, name) if part)
        if catalog or (db and (self.database is None or self._key(db) != self._key(self.database))):
            if (catalog or db).lower() in _SYSTEM_SCHEMAS:
                reason = "system catalogs can't be queried"
            elif self.database is None:
                reason = "write PyFlare's tables without a schema or database"
            else:
                reason = f"the only qualifier accepted is {self.database!r}"
            raise QueryError(
                f"table {qualified!r} is not allowed: {reason}; PyFlare's tables are {self._names}"
            )
        if not db and self._key(name) in ctes:
            return None
        canonical = self.allowed.get(name.lower())
        if canonical is None:
            hint = "; files and URLs can't be read" if any(c in name for c in "./\\:") else ""
            raise QueryError(f"table {name!r} is not one of PyFlare's tables: {self._names}{hint}")
        self.tables.add(name.lower())
        return canonical

    def _check_placeholder(self, node: exp.Placeholder) -> None:
        kind = node.args.get("kind")
        if isinstance(kind, str) and kind.lower() == "identifier":
            raise QueryError(
                "parameters of type Identifier are not allowed: parameters carry values only"
            )
        if self.dialect == "clickhouse" and kind is None:
            raise QueryError("ClickHouse queries take parameters as {name:Type}")

    def _check_function(self, func: exp.Func) -> None:
        name = _function_name(func)
        names = {name.lower(), *(n.lower() for n in type(func).sql_names())}
        if any(n in _DENIED_FUNCTIONS or n.startswith(_DENIED_PREFIXES) for n in names):
            raise QueryError(
                f"function {name}() is not allowed: it reads settings, files or data outside PyFlare's tables"
            )


def _function_name(func: exp.Func) -> str:
    return func.name if isinstance(func, NAMED_CALLS) else func.sql_name().lower()


def _parameter_names(tree: exp.Expr) -> tuple[str, ...]:
    names = dict.fromkeys(p.name for p in tree.walk(bfs=False) if isinstance(p, exp.Placeholder))
    if all(name.isdigit() for name in names):
        return tuple(sorted(names, key=int))
    return tuple(names)


def _apply_limit(tree: exp.Query, max_rows: int) -> tuple[exp.Query, int]:
    if isinstance(tree, (exp.Select, exp.SetOperation)):
        current = tree.args.get("limit")
        if current is None:
            # On a set operation sqlglot's ClickHouse output wraps it, since there a
            # trailing LIMIT binds to the last SELECT only.
            tree.set("limit", exp.Limit(expression=exp.Literal.number(max_rows)))
            return tree, max_rows
        requested = _literal_limit(current)
        if requested is not None:
            if requested > max_rows:
                current.set("expression", exp.Literal.number(max_rows))
            return tree, min(requested, max_rows)
    # LIMIT ?, LIMIT n PERCENT, WITH TIES, FETCH, LIMIT n BY: bound it from outside.
    wrapped = exp.select("*").from_(tree.subquery(_WRAP_ALIAS)).limit(max_rows)
    return wrapped, max_rows


def _literal_limit(limit: exp.Expr) -> int | None:
    if not isinstance(limit, exp.Limit) or limit.args.get("expressions"):
        return None
    options = limit.args.get("limit_options")
    if options is not None and (options.args.get("percent") or options.args.get("with_ties")):
        return None
    value = limit.expression
    if isinstance(value, exp.Literal) and value.is_int:
        return int(value.this)
    return None
