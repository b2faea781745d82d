"""The read-only SQL guard: what it refuses, what it lets through, and that the result runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot.errors import SqlglotError

from pyflare.errors import InvalidArgumentError, PyFlareError, QueryError
from pyflare.store.sqlguard import MAX_SQL_CHARS, GuardedQuery, guard_select

TABLES = frozenset({"traces", "costs", "costs_hourly", "metrics", "logs", "alerts"})
TABLE_LIST = "alerts, costs, costs_hourly, logs, metrics, traces"

SPEC_QUERY = (
    "SELECT model_id, toStartOfHour(start_time) AS hour, count() AS requests, "
    "avg(duration_ns)/1e6 AS avg_latency_ms, quantile(0.95)(duration_ns)/1e6 AS p95_latency_ms "
    "FROM traces WHERE start_time >= now() - INTERVAL 1 HOUR "
    "GROUP BY model_id, hour ORDER BY hour DESC"
)


def guard(sql: Any, read: str = "duckdb", write: str | None = None, **kwargs: Any) -> GuardedQuery:
    kwargs.setdefault("allowed_tables", TABLES)
    return guard_select(sql, read_dialect=read, write_dialect=write or read, **kwargs)


def rejected(sql: Any, read: str = "duckdb", write: str | None = None, **kwargs: Any) -> str:
    with pytest.raises(QueryError) as info:
        guard(sql, read, write, **kwargs)
    return str(info.value)


@pytest.fixture(scope="module")
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE traces (trace_id VARCHAR, span_id VARCHAR, start_time TIMESTAMP_NS, "
        "duration_ns BIGINT, model_id VARCHAR, service_name VARCHAR, status_code VARCHAR, "
        "cost_micros BIGINT, attributes MAP(VARCHAR, VARCHAR))"
    )
    # Relative to UTC now, the clock the guard gives ClickHouse's now() on DuckDB. The
    # two recent spans start at the current hour, so they share one toStartOfHour()
    # bucket whatever minute the test runs at, are in the last hour and never in the future.
    con.execute(
        """
        INSERT INTO traces VALUES
        ('t1', 's1', date_trunc('hour', timezone('UTC', now()))::TIMESTAMP_NS, 1500000,
         'gpt-4o', 'chat', 'OK', 100, MAP {'user': 'u1', 'k': 'v'}),
        ('t1', 's2', date_trunc('hour', timezone('UTC', now()))::TIMESTAMP_NS, 2500000,
         'gpt-4o', 'chat', 'ERROR', 200, MAP {'k': 'w'}),
        ('t2', 's3', timezone('UTC', now())::TIMESTAMP_NS - INTERVAL 3 HOUR, 500000,
         'claude', 'rag', 'OK', 50, MAP {})
        """
    )
    con.execute("CREATE TABLE costs (trace_id VARCHAR, model_id VARCHAR, cost_micros BIGINT)")
    con.execute("INSERT INTO costs VALUES ('t1', 'gpt-4o', 300), ('t2', 'claude', 50)")
    con.execute("CREATE TABLE logs AS SELECT range AS n FROM range(50)")
    con.execute("CREATE TABLE users (name VARCHAR, password VARCHAR)")
    yield con
    con.close()


# --- statements other than one SELECT ---------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "got"),
    [
        ("INSERT INTO traces SELECT * FROM traces", "INSERT"),
        ("UPDATE traces SET model_id = 'x'", "UPDATE"),
        ("DELETE FROM traces", "DELETE"),
        (
            "MERGE INTO traces USING costs ON traces.trace_id = costs.trace_id WHEN MATCHED THEN DELETE",
            "MERGE",
        ),
        ("CREATE TABLE x AS SELECT * FROM traces", "CREATE"),
        ("CREATE MACRO m(a) AS a", "CREATE"),
        ("CREATE SECRET (TYPE s3)", "CREATE"),
        ("DROP TABLE traces", "DROP"),
        ("ALTER TABLE traces ADD COLUMN x INT", "ALTER"),
        ("TRUNCATE traces", "TRUNCATE"),
        ("ATTACH 'x.db' AS x", "ATTACH"),
        ("DETACH x", "DETACH"),
        ("COPY traces TO '/tmp/x'", "COPY"),
        ("COPY (SELECT * FROM traces) TO '/tmp/x.parquet' (FORMAT parquet)", "COPY"),
        ("COPY traces FROM '/tmp/x.csv'", "COPY"),
        ("EXPORT DATABASE '/tmp/x'", "EXPORT"),
        ("IMPORT DATABASE '/tmp/x'", "IMPORT"),
        ("INSTALL httpfs", "INSTALL"),
        ("FORCE INSTALL httpfs", "INSTALL"),
        ("LOAD httpfs", "LOAD"),
        ("PRAGMA database_list", "PRAGMA"),
        ("SET enable_external_access = true", "SET"),
        ("SET VARIABLE x = 1", "SET"),
        ("RESET enable_external_access", "RESET"),
        ("CALL duckdb_settings()", "CALL"),
        ("USE memory", "USE"),
        ("CHECKPOINT", "CHECKPOINT"),
        ("VACUUM", "VACUUM"),
        ("EXPLAIN ANALYZE SELECT * FROM traces", "EXPLAIN"),
        ("EXPLAIN SELECT 1", "EXPLAIN"),
        ("GRANT SELECT ON traces TO someone", "GRANT"),
        ("DESCRIBE traces", "DESCRIBE"),
        ("SHOW TABLES", "SHOW"),
        ("SUMMARIZE traces", "SUMMARIZE"),
        ("PIVOT traces ON model_id USING count(*)", "PIVOT"),
        ("BEGIN TRANSACTION", "BEGIN"),
        ("COMMIT", "COMMIT"),
        ("VALUES (1)", "VALUES"),
        ("/* SELECT */ DROP TABLE traces", "DROP"),
        ("WITH x AS (SELECT 1) DELETE FROM traces", "DELETE"),
    ],
)
def test_duckdb_statements_other_than_select_are_refused(sql: str, got: str) -> None:
    assert rejected(sql) == f"only SELECT queries are allowed (got {got})"


@pytest.mark.parametrize(
    ("sql", "got"),
    [
        ("KILL QUERY WHERE query_id = 'x'", "KILL"),
        ("OPTIMIZE TABLE traces FINAL", "OPTIMIZE"),
        ("SYSTEM FLUSH LOGS", "SYSTEM"),
        ("SYSTEM SHUTDOWN", "SYSTEM"),
        ("ALTER TABLE traces DELETE WHERE 1", "ALTER"),
        ("INSERT INTO FUNCTION file('x') SELECT 1", "INSERT"),
        ("RENAME TABLE traces TO t2", "RENAME"),
        ("SET readonly = 0", "SET"),
        ("DETACH TABLE traces", "DETACH"),
        ("GRANT ALL ON *.* TO someone", "GRANT"),
        ("BACKUP TABLE traces TO Disk('b', 'x')", "BACKUP"),
        ("SHOW CREATE TABLE traces", "SHOW"),
    ],
)
def test_clickhouse_statements_other_than_select_are_refused(sql: str, got: str) -> None:
    assert rejected(sql, "clickhouse") == f"only SELECT queries are allowed (got {got})"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DROP TABLE traces",
        "SELECT 1 -- hidden\n; DROP TABLE traces",
        "SELECT 1 /* ; */; DELETE FROM traces",
        "SELECT 1;\nSELECT 2",
    ],
)
def test_only_one_statement(sql: str) -> None:
    assert rejected(sql) == "only one statement is allowed, got 2"


def test_comments_and_trailing_semicolon_are_fine() -> None:
    query = guard("-- count\nSELECT /* ; DROP */ count(*) FROM traces; -- done")
    assert query.sql == "SELECT COUNT(*) FROM traces LIMIT 10000"
    line_comment = guard("SELECT 1 -- */ DROP TABLE traces; /*")
    assert line_comment.sql == "SELECT 1 LIMIT 10000"


@pytest.mark.parametrize("sql", ["", "   \n\t", "-- nothing", "/* nothing */", ";", " ; ; "])
def test_empty_query(sql: str) -> None:
    assert "the query is empty" in rejected(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "WITH x AS (DELETE FROM traces RETURNING *) SELECT * FROM x",
        "WITH x AS (INSERT INTO traces VALUES (1) RETURNING *) SELECT * FROM x",
        "WITH x AS (UPDATE traces SET model_id = 'y' RETURNING *) SELECT * FROM x",
    ],
)
def test_writes_inside_a_cte_are_refused(sql: str) -> None:
    assert rejected(sql).startswith("only SELECT queries are allowed (got ")


def test_select_into_is_refused() -> None:
    assert rejected("SELECT * INTO newtable FROM traces") == (
        "SELECT ... INTO is not allowed: it creates a table"
    )


def test_clickhouse_settings_and_format_are_refused() -> None:
    assert "SETTINGS is not allowed" in rejected(
        "SELECT * FROM traces SETTINGS max_execution_time = 100000", "clickhouse"
    )
    assert "FORMAT is not allowed" in rejected("SELECT * FROM traces FORMAT JSON", "clickhouse")


def test_into_outfile_is_refused() -> None:
    assert "syntax error" in rejected("SELECT * FROM traces INTO OUTFILE '/tmp/x'", "clickhouse")


# --- tables ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM users",
        "SELECT * FROM traces JOIN users ON true",
        "SELECT * FROM traces, users",
        "SELECT * FROM (SELECT * FROM users) AS u",
        "SELECT * FROM traces WHERE model_id IN (SELECT name FROM users)",
        "SELECT * FROM traces WHERE EXISTS (SELECT 1 FROM users)",
        "SELECT (SELECT max(password) FROM users) FROM traces",
        "SELECT * FROM traces, LATERAL (SELECT * FROM users) AS u",
        "SELECT model_id FROM traces UNION ALL SELECT password FROM users",
        "SELECT 1 INTERSECT SELECT 1 FROM users",
        "WITH t AS (SELECT * FROM users) SELECT * FROM t",
        "WITH a AS (SELECT 1), b AS (SELECT * FROM users) SELECT * FROM a, b",
        "SELECT * FROM (PIVOT users ON name USING count(*))",
        "SELECT * FROM traces WHERE model_id = ANY (SELECT name FROM users)",
        "SELECT * FROM traces t JOIN (FROM users) u ON true",
    ],
)
def test_tables_outside_pyflare_are_refused_anywhere(sql: str) -> None:
    assert rejected(sql) == f"table 'users' is not one of PyFlare's tables: {TABLE_LIST}"


def test_clickhouse_in_table_name_is_a_table_reference() -> None:
    assert "table 'users' is not one of PyFlare's tables" in rejected(
        "SELECT * FROM traces WHERE model_id IN users", "clickhouse"
    )
    assert "system catalogs can't be queried" in rejected(
        "SELECT * FROM traces WHERE model_id IN system.users", "clickhouse"
    )
    query = guard("SELECT * FROM traces WHERE trace_id IN costs", "clickhouse")
    assert query.tables == {"traces", "costs"}


@pytest.mark.parametrize(
    "sql",
    [
        # A CTE name only covers its own WITH; outside it the name is a real table.
        "SELECT * FROM (WITH users AS (SELECT 1) SELECT * FROM users) AS x, users",
        # A non-recursive CTE can't see itself: `users` in its body is the real table.
        "WITH users AS (SELECT * FROM users) SELECT * FROM users",
        # Nor can it see the CTEs after it.
        "WITH a AS (SELECT * FROM users), users AS (SELECT 1) SELECT * FROM a",
    ],
)
def test_cte_names_are_scoped(sql: str) -> None:
    assert "table 'users' is not one of PyFlare's tables" in rejected(sql)


def test_clickhouse_cte_names_are_case_sensitive() -> None:
    # ClickHouse would read table `users` here, not the CTE `Users`.
    sql = "WITH Users AS (SELECT 1) SELECT * FROM users"
    assert "table 'users' is not one of PyFlare's tables" in rejected(sql, "clickhouse")
    assert guard(sql).tables == frozenset()


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("SELECT * FROM '/etc/passwd'", "/etc/passwd"),
        ("SELECT * FROM 'file.parquet'", "file.parquet"),
        ("SELECT * FROM 'data.csv'", "data.csv"),
        ('SELECT * FROM "traces.csv"', "traces.csv"),
        ("SELECT * FROM 's3://bucket/x.parquet'", "s3://bucket/x.parquet"),
        ("SELECT * FROM 'https://example.com/x.json'", "https://example.com/x.json"),
        ("SELECT * FROM traces JOIN 'x.csv' ON true", "x.csv"),
        ("FROM '*.parquet'", "*.parquet"),
    ],
)
def test_file_and_url_names_are_refused(sql: str, name: str) -> None:
    message = rejected(sql)
    assert message.startswith(f"table {name!r} is not one of PyFlare's tables")


@pytest.mark.parametrize(
    ("sql", "function"),
    [
        ("SELECT * FROM read_csv('x.csv')", "read_csv"),
        ("SELECT * FROM read_csv_auto('x.csv')", "read_csv_auto"),
        ("SELECT * FROM read_parquet('x.parquet')", "read_parquet"),
        ("SELECT * FROM parquet_scan('x.parquet')", "parquet_scan"),
        ("SELECT * FROM read_json_auto('x.json')", "read_json_auto"),
        ("SELECT * FROM read_text('/etc/passwd')", "read_text"),
        ("SELECT * FROM read_blob('/etc/passwd')", "read_blob"),
        ("SELECT * FROM glob('*')", "glob"),
        ("SELECT * FROM sniff_csv('x.csv')", "sniff_csv"),
        ("SELECT * FROM iceberg_scan('x')", "iceberg_scan"),
        ("SELECT * FROM delta_scan('x')", "delta_scan"),
        ("SELECT * FROM query('SELECT * FROM users')", "query"),
        ("SELECT * FROM query_table('users')", "query_table"),
        ("SELECT * FROM duckdb_settings()", "duckdb_settings"),
        ("SELECT * FROM duckdb_tables()", "duckdb_tables"),
        ("SELECT * FROM duckdb_secrets()", "duckdb_secrets"),
        ("SELECT * FROM pragma_table_info('traces')", "pragma_table_info"),
        ("SELECT * FROM range(10)", "generate_series"),
        ("SELECT * FROM traces JOIN read_csv('x') ON true", "read_csv"),
        ("SELECT * FROM traces WHERE trace_id IN (SELECT * FROM read_csv('x'))", "read_csv"),
    ],
)
def test_duckdb_table_functions_are_refused(sql: str, function: str) -> None:
    assert rejected(sql).startswith(f"table function {function}(...) is not allowed")


def test_lateral_table_function_is_refused() -> None:
    assert "LATERAL table function read_csv(...) is not allowed" in rejected(
        "SELECT * FROM traces, LATERAL read_csv('x')"
    )


@pytest.mark.parametrize(
    ("sql", "function"),
    [
        ("SELECT * FROM url('http://169.254.169.254/', CSV)", "url"),
        ("SELECT * FROM traces JOIN url('http://x', CSV) AS u ON 1", "url"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "file"),
        ("SELECT * FROM s3('https://bucket/x.parquet')", "s3"),
        ("SELECT * FROM remote('other:9000', db.t)", "remote"),
        ("SELECT * FROM remoteSecure('other:9440', db.t)", "remoteSecure"),
        ("SELECT * FROM cluster('c', db.t)", "cluster"),
        ("SELECT * FROM mysql('h', 'db', 't', 'u', 'p')", "mysql"),
        ("SELECT * FROM postgresql('h', 'db', 't', 'u', 'p')", "postgresql"),
        ("SELECT * FROM jdbc('x', 'y')", "jdbc"),
        ("SELECT * FROM odbc('x', 'y')", "odbc"),
        ("SELECT * FROM hdfs('hdfs://x', 'CSV')", "hdfs"),
        ("SELECT * FROM executable('x.sh', CSV)", "executable"),
        ("SELECT * FROM merge('system', '.*')", "merge"),
        ("SELECT * FROM numbers(10)", "numbers"),
        ("SELECT * FROM input('a String')", "input"),
    ],
)
def test_clickhouse_table_functions_are_refused(sql: str, function: str) -> None:
    assert rejected(sql, "clickhouse").startswith(f"table function {function}(...) is not allowed")


@pytest.mark.parametrize(
    ("read", "sql", "reason"),
    [
        ("duckdb", "SELECT * FROM information_schema.tables", "system catalogs can't be queried"),
        ("duckdb", "SELECT * FROM pg_catalog.pg_class", "system catalogs can't be queried"),
        (
            "duckdb",
            "SELECT * FROM traces WHERE EXISTS (FROM information_schema.columns)",
            "system catalogs",
        ),
        ("clickhouse", "SELECT * FROM system.tables", "system catalogs can't be queried"),
        ("clickhouse", "SELECT * FROM system.users", "system catalogs can't be queried"),
        (
            "duckdb",
            "SELECT * FROM main.traces",
            "write PyFlare's tables without a schema or database",
        ),
        (
            "duckdb",
            "SELECT * FROM other.traces",
            "write PyFlare's tables without a schema or database",
        ),
        ("duckdb", "SELECT * FROM memory.main.traces", "write PyFlare's tables without a schema"),
    ],
)
def test_qualified_names_are_refused(read: str, sql: str, reason: str) -> None:
    message = rejected(sql, read)
    assert "is not allowed" in message
    assert reason in message
    assert TABLE_LIST in message


def test_the_configured_database_qualifier_is_the_only_one_allowed() -> None:
    query = guard("SELECT * FROM pyflare.traces JOIN costs USING (trace_id)", database="pyflare")
    assert query.tables == {"traces", "costs"}
    assert "pyflare.traces" in query.sql
    message = rejected("SELECT * FROM other.traces", database="pyflare")
    assert "the only qualifier accepted is 'pyflare'" in message
    assert "the only qualifier" in rejected("SELECT * FROM x.pyflare.traces", database="pyflare")
    # ClickHouse database names are case-sensitive.
    assert "the only qualifier" in rejected(
        "SELECT * FROM PyFlare.traces", "clickhouse", database="pyflare"
    )


# --- functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("read", "sql", "function"),
    [
        ("duckdb", "SELECT getenv('HOME')", "getenv"),
        ("duckdb", "SELECT main.getenv('HOME')", "getenv"),
        ("duckdb", "SELECT current_setting('s3_secret_access_key')", "current_setting"),
        ("duckdb", "SELECT getvariable('secret')", "getvariable"),
        ("duckdb", "SELECT nextval('seq')", "nextval"),
        ("duckdb", "SELECT * FROM traces WHERE model_id = getenv('USER')", "getenv"),
        ("duckdb", "SELECT * FROM traces ORDER BY current_setting('threads')", "current_setting"),
        ("clickhouse", "SELECT file('/etc/passwd')", "file"),
        ("clickhouse", "SELECT getSetting('readonly')", "getSetting"),
        ("clickhouse", "SELECT getMacro('shard')", "getMacro"),
        ("clickhouse", "SELECT dictGet('d', 'a', toUInt64(1))", "dictGet"),
        ("clickhouse", "SELECT dictGetString('d', 'a', toUInt64(1))", "dictGetString"),
        ("clickhouse", "SELECT joinGet('j', 'a', 1)", "joinGet"),
        ("clickhouse", "SELECT sleep(3)", "sleep"),
        ("clickhouse", "SELECT sleepEachRow(1) FROM traces", "sleepEachRow"),
        ("clickhouse", "SELECT hasColumnInTable('system', 'users', 'name')", "hasColumnInTable"),
    ],
)
def test_dangerous_functions_are_refused_anywhere(read: str, sql: str, function: str) -> None:
    assert rejected(sql, read).startswith(f"function {function}() is not allowed")


# --- parameters ---------------------------------------------------------------------------


def test_question_marks_are_numbered() -> None:
    query = guard("SELECT ?, model_id FROM traces WHERE model_id = ? AND status_code <> '?'")
    assert query.sql == (
        "SELECT $1, model_id FROM traces WHERE model_id = $2 AND status_code <> '?' LIMIT 10000"
    )
    assert query.parameters == ("1", "2")


def test_numbered_and_named_parameters_survive() -> None:
    query = guard("SELECT * FROM traces WHERE model_id = $model AND duration_ns > $min")
    assert "$model" in query.sql
    assert "$min" in query.sql
    assert query.parameters == ("model", "min")
    assert guard("SELECT $2, $1").parameters == ("1", "2")


def test_question_marks_cannot_mix_with_dollar_parameters() -> None:
    assert "use either ? or $1/$name" in rejected("SELECT ?, $1")


def test_clickhouse_parameters() -> None:
    sql = "SELECT * FROM traces WHERE model_id = {model:String} AND start_time > {since:DateTime64(9)}"
    on_clickhouse = guard(sql, "clickhouse")
    assert "{model: String}" in on_clickhouse.sql
    assert on_clickhouse.parameters == ("model", "since")
    on_duckdb = guard(sql, "clickhouse", "duckdb")
    assert "CAST($model AS TEXT)" in on_duckdb.sql
    assert "CAST($since AS TIMESTAMP_NS)" in on_duckdb.sql
    assert on_duckdb.parameters == ("model", "since")


def test_parameters_never_name_tables() -> None:
    assert "Identifier" in rejected("SELECT {c:Identifier} FROM traces", "clickhouse")
    assert "is not allowed" in rejected("SELECT * FROM {t:Identifier}", "clickhouse")


def test_clickhouse_needs_typed_parameters() -> None:
    assert "{name:Type}" in rejected("SELECT ?", "clickhouse")
    assert "{name:Type}" in rejected("SELECT $x", "duckdb", "clickhouse")


# --- limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected", "limit"),
    [
        ("SELECT * FROM traces", "SELECT * FROM traces LIMIT 100", 100),
        ("SELECT * FROM traces LIMIT 5", "SELECT * FROM traces LIMIT 5", 5),
        ("SELECT * FROM traces LIMIT 100", "SELECT * FROM traces LIMIT 100", 100),
        (
            "SELECT * FROM traces LIMIT 5000 OFFSET 7",
            "SELECT * FROM traces LIMIT 100 OFFSET 7",
            100,
        ),
        ("SELECT * FROM traces LIMIT 3 OFFSET 7", "SELECT * FROM traces LIMIT 3 OFFSET 7", 3),
        ("SELECT 1 UNION ALL SELECT 2", "SELECT 1 UNION ALL SELECT 2 LIMIT 100", 100),
        ("SELECT 1 UNION SELECT 2 LIMIT 1", "SELECT 1 UNION SELECT 2 LIMIT 1", 1),
        ("SELECT 1 EXCEPT SELECT 2 LIMIT 999", "SELECT 1 EXCEPT SELECT 2 LIMIT 100", 100),
        (
            "SELECT * FROM traces LIMIT ?",
            "SELECT * FROM (SELECT * FROM traces LIMIT $1) AS _pyflare_q LIMIT 100",
            100,
        ),
        (
            "SELECT * FROM traces LIMIT 10%",
            "SELECT * FROM (SELECT * FROM traces LIMIT 10 PERCENT) AS _pyflare_q LIMIT 100",
            100,
        ),
        (
            "SELECT * FROM traces LIMIT 5 + 5",
            "SELECT * FROM (SELECT * FROM traces LIMIT 5 + 5) AS _pyflare_q LIMIT 100",
            100,
        ),
        (
            "SELECT * FROM traces ORDER BY 1 LIMIT 5 WITH TIES",
            "SELECT * FROM (SELECT * FROM traces ORDER BY 1 LIMIT 5 WITH TIES) AS _pyflare_q LIMIT 100",
            100,
        ),
        (
            "(SELECT 1) LIMIT 3",
            "SELECT * FROM ((SELECT 1) LIMIT 3) AS _pyflare_q LIMIT 100",
            100,
        ),
    ],
)
def test_row_limit(sql: str, expected: str, limit: int) -> None:
    query = guard(sql, max_rows=100)
    assert (query.sql, query.limit) == (expected, limit)


def test_clickhouse_union_limit_binds_to_the_whole_union() -> None:
    # On ClickHouse a trailing LIMIT binds to the last SELECT only.
    query = guard("SELECT 1 UNION ALL SELECT 2 LIMIT 5", "clickhouse", max_rows=100)
    assert query.sql == "SELECT * FROM (SELECT 1 UNION ALL SELECT 2 LIMIT 5) AS _l_0 LIMIT 100"
    assert guard("SELECT 1 UNION ALL SELECT 2", "duckdb", "clickhouse", max_rows=9).sql == (
        "SELECT * FROM (SELECT 1 UNION ALL SELECT 2) AS _l_0 LIMIT 9"
    )


def test_clickhouse_limit_by_is_bounded_too() -> None:
    query = guard("SELECT * FROM traces LIMIT 1 BY model_id", "clickhouse", max_rows=100)
    assert query.sql.endswith(") AS _pyflare_q LIMIT 100")
    assert "LIMIT 1 BY model_id" in query.sql


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM logs",
        "SELECT * FROM logs LIMIT 1000",
        "SELECT * FROM logs UNION ALL SELECT * FROM logs",
        "SELECT * FROM logs LIMIT ?",
        "SELECT * FROM logs LIMIT 100 PERCENT",
        "WITH l AS (SELECT * FROM logs) SELECT * FROM l, l AS m",
    ],
)
def test_limit_holds_when_run(db: duckdb.DuckDBPyConnection, sql: str) -> None:
    query = guard(sql, max_rows=7)
    params = [40] if query.parameters else None
    assert len(db.execute(query.sql, params).fetchall()) == 7


# --- what is allowed ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("SELECT model_id, count(*) FROM traces GROUP BY 1", {"traces"}),
        ("FROM traces", {"traces"}),
        ('SELECT * FROM "traces"', {"traces"}),
        ("SELECT * FROM TRACES", {"traces"}),
        (
            "SELECT t.model_id, c.cost_micros FROM traces t JOIN costs c USING (trace_id)",
            {"traces", "costs"},
        ),
        (
            "SELECT * FROM traces LEFT JOIN costs ON traces.trace_id = costs.trace_id",
            {"traces", "costs"},
        ),
        ("WITH x AS (SELECT * FROM traces) SELECT * FROM x", {"traces"}),
        (
            "WITH traces AS (SELECT * FROM traces WHERE status_code = 'OK') SELECT * FROM traces",
            {"traces"},
        ),
        ("WITH a AS (SELECT 1 AS n), b AS (SELECT * FROM a) SELECT * FROM b", set()),
        (
            "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
            set(),
        ),
        ("SELECT model_id FROM traces UNION SELECT model_id FROM costs", {"traces", "costs"}),
        ("SELECT model_id FROM traces INTERSECT SELECT model_id FROM costs", {"traces", "costs"}),
        ("SELECT model_id FROM traces EXCEPT SELECT model_id FROM costs", {"traces", "costs"}),
        (
            "SELECT * FROM traces WHERE trace_id IN (SELECT trace_id FROM costs)",
            {"traces", "costs"},
        ),
        (
            "SELECT * FROM traces t WHERE EXISTS (SELECT 1 FROM costs c WHERE c.trace_id = t.trace_id)",
            {"traces", "costs"},
        ),
        ("SELECT (SELECT max(cost_micros) FROM costs) AS m FROM traces", {"traces", "costs"}),
        (
            "SELECT * FROM traces t, LATERAL (SELECT * FROM costs c WHERE c.trace_id = t.trace_id) AS l",
            {"traces", "costs"},
        ),
        (
            "SELECT model_id, row_number() OVER (PARTITION BY model_id ORDER BY start_time) FROM traces",
            {"traces"},
        ),
        (
            "SELECT model_id, sum(cost_micros) OVER w FROM traces WINDOW w AS (PARTITION BY model_id)",
            {"traces"},
        ),
        (
            "SELECT * FROM traces QUALIFY row_number() OVER (PARTITION BY model_id ORDER BY start_time) = 1",
            {"traces"},
        ),
        ("SELECT attributes['user'] FROM traces", {"traces"}),
        ("SELECT * FROM traces, unnest([1, 2]) AS u(x)", {"traces"}),
        ("SELECT * FROM (VALUES (1), (2)) AS v(x)", set()),
        (
            "SELECT * FROM (PIVOT traces ON status_code USING count(*) GROUP BY model_id)",
            {"traces"},
        ),
        ("SELECT * EXCLUDE (attributes) FROM traces USING SAMPLE 50%", {"traces"}),
        ("SELECT 1", set()),
        ("(SELECT * FROM traces)", {"traces"}),
    ],
)
def test_allowed_duckdb_queries_run(
    db: duckdb.DuckDBPyConnection, sql: str, tables: set[str]
) -> None:
    query = guard(sql)
    assert query.tables == tables
    db.execute(query.sql).fetchall()


def test_table_names_come_back_as_allowed() -> None:
    query = guard("SELECT * FROM Traces", allowed_tables={"traces"})
    assert query.sql == "SELECT * FROM traces LIMIT 10000"


def test_duckdb_parameters_bind(db: duckdb.DuckDBPyConnection) -> None:
    positional = guard("SELECT count(*) FROM traces WHERE model_id = ? AND duration_ns > ?")
    assert db.execute(positional.sql, ["gpt-4o", 2_000_000]).fetchall() == [(1,)]
    named = guard("SELECT count(*) FROM traces WHERE model_id = $m")
    assert db.execute(named.sql, {"m": "claude"}).fetchall() == [(1,)]


# --- ClickHouse on DuckDB --------------------------------------------------------------------


def test_spec_query_runs_on_duckdb(db: duckdb.DuckDBPyConnection) -> None:
    query = guard(SPEC_QUERY, "clickhouse", "duckdb")
    assert query.tables == {"traces"}
    rows = db.execute(query.sql).fetchall()
    # Only the two gpt-4o spans fall inside the last hour.
    assert [(r[0], r[2], r[3]) for r in rows] == [("gpt-4o", 2, 2.0)]
    assert rows[0][4] in (1.5, 2.5)


def test_spec_query_stays_clickhouse_on_clickhouse() -> None:
    # Regenerated by sqlglot (toStartOfHour comes back as dateTrunc); no server here to run it.
    query = guard(SPEC_QUERY, "clickhouse")
    assert "quantile(0.95)(duration_ns)" in query.sql
    assert "count() AS requests" in query.sql
    assert query.sql.endswith("ORDER BY hour DESC LIMIT 10000")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("count()", 3),
        ("countIf(status_code = 'ERROR')", 1),
        ("sumIf(cost_micros, status_code = 'OK')", 150),
        ("avgIf(duration_ns, status_code = 'OK')", 1_000_000),
        ("uniqExactIf(trace_id, status_code = 'OK')", 2),
        ("quantileIf(0.5)(duration_ns, status_code = 'ERROR')", 2_500_000),
        ("uniq(trace_id)", 2),
        ("uniqExact(trace_id)", 2),
        ("uniqCombined(trace_id)", 2),
        ("countDistinct(model_id)", 2),
        ("quantile(0.5)(duration_ns)", 1_500_000),
        ("quantileExact(0.5)(duration_ns)", 1_500_000),
        ("quantiles(0.5, 0.9)(duration_ns)", [1_500_000, 2_500_000]),
        ("median(duration_ns)", 1_500_000),
        ("topK(1)(model_id)", ["gpt-4o"]),
        ("groupUniqArray(service_name)", None),
        ("anyLast(model_id)", None),
        ("argMax(model_id, duration_ns)", "gpt-4o"),
        ("stddevPop(duration_ns)", None),
        ("varSamp(duration_ns)", 1e12),
        ("max(attributes['k'])", "w"),
        ("max(mapContains(attributes, 'user'))", True),
        ("countIf(has(mapKeys(attributes), 'k'))", 2),
        ("max(toStartOfHour(start_time)) <= now()", True),
        ("min(toStartOfFiveMinutes(start_time)) <= now()", True),
        ("min(toStartOfInterval(start_time, INTERVAL 15 minute)) <= now()", True),
        ("max(toDate(start_time)) <= today()", True),
        ("max(toDate(start_time)) > yesterday() - 1", True),
        ("countIf(start_time >= now() - INTERVAL 1 HOUR)", 2),
        ("countIf(start_time >= subtractHours(now(), 1))", 2),
        ("countIf(start_time BETWEEN now() - toIntervalHour(1) AND now())", 2),
        ("max(dateDiff('hour', start_time, now()))", 3),
        ("max(toUnixTimestamp(start_time)) > 1700000000", True),
        ("max(toYYYYMM(start_time)) > 202400", True),
        ("max(toStartOfFifteenMinutes(start_time)) <= now()", True),
        ("dayofweek(min(toStartOfWeek(start_time)))", 0),
        ("dayofweek(min(toMonday(start_time)))", 1),
        ("min(toHour(start_time)) BETWEEN 0 AND 23", True),
        ("max(replaceAll(model_id, '-', '_'))", "gpt_4o"),
        ("max(CAST(start_time AS DateTime64(9))) <= now()", True),
        ("max(CAST(model_id AS LowCardinality(String)))", "gpt-4o"),
        ("sum(multiIf(status_code = 'OK', 1, status_code = 'ERROR', 10, 100))", 12),
        ("sum(if(isNull(model_id), 1, 0))", 0),
        ("sum(intDiv(duration_ns, 1000000))", 3),
        ("max(length(toString(duration_ns)))", 7),
        ("sum(toInt64('2'))", 6),
        ("max(formatDateTime(start_time, '%Y')) > '2000'", True),
    ],
)
def test_clickhouse_functions_run_on_duckdb(
    db: duckdb.DuckDBPyConnection, expression: str, expected: Any
) -> None:
    query = guard(f"SELECT {expression} AS v FROM traces", "clickhouse", "duckdb")
    [(value,)] = db.execute(query.sql).fetchall()
    if expected is not None:
        assert (
            value == pytest.approx(expected) if isinstance(expected, float) else value == expected
        )


def test_clickhouse_array_join_function_runs_on_duckdb(db: duckdb.DuckDBPyConnection) -> None:
    query = guard("SELECT arrayJoin([1, 2]) AS v", "clickhouse", "duckdb")
    assert db.execute(query.sql).fetchall() == [(1,), (2,)]


def test_clickhouse_parameters_bind_on_duckdb(db: duckdb.DuckDBPyConnection) -> None:
    query = guard(
        "SELECT count() FROM traces WHERE model_id = {m:String} AND duration_ns >= {d:UInt64}",
        "clickhouse",
        "duckdb",
    )
    assert db.execute(query.sql, {"m": "gpt-4o", "d": 2_000_000}).fetchall() == [(1,)]


def test_clickhouse_prewhere_and_final_keep_their_meaning_on_duckdb(
    db: duckdb.DuckDBPyConnection,
) -> None:
    query = guard(
        "SELECT count() FROM traces FINAL PREWHERE model_id = 'claude' WHERE status_code = 'OK'",
        "clickhouse",
        "duckdb",
    )
    assert "FINAL" not in query.sql
    assert db.execute(query.sql).fetchall() == [(1,)]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM traces LIMIT 1 BY model_id", "LIMIT ... BY runs on ClickHouse only"),
        (
            "SELECT * FROM traces ARRAY JOIN mapKeys(attributes) AS k",
            "ARRAY JOIN runs on ClickHouse only",
        ),
        (
            "WITH 1 AS one SELECT one FROM traces",
            "WITH <expression> AS one runs on ClickHouse only",
        ),
        ("SELECT * FROM traces SAMPLE 0.1", "SAMPLE runs on ClickHouse only"),
    ],
)
def test_clickhouse_only_syntax_is_refused_for_duckdb(sql: str, message: str) -> None:
    assert message in rejected(sql, "clickhouse", "duckdb")
    guard(sql, "clickhouse")


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT (1", "syntax error at line 1, col 9: Expecting )"),
        ("SELECT * FROM traces WHERE", "syntax error at line 1"),
        ("SELECT * FROM traces WHERE a = )", "syntax error at line 1"),
        ("SELECT 'abc", "syntax error: "),
    ],
)
def test_syntax_errors(sql: str, message: str) -> None:
    with pytest.raises(QueryError, match="syntax error") as info:
        guard(sql)
    assert str(info.value).startswith(message)
    assert isinstance(info.value.__cause__, SqlglotError)


@pytest.mark.parametrize("sql", [None, 42, b"SELECT 1", ["SELECT 1"]])
def test_non_string_input_is_a_query_error(sql: Any) -> None:
    assert rejected(sql).startswith("the query must be a str, got ")


def test_very_long_query_is_refused() -> None:
    long = "SELECT 1" + " " * MAX_SQL_CHARS
    assert rejected(long) == (
        f"the query is {len(long):,} characters; the limit is {MAX_SQL_CHARS:,}"
    )


def test_long_but_acceptable_query() -> None:
    sql = "SELECT * FROM traces WHERE model_id IN (" + ", ".join(["'m'"] * 5000) + ")"
    assert len(sql) < MAX_SQL_CHARS
    assert guard(sql).tables == {"traces"}


def test_deep_nesting_is_refused() -> None:
    assert rejected("SELECT " + "(" * 5000 + "1" + ")" * 5000) == (
        "the query is nested too deeply to check; simplify it"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"read_dialect": "postgres"},
        {"write_dialect": "sqlite"},
        {"max_rows": 0},
        {"max_rows": True},
        {"max_rows": 1.5},
        {"allowed_tables": "traces"},
        {"database": ""},
    ],
)
def test_bad_options_are_the_callers_error(kwargs: dict[str, Any]) -> None:
    options: dict[str, Any] = {"allowed_tables": TABLES, **kwargs}
    with pytest.raises(InvalidArgumentError):
        guard_select("SELECT 1", **options)


def test_errors_are_pyflare_errors_and_value_errors() -> None:
    with pytest.raises(PyFlareError):
        guard("DROP TABLE traces")
    with pytest.raises(ValueError, match="only SELECT"):
        guard("DROP TABLE traces")


# --- properties ----------------------------------------------------------------------------

_WORDS = [
    "SELECT", "*", "FROM", "traces", "users", "costs", "WHERE", "1", "=", "(", ")", ",", ";",
    "UNION", "ALL", "WITH", "x", "AS", "JOIN", "ON", "IN", "LIMIT", "5", "?", "'a.csv'",
    "read_csv('x')", "DROP", "TABLE", "INSERT", "INTO", "system.tables", "getenv('x')", "--",
    "/*", "*/", "\n", "count(*)", "GROUP", "BY", "ORDER", "LATERAL", "EXISTS", "main.users",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_WORDS), max_size=16), st.sampled_from(["duckdb", "clickhouse"]))
def test_random_token_soup_is_refused_or_safe(words: list[str], dialect: str) -> None:
    sql = " ".join(words)
    try:
        query = guard(sql, dialect, max_rows=50)
    except QueryError:
        return
    assert query.tables <= {"traces", "costs"}
    assert query.limit <= 50
    # What comes back passes the guard again unchanged in meaning.
    again = guard(query.sql, dialect, max_rows=50)
    assert again.tables == query.tables


_ALLOWED_SOURCES = {
    "traces": "traces",
    "COSTS": "costs",
    "pyflare.traces": "traces",
    '"logs"': "logs",
}
_REFUSED_SOURCES = [
    "users", "'a.csv'", '"traces.csv"', "read_csv('x')", "glob('*')", "system.tables",
    "information_schema.tables", "main.traces", "other.pyflare.traces", "duckdb_tables()",
]  # fmt: skip
_SHAPES = [
    "SELECT * FROM {0} JOIN {1} ON true",
    "SELECT * FROM {0} WHERE x IN (SELECT y FROM {1})",
    "WITH c AS (SELECT * FROM {0}) SELECT * FROM c, {1}",
    "SELECT * FROM {0} UNION ALL SELECT * FROM {1}",
    "SELECT (SELECT max(a) FROM {1}) FROM {0}",
    "SELECT * FROM (SELECT * FROM {0}) AS s, LATERAL (SELECT * FROM {1}) AS t",
    "SELECT * FROM {0} WHERE NOT EXISTS (SELECT 1 FROM (SELECT * FROM {1}) AS d)",
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_SHAPES),
    st.lists(st.sampled_from([*_ALLOWED_SOURCES, *_REFUSED_SOURCES]), min_size=2, max_size=2),
)
def test_a_query_passes_exactly_when_every_source_is_pyflare(
    shape: str, sources: list[str]
) -> None:
    sql = shape.format(*sources)
    if all(source in _ALLOWED_SOURCES for source in sources):
        query = guard(sql, database="pyflare")
        assert query.tables == {_ALLOWED_SOURCES[source] for source in sources}
    else:
        rejected(sql, database="pyflare")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_only_raises_query_error(sql: str) -> None:
    with contextlib.suppress(QueryError):
        guard(sql)


@settings(max_examples=100, deadline=None)
@given(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True).filter(
        lambda name: name.lower() not in TABLES
    )
)
def test_no_other_table_name_gets_through(name: str) -> None:
    try:
        query = guard(f'SELECT * FROM "{name}"')
    except QueryError:
        return
    pytest.fail(f"{name!r} got through as {query.sql!r}")
