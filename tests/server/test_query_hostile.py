"""POST /api/v1/query refuses what is not one read-only SELECT over PyFlare's tables.

Each hostile statement gets a 400 problem+json naming why; none reads a file, a URL,
another database or the server's settings, none writes, and the server goes on
answering (the tables are intact afterwards). A query that runs too long is stopped
at server.api.query_timeout_s with a 408.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _stream_app import agent_trace, app_client
from starlette.testclient import TestClient

from pyflare.records import from_readable_spans

CH, DUCK = "clickhouse", "duckdb"
TABLE_FUNCTION = "is not allowed: query PyFlare's tables directly"
SYSTEM = "system catalogs can't be queried"
ONE = "only one statement is allowed, got 2"
FUNCTION = "it reads settings, files or data outside PyFlare's tables"


def only(word: str) -> str:
    return f"only SELECT queries are allowed (got {word})"


HOSTILE = [
    # File, URL and other-server readers (ClickHouse table functions).
    (CH, "SELECT * FROM file('/etc/passwd')", "table function file(...) " + TABLE_FUNCTION),
    (CH, "SELECT * FROM url('http://169.254.169.254/latest/meta-data/', 'CSV')", "url(...)"),
    (CH, "SELECT * FROM s3('https://bucket.s3.amazonaws.com/data.csv')", "s3(...)"),
    (CH, "SELECT * FROM remote('127.0.0.1', system.one)", "remote(...)"),
    (CH, "SELECT * FROM mysql('db:3306', 'shop', 'users', 'root', 'pw')", "mysql(...)"),
    (CH, "SELECT * FROM postgresql('db:5432', 'shop', 'users', 'u', 'p')", "postgresql(...)"),
    (CH, "SELECT * FROM executable('cat /etc/passwd', 'TSV', 'line String')", "executable"),
    (CH, "SELECT * FROM numbers(1000000000)", "numbers(...) " + TABLE_FUNCTION),
    # Readers hidden in subqueries.
    (CH, "SELECT * FROM traces WHERE trace_id IN (SELECT * FROM file('/etc/passwd'))", "file"),
    (CH, "SELECT * FROM (SELECT * FROM url('http://127.0.0.1:9000/', 'CSV'))", "url(...)"),
    # System tables and other databases.
    (CH, "SELECT * FROM system.tables", SYSTEM),
    (CH, "SELECT name, password FROM system.users", SYSTEM),
    (CH, "SELECT * FROM traces UNION ALL SELECT * FROM system.numbers", SYSTEM),
    (CH, "SELECT * FROM other_db.traces", "write PyFlare's tables without a schema"),
    (DUCK, "SELECT * FROM information_schema.tables", SYSTEM),
    (DUCK, "SELECT * FROM pg_catalog.pg_tables", SYSTEM),
    # Several statements, comment tricks.
    (CH, "SELECT * FROM traces; DROP TABLE traces", ONE),
    (CH, "SELECT 1; SELECT 2", ONE),
    (CH, "SELECT * FROM traces /* harmless */; DELETE FROM traces WHERE 1", ONE),
    (CH, "SELECT * FROM traces -- the rest is a comment\n; DROP TABLE traces", ONE),
    (DUCK, "SELECT * FROM traces LIMIT 1; CHECKPOINT", ONE),
    # Writes and DDL, at the top or inside a CTE.
    (CH, "DROP TABLE traces", only("DROP")),
    (CH, "INSERT INTO traces SELECT * FROM traces", only("INSERT")),
    (CH, "ALTER TABLE traces DELETE WHERE 1", only("ALTER")),
    (CH, "CREATE TABLE stolen AS SELECT * FROM traces", only("CREATE")),
    (DUCK, "WITH gone AS (DELETE FROM traces RETURNING *) SELECT * FROM gone", only("DELETE")),
    (
        DUCK,
        "WITH added AS (INSERT INTO traces SELECT * FROM traces RETURNING *) SELECT 1",
        only("INSERT"),
    ),
    (DUCK, "SELECT * INTO stolen FROM traces", "SELECT ... INTO is not allowed"),
    # Session and database commands.
    (DUCK, "ATTACH '/tmp/pyflare-other.duckdb' AS other", only("ATTACH")),
    (DUCK, "DETACH pyflare", only("DETACH")),
    (DUCK, "USE memory", only("USE")),
    (DUCK, "COPY traces TO '/tmp/pyflare-copy.csv'", only("COPY")),
    (DUCK, "EXPORT DATABASE '/tmp/pyflare-export'", only("EXPORT")),
    (DUCK, "INSTALL httpfs", only("INSTALL")),
    (DUCK, "LOAD httpfs", only("LOAD")),
    (DUCK, "PRAGMA database_list", only("PRAGMA")),
    (DUCK, "SET enable_external_access = true", only("SET")),
    (DUCK, "CALL duckdb_secrets()", only("CALL")),
    (DUCK, "SUMMARIZE traces", only("SUMMARIZE")),
    # DuckDB readers: table functions and file names in FROM.
    (DUCK, "SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto(...)"),
    (DUCK, "SELECT * FROM read_parquet('s3://bucket/x.parquet')", "read_parquet(...)"),
    (DUCK, "SELECT * FROM '/etc/passwd'", "files and URLs can't be read"),
    (DUCK, "SELECT * FROM 'https://example.com/data.csv'", "files and URLs can't be read"),
    (DUCK, "SELECT * FROM glob('/*')", "glob(...)"),
    (DUCK, "SELECT * FROM query_table('traces')", "query_table(...)"),
    (DUCK, "SELECT * FROM duckdb_settings()", "duckdb_settings(...)"),
    (DUCK, "SELECT * FROM generate_series(1, 10)", "generate_series(...)"),
    # Functions that read the environment, settings, other tables, or stall.
    (DUCK, "SELECT getenv('HOME')", "function getenv() is not allowed: " + FUNCTION),
    (DUCK, "SELECT current_setting('threads')", "current_setting()"),
    (CH, "SELECT dictGet('secrets', 'value', toUInt64(1))", "function dictGet()"),
    (CH, "SELECT sleep(3)", "function sleep()"),
    # Clauses that change the server's settings or output.
    (CH, "SELECT * FROM traces SETTINGS max_execution_time = 100000", "SETTINGS is not allowed"),
    (CH, "SELECT * FROM traces FORMAT TabSeparated", "FORMAT is not allowed"),
    (CH, "SELECT * FROM traces INTO OUTFILE '/tmp/pyflare-out.csv'", "syntax error"),
    # A parameter choosing the table.
    (CH, "SELECT * FROM traces WHERE operation_name = {t:Identifier}", "type Identifier"),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with app_client(tmp_path_factory.mktemp("hostile")) as (client, store):
        store.write(from_readable_spans([*agent_trace(1), *agent_trace(2)]))
        yield client


def count(client: TestClient) -> int:
    response = client.post("/api/v1/query", json={"sql": "SELECT count() AS n FROM traces"})
    assert response.status_code == 200, response.text
    n: int = response.json()["rows"][0][0]
    return n


def test_there_are_at_least_thirty() -> None:
    assert len(HOSTILE) >= 30
    assert len({sql for _, sql, _ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize(("dialect", "sql", "reason"), HOSTILE)
def test_hostile_statements_are_refused(
    client: TestClient, dialect: str, sql: str, reason: str
) -> None:
    response = client.post("/api/v1/query", json={"sql": sql, "dialect": dialect})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_query"
    assert problem["instance"] == "/api/v1/query"
    assert reason in problem["detail"]
    assert "root:" not in response.text  # nothing of /etc/passwd came back
    assert count(client) == 4  # the tables are intact and the server answers


def test_nothing_was_written_outside_the_store() -> None:
    for path in ("/tmp/pyflare-copy.csv", "/tmp/pyflare-export", "/tmp/pyflare-out.csv"):
        assert not Path(path).exists()
    assert not Path("/tmp/pyflare-other.duckdb").exists()


CROSS_JOIN = "SELECT count() AS n FROM " + ", ".join(f"traces t{i}" for i in range(20))


def test_a_huge_cross_join_hits_the_timeout_and_the_server_goes_on(tmp_path: Path) -> None:
    env = {"PYFLARE_SERVER__API__QUERY_TIMEOUT_S": "0.5"}
    with app_client(tmp_path, env) as (client, store):
        store.write(from_readable_spans([*agent_trace(1), *agent_trace(2)]))
        response = client.post("/api/v1/query", json={"sql": CROSS_JOIN})
        assert response.status_code == 408, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "timeout"
        assert "ran longer than 0.5 s (server.api.query_timeout_s)" in problem["detail"]
        # The store took writes meanwhile and still answers.
        store.write(from_readable_spans(agent_trace(3)))
        assert count(client) == 6
