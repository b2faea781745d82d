"""POST /api/v1/query: answers in json, csv and arrow; parameters; limits; bad bodies."""

from __future__ import annotations

import csv
import gzip
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from _stream_app import agent_trace, app_client
from starlette.testclient import TestClient

from _readable_spans import MS
from _readable_spans import make_span as readable_span
from pyflare.records import from_readable_spans
from pyflare_server.api import query
from pyflare_server.auth.permissions import permission_of

NOW = time.time_ns()
TRACE = f"{1:032x}"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    env = {"PYFLARE_SERVER__API__MAX_QUERY_ROWS": "5"}
    with app_client(tmp_path_factory.mktemp("query"), env) as (client, store):
        note = readable_span(
            3,
            1,
            name="note",
            start=NOW - 10 * MS,
            attributes={"pyflare.input.preview": 'said "hi", then\nleft', "topic": "a,b"},
        )
        spans = [
            *agent_trace(1, start=NOW - 60_000 * MS),  # a minute ago, gpt-4o-mini
            *agent_trace(2, model="gpt-4o", start=NOW - 30_000 * MS),
            note,
        ]
        store.write(from_readable_spans(spans))
        yield client


def post(client: TestClient, **body: Any) -> Any:
    return client.post("/api/v1/query", json=body)


def ok(client: TestClient, **body: Any) -> dict[str, Any]:
    response = post(client, **body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer: dict[str, Any] = response.json()
    return answer


def bad(response: Any, status: int, code: str, detail: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["code"]) == (status, code)
    assert detail in problem["detail"], problem["detail"]


def test_the_route_declares_query_execute() -> None:
    [route] = query.routes(None, None)  # type: ignore[arg-type]
    assert permission_of(route.endpoint) == "query:execute"
    assert route.methods == {"POST"}


def test_the_spec_example_runs(client: TestClient) -> None:
    answer = ok(client, sql=query.SPEC_EXAMPLE + " ORDER BY model_id NULLS FIRST")
    assert answer["columns"][0]["name"] == "model_id"
    assert answer["columns"][1]["type"] == "int64"
    assert answer["rows"] == [[None, 3], ["gpt-4o", 1], ["gpt-4o-mini", 1]]
    assert answer["row_count"] == 3
    assert answer["truncated"] is False
    assert answer["elapsed_ms"] >= 0


def test_values_come_back_as_json(client: TestClient) -> None:
    answer = ok(
        client,
        sql="SELECT trace_id, start_time, duration_ns, attributes, events, cost_micros, "
        "input_tokens > 0 AS has_tokens FROM traces "
        "WHERE trace_id = {trace:String} AND parent_span_id IS NOT NULL",
        parameters={"trace": TRACE},
    )
    assert [c["type"] for c in answer["columns"]][:3] == ["string", "timestamp[ns]", "int64"]
    [[trace_id, start, duration, attributes, events, cost, has_tokens]] = answer["rows"]
    assert trace_id == TRACE
    assert start.endswith("Z") and len(start) == len("2026-01-01T00:00:00.000000000Z")
    assert duration == 3_000_000
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert events == []
    assert cost is None  # the store holds what was written: no cost stage ran
    assert has_tokens is True


def test_nested_times_are_iso_text(client: TestClient) -> None:
    answer = ok(
        client,
        sql="SELECT [start_time, end_time] AS times, {'at': start_time} AS moment "
        "FROM traces WHERE operation_name = 'note'",
        dialect="duckdb",
    )
    [[times, moment]] = answer["rows"]
    assert all(t.endswith("Z") and "T" in t for t in times)
    assert moment["at"] == times[0]


def test_named_and_positional_parameters(client: TestClient) -> None:
    named = ok(
        client,
        sql="SELECT count() FROM traces WHERE model_id IN ({a:String}, {b:String})",
        parameters={"a": "gpt-4o", "b": "gpt-4o-mini"},
    )
    assert named["rows"] == [[2]]
    positional = ok(
        client,
        sql="SELECT count(*) FROM traces WHERE service_name = ? AND duration_ns > ?",
        parameters=["agent", 5_000_000],
        dialect="duckdb",
    )
    assert positional["rows"] == [[2]]
    # The spec's names: params and limit.
    spec = ok(
        client,
        sql="SELECT span_id FROM traces WHERE model_id = {m:String}",
        params={"m": "gpt-4o"},
        limit=1,
    )
    assert spec["rows"] == [[f"{2:016x}"]]


def test_a_value_is_never_sql(client: TestClient) -> None:
    answer = ok(
        client,
        sql="SELECT count() FROM traces WHERE model_id = {m:String}",
        parameters={"m": "x' OR 1=1 --"},
    )
    assert answer["rows"] == [[0]]


def test_rows_past_max_rows_are_cut_and_said_so(client: TestClient) -> None:
    one = ok(client, sql="SELECT span_id FROM traces ORDER BY span_id", max_rows=2)
    assert (one["row_count"], one["truncated"], len(one["rows"])) == (2, True, 2)
    exact = ok(client, sql="SELECT span_id FROM traces ORDER BY span_id LIMIT 2", max_rows=2)
    assert (exact["row_count"], exact["truncated"]) == (2, False)
    # No max_rows: the server's limit (5 here) applies.
    default = ok(client, sql="SELECT span_id FROM traces UNION ALL SELECT span_id FROM traces")
    assert (default["row_count"], default["truncated"]) == (5, True)


def test_csv(client: TestClient) -> None:
    response = post(
        client,
        sql="SELECT operation_name, input_preview, model_id, attributes FROM traces "
        "ORDER BY start_time DESC",
        format="csv",
        max_rows=2,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["x-pyflare-row-count"] == "2"
    assert response.headers["x-pyflare-truncated"] == "true"
    assert float(response.headers["x-pyflare-elapsed-ms"]) >= 0
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["operation_name", "input_preview", "model_id", "attributes"]
    assert rows[1][:3] == ["note", 'said "hi", then\nleft', ""]
    assert rows[1][3] == '{"topic":"a,b"}'
    assert len(rows) == 3


def test_arrow(client: TestClient) -> None:
    response = post(
        client, sql="SELECT span_id, start_time FROM traces ORDER BY span_id", format="arrow"
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(response.content).read_all()
    assert table.column_names == ["span_id", "start_time"]
    assert table.schema.field("start_time").type == pa.timestamp("ns")
    assert table.num_rows == 5
    assert response.headers["x-pyflare-truncated"] == "false"


def test_a_gzipped_body_is_read(client: TestClient) -> None:
    body = gzip.compress(b'{"sql": "SELECT count() FROM traces"}')
    response = client.post(
        "/api/v1/query",
        content=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.json()["rows"] == [[5]]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "sql is missing"),
        ({"sql": 42}, "sql: Input should be a valid string"),
        ({"sql": ""}, "sql: String should have at least 1 character"),
        ({"sql": "SELECT 1", "foo": 1}, "unknown field 'foo'; the fields are sql, parameters"),
        ({"sql": "SELECT 1", "format": "xml"}, "format: Input should be 'json', 'csv' or 'arrow'"),
        ({"sql": "SELECT 1", "dialect": "oracle"}, "dialect: Input should be 'clickhouse'"),
        ({"sql": "SELECT 1", "max_rows": 0}, "max_rows: Input should be greater than or equal"),
        ({"sql": "SELECT 1", "max_rows": 10_001}, "max_rows: Input should be less than"),
        ({"sql": "SELECT 1", "max_rows": 6}, "max_rows must be from 1 to 5"),
        ({"sql": "SELECT 1", "max_rows": "5"}, "max_rows: Input should be a valid integer"),
        ({"sql": "SELECT 1", "max_rows": True}, "max_rows: Input should be a valid integer"),
        ({"sql": "SELECT 1", "max_rows": 1.5}, "max_rows: Input should be a valid integer"),
        ({"sql": "SELECT 1", "limit": 1, "max_rows": 1}, "give max_rows or limit"),
        ({"sql": "SELECT 1", "parameters": {}, "params": {}}, "give parameters or params"),
        ({"sql": "SELECT 1", "parameters": "x"}, "parameters are an object of name"),
        ({"sql": "SELECT 1", "parameters": {"a": {"b": 1}}}, "parameters.dict[str,"),
        ({"sql": "SELECT 1", "parameters": [1]}, "ClickHouse SQL takes named parameters"),
        ({"sql": "SELECT 1", "parameters": {str(i): i for i in range(1001)}}, "at most 1000"),
    ],
)
def test_bad_bodies_are_400s_naming_the_field(
    client: TestClient, body: dict[str, Any], detail: str
) -> None:
    bad(client.post("/api/v1/query", json=body), 400, "invalid_argument", detail)


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"", "the body is not valid JSON"),
        (b"SELECT 1", "the body is not valid JSON"),
        (b'{"sql": "SELECT 1"', "the body is not valid JSON"),
        (b'["SELECT 1"]', "the body must be a JSON object"),
        (b"null", "the body must be a JSON object"),
        (b"\xff\xfe", "the body is not valid JSON"),
    ],
)
def test_malformed_json_is_a_400(client: TestClient, content: bytes, detail: str) -> None:
    response = client.post(
        "/api/v1/query", content=content, headers={"Content-Type": "application/json"}
    )
    bad(response, 400, "invalid_argument", detail)


@pytest.mark.parametrize(
    ("headers", "status", "code", "detail"),
    [
        ({"Content-Type": "text/plain"}, 415, "unsupported_media_type", "got 'text/plain'"),
        ({}, 415, "unsupported_media_type", "got 'none'"),
        (
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
            "send the query as JSON",
        ),
        (
            {"Content-Type": "application/json", "Content-Encoding": "br"},
            415,
            "unsupported_media_type",
            "unsupported Content-Encoding 'br'",
        ),
        (
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            400,
            "invalid_argument",
            "not valid gzip",
        ),
    ],
)
def test_bad_media_types_and_encodings(
    client: TestClient, headers: dict[str, str], status: int, code: str, detail: str
) -> None:
    response = client.post("/api/v1/query", content=b'{"sql": "SELECT 1"}', headers=headers)
    bad(response, status, code, detail)


def test_a_body_over_a_mebibyte_is_a_413(client: TestClient) -> None:
    body = b'{"sql": "SELECT 1 -- ' + b"x" * query.MAX_BODY_BYTES + b'"}'
    response = client.post(
        "/api/v1/query", content=body, headers={"Content-Type": "application/json"}
    )
    bad(response, 413, "too_large", f"larger than {query.MAX_BODY_BYTES} bytes")
    # A gzip bomb is cut off at the same limit.
    bomb = gzip.compress(b'{"sql": "' + b" " * (8 * query.MAX_BODY_BYTES) + b'"}')
    response = client.post(
        "/api/v1/query",
        content=bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    bad(response, 413, "too_large", "counts the body after decompression")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"sql": "SELECT nope FROM traces"}, 'Referenced column "nope" not found'),
        ({"sql": "SELECT * FROM users"}, "table 'users' is not one of PyFlare's tables"),
        ({"sql": "SELEC 1"}, "only SELECT queries are allowed (got SELEC)"),
        (
            {"sql": "SELECT count() FROM traces WHERE model_id = {m:String}"},
            "m",
        ),
        (
            {"sql": "SELECT count(*) FROM traces WHERE model_id = ?", "dialect": "duckdb"},
            "1",
        ),
        ({"sql": "SELECT toStartOfFortnight(start_time) FROM traces"}, "tostartoffortnight"),
    ],
)
def test_queries_that_fail_say_why(client: TestClient, body: dict[str, Any], detail: str) -> None:
    response = client.post("/api/v1/query", json=body)
    bad(response, 400, "invalid_query", detail)


def test_other_methods_are_405(client: TestClient) -> None:
    response = client.get("/api/v1/query")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"


def test_a_failing_store_is_a_503(tmp_path: Path) -> None:
    with app_client(tmp_path) as (client, store):
        store.close()
        response = post(client, sql="SELECT count() FROM traces")
    bad(response, 503, "unavailable", "the store could not answer")
    assert response.headers["retry-after"] == "1"


def test_the_openapi_document_describes_the_endpoint(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    operation = document["paths"]["/query"]["post"]
    assert operation["x-permission"] == "query:execute"
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["sql"]
    assert set(body["properties"]) >= {"sql", "parameters", "format", "dialect", "max_rows"}
    assert set(operation["responses"]) >= {"200", "400", "408", "413", "415", "503"}
    assert "QueryResult" in document["components"]["schemas"]
