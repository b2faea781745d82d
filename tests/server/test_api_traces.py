"""GET /api/v1/traces, /api/v1/traces/{trace_id} and /api/v1/traces/{trace_id}/spans."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.testclient import TestClient

import pyflare
from _readable_spans import MS, T0
from _readable_spans import make_span as readable_span
from pyflare.records import from_readable_spans
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare.testing import capture_spans
from pyflare_server import api
from pyflare_server.api._http import ApiError
from pyflare_server.api.traces import parse_trace_query

S = 1_000_000_000
FRAUD = 0xFEED << 112 | 3  # a trace id with its own prefix


# Every span of these tests has the same environment in its resource.
make_span = functools.partial(readable_span, resource={"deployment.environment.name": "test"})


def tid(trace: int) -> str:
    return f"{trace:032x}"


LLM = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.provider.name": "openai",
    "gen_ai.usage.input_tokens": 120,
    "gen_ai.usage.output_tokens": 30,
    "pyflare.cost.micros": 36,
}

# Trace 1: a RAG request (root, retriever, LLM with an error event), unset status.
# Trace 2: an error. Trace 3: explicit ok, another service and model. Trace 4: old.
SPANS = [
    make_span(
        1,
        11,
        name="answer",
        start=T0,
        duration=2 * S,
        service="rag-api",
        kind=SpanKind.SERVER,
        attributes={
            "pyflare.input.preview": "What is PyFlare?",
            "pyflare.output.preview": "An observability tool.",
            "user.id": "u-1",
        },
    ),
    make_span(1, 12, parent=11, name="retrieve", start=T0 + 10 * MS, duration=50 * MS),
    make_span(
        1,
        13,
        parent=11,
        name="chat gpt-4o-mini",
        start=T0 + 100 * MS,
        duration=1500 * MS,
        kind=SpanKind.CLIENT,
        attributes=LLM,
        events=[Event("retry", {"attempt": 2}, timestamp=T0 + 100 * MS + 7)],
    ),
    make_span(
        2,
        21,
        name="answer",
        start=T0 + 60 * S,
        duration=300 * MS,
        service="rag-api",
        status=StatusCode.ERROR,
        message="RateLimitError: 429",
        attributes=LLM,
    ),
    make_span(
        FRAUD,
        31,
        name="classify",
        start=T0 + 120 * S,
        duration=5 * MS,
        service="fraud",
        status=StatusCode.OK,
        attributes={"pyflare.model.id": "fraud-xgb", "pyflare.inference.type": "classification"},
    ),
    make_span(4, 41, name="old", start=T0 - 86400 * S, service="rag-api"),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBSpanStore]:
    with DuckDBSpanStore(tmp_path / "api.duckdb") as opened:
        opened.write(from_readable_spans(SPANS))
        yield opened


@pytest.fixture
def client(store: DuckDBSpanStore) -> Iterator[TestClient]:
    with TestClient(Starlette(routes=api.routes(store))) as test_client:
        yield test_client


def listed(client: TestClient, **params: Any) -> list[str]:
    response = client.get("/api/v1/traces", params=params)
    assert response.status_code == 200, response.text
    return [trace["trace_id"] for trace in response.json()["traces"]]


def bad_request(client: TestClient, url: str, **params: Any) -> str:
    response = client.get(url, params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    error = response.json()
    assert (error["status"], error["code"], error["title"]) == (
        400,
        "invalid_argument",
        "Bad Request",
    )
    return str(error["detail"])


# -- listing -------------------------------------------------------------------


def test_list_returns_summaries_newest_first_with_total_and_paging(client: TestClient) -> None:
    response = client.get("/api/v1/traces")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert [t["trace_id"] for t in body["traces"]] == [tid(FRAUD), tid(2), tid(1), tid(4)]
    assert (body["total"], body["limit"], body["offset"]) == (4, 100, 0)
    rag = body["traces"][2]
    assert rag == {
        "trace_id": tid(1),
        "service_name": "rag-api",
        "operation_name": "answer",
        "model_id": "gpt-4o-mini",
        "start_time": "2026-01-01T00:00:00.000000123Z",
        "start_time_ns": T0,
        "end_time": "2026-01-01T00:00:02.000000123Z",
        "end_time_ns": T0 + 2 * S,
        "duration_ms": 2000.0,
        "duration_ns": 2 * S,
        "status": "ok",
        "status_code": "unset",
        "span_count": 3,
        "error_count": 0,
        "input_preview": "What is PyFlare?",
        "output_preview": "An observability tool.",
        "input_tokens": 120,
        "output_tokens": 30,
        "total_tokens": 150,
        "cost_usd": 0.000036,
        "cost_micros": 36,
    }
    error = body["traces"][1]
    assert (error["status"], error["status_code"], error["error_count"]) == ("error", "error", 1)
    fraud = body["traces"][0]
    assert (fraud["input_tokens"], fraud["cost_usd"], fraud["status"]) == (None, None, "ok")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"service": "rag-api"}, [2, 1, 4]),
        ({"service": "fraud"}, [FRAUD]),
        ({"service": "nobody"}, []),
        ({"model_id": "gpt-4o-mini"}, [2, 1]),
        ({"model_id": "fraud-xgb"}, [FRAUD]),
        ({"status": "error"}, [2]),
        # ok: no span failed, whether the status says ok or (OTel's default) unset.
        ({"status": "ok"}, [FRAUD, 1, 4]),
        ({"status": "ok", "service": "rag-api"}, [1, 4]),
        ({"min_duration": "1s"}, [1]),
        ({"text": "pyflare"}, [1]),
        ({"service": "rag-api", "model_id": "gpt-4o-mini", "status": "error"}, [2]),
    ],
)
def test_list_filters(client: TestClient, params: dict[str, str], expected: list[int]) -> None:
    assert listed(client, **params) == [tid(t) for t in expected]
    total = client.get("/api/v1/traces", params=params).json()["total"]
    assert total == len(expected)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # Z, an offset, no zone (UTC), nanoseconds; start inclusive, end exclusive.
        ({"start_time": "2026-01-01T00:00:00.000000123Z"}, [FRAUD, 2, 1]),
        ({"start_time": "2026-01-01T00:00:00.000000124Z"}, [FRAUD, 2]),
        ({"end_time": "2026-01-01T00:01:00.000000123Z"}, [1, 4]),
        ({"start_time": "2026-01-01T02:00:30+02:00"}, [FRAUD, 2]),
        ({"start_time": "2026-01-01T00:00:30", "end_time": "2026-01-01T00:01:30"}, [2]),
        ({"start_time": str(T0 + 60 * S), "end_time": str(T0 + 60 * S + 1)}, [2]),
        ({"end_time": "2026-01-01"}, [4]),
        ({"start_time": "2026-01-01T00:00:30Z", "end_time": "2026-01-01T00:00:30Z"}, []),
    ],
)
def test_list_time_range(client: TestClient, params: dict[str, str], expected: list[int]) -> None:
    assert listed(client, **params) == [tid(t) for t in expected]


def test_a_duration_means_that_long_ago() -> None:
    now = T0 + 3600 * S
    query = parse_trace_query(QueryParams("start_time=1h&end_time=15m"), now_ns=now)
    assert (query.since_ns, query.until_ns) == (now - 3600 * S, now - 900 * S)


def test_paging_walks_every_trace_once(client: TestClient) -> None:
    for status in (None, "ok"):
        params = {} if status is None else {"status": status}
        pages = []
        for offset in range(5):
            body = client.get("/api/v1/traces", params={**params, "limit": 1, "offset": offset})
            pages += [t["trace_id"] for t in body.json()["traces"]]
            assert body.json()["limit"] == 1
            assert body.json()["offset"] == offset
        assert pages == listed(client, **params)
    body = client.get("/api/v1/traces", params={"offset": 10}).json()
    assert (body["traces"], body["total"]) == ([], 4)
    assert len(listed(client, limit=1000)) == 4


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": "0"}, "limit must be an integer from 1 to 1000, got '0'"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": "1" * 40}, "limit"),
        ({"offset": "-1"}, "offset must be an integer from 0"),
        ({"offset": "x"}, "offset"),
        ({"offset": "9" * 30}, "offset"),
        ({"status": "unset"}, "status must be one of ok, error, got 'unset'"),
        ({"status": "OK "}, "status"),
        ({"status": ""}, "status must not be empty"),
        ({"service": ""}, "service must not be empty"),
        ({"model_id": " "}, "model_id must not be empty"),
        ({"start_time": "yesterday"}, "start_time='yesterday' is not a time"),
        ({"start_time": "2026-13-01T00:00:00Z"}, "start_time"),
        ({"end_time": "2026-01-01T00:00:00+25:00"}, "end_time"),
        ({"end_time": "9999-01-01T00:00:00Z"}, "end_time='9999-01-01T00:00:00Z' is out of range"),
        ({"start_time": "9" * 25}, "start_time"),
        ({"start_time": "2026-01-02", "end_time": "2026-01-01"}, "end_time (2026-01-01) is before"),
        ({"min_duration": "long"}, "min_duration='long' is not a duration"),
        ({"services": "rag-api"}, "unknown parameter 'services'; expected one of: service,"),
    ],
)
def test_bad_list_parameters_are_400_naming_the_parameter(
    client: TestClient, params: dict[str, str], named: str
) -> None:
    assert named in bad_request(client, "/api/v1/traces", **params)


def test_a_parameter_given_twice_is_400(client: TestClient) -> None:
    response = client.get("/api/v1/traces?service=a&service=b")
    assert response.status_code == 400
    assert "'service' is given 2 times" in response.json()["detail"]


def test_parse_errors_are_api_errors() -> None:
    with pytest.raises(ApiError, match="limit") as raised:
        parse_trace_query(QueryParams("limit=0"))
    assert (raised.value.status, raised.value.code) == (400, "invalid_argument")


# -- one trace -----------------------------------------------------------------


def test_get_trace_is_the_summary_with_the_root_attributes_and_the_spans(
    client: TestClient,
) -> None:
    listed_summary = client.get("/api/v1/traces", params={"service": "rag-api"}).json()
    summary = next(t for t in listed_summary["traces"] if t["trace_id"] == tid(1))
    response = client.get(f"/api/v1/traces/{tid(1)}")
    assert response.status_code == 200
    body = response.json()
    spans = body.pop("spans")
    assert body == {
        **summary,
        "attributes": {"user.id": "u-1"},
        "resource": {"service.name": "rag-api", "deployment.environment.name": "test"},
    }
    assert spans == client.get(f"/api/v1/traces/{tid(1)}/spans").json()


def test_spans_come_in_tree_order_with_every_field(client: TestClient) -> None:
    spans = client.get(f"/api/v1/traces/{tid(1)}/spans").json()
    assert [(s["span_id"], s["depth"]) for s in spans] == [
        (f"{11:016x}", 0),
        (f"{12:016x}", 1),
        (f"{13:016x}", 1),
    ]
    llm = spans[2]
    assert llm == {
        "trace_id": tid(1),
        "span_id": f"{13:016x}",
        "parent_span_id": f"{11:016x}",
        "depth": 1,
        "operation_name": "chat gpt-4o-mini",
        "service_name": "svc",
        "span_kind": "client",
        "start_time": "2026-01-01T00:00:00.100000123Z",
        "start_time_ns": T0 + 100 * MS,
        "end_time": "2026-01-01T00:00:01.600000123Z",
        "end_time_ns": T0 + 1600 * MS,
        "duration_ms": 1500.0,
        "duration_ns": 1500 * MS,
        "status_code": "unset",
        "status_message": None,
        "model_id": "gpt-4o-mini",
        "model_version": None,
        "inference_type": "llm",
        "input_preview": None,
        "output_preview": None,
        "input_hash": None,
        "input_tokens": 120,
        "output_tokens": 30,
        "total_tokens": 150,
        "cost_micros": 36,
        "cost_usd": 0.000036,
        "attributes": {k: str(v) for k, v in LLM.items()},
        "resource": {"service.name": "svc", "deployment.environment.name": "test"},
        "events": [
            {
                "name": "retry",
                "time": "2026-01-01T00:00:00.100000130Z",
                "time_ns": T0 + 100 * MS + 7,
                "attributes": {"attempt": "2"},
            }
        ],
    }
    error = client.get(f"/api/v1/traces/{tid(2)}/spans").json()[0]
    assert (error["status_code"], error["status_message"]) == ("error", "RateLimitError: 429")


@pytest.mark.parametrize("suffix", ["", "/spans"])
def test_a_trace_id_may_be_upper_case_or_a_unique_prefix(client: TestClient, suffix: str) -> None:
    full = client.get(f"/api/v1/traces/{tid(FRAUD)}{suffix}").json()
    assert client.get(f"/api/v1/traces/{tid(FRAUD).upper()}{suffix}").json() == full
    assert client.get(f"/api/v1/traces/FeeD00{suffix}").json() == full


@pytest.mark.parametrize("suffix", ["", "/spans"])
def test_unknown_and_malformed_trace_ids(client: TestClient, suffix: str) -> None:
    response = client.get(f"/api/v1/traces/{'ab' * 16}{suffix}")
    assert response.status_code == 404
    assert response.json() == {
        "type": "urn:pyflare:problem:not_found",
        "title": "Not Found",
        "status": 404,
        "detail": f"no trace with id {'ab' * 16!r}",
        "instance": f"/api/v1/traces/{'ab' * 16}{suffix}",
        "code": "not_found",
    }
    response = client.get(f"/api/v1/traces/abcdef{suffix}")
    assert response.status_code == 404
    assert "no trace id starts with 'abcdef'" in response.json()["detail"]
    message = bad_request(client, f"/api/v1/traces/000000{suffix}")
    assert "'000000' is the start of more than one trace" in message
    for bad in ("abc", "xyz123456", "0x" + "0" * 30, "1_" + "0" * 30, "a" * 33, "ä" * 6):
        assert "trace_id must be 32 hex characters" in bad_request(
            client, f"/api/v1/traces/{bad}{suffix}"
        )
    assert "unknown parameter 'limit'" in bad_request(
        client, f"/api/v1/traces/{tid(1)}{suffix}", limit=1
    )


def test_only_get(client: TestClient) -> None:
    assert client.post("/api/v1/traces").status_code == 405
    assert client.delete(f"/api/v1/traces/{tid(1)}").status_code == 405
    assert client.head("/api/v1/traces").status_code == 200


# -- the store -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/api/v1/traces", f"/api/v1/traces/{tid(1)}", f"/api/v1/traces/{tid(1)}/spans"]
)
def test_a_failing_store_is_503_json(
    store: DuckDBSpanStore, client: TestClient, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store.close()
    response = client.get(url)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    error = response.json()
    assert error["code"] == "unavailable"
    assert "closed" in error["detail"]
    assert "the store failed a read" in caplog.text


def test_spans_recorded_by_the_sdk_read_back(tmp_path: Path) -> None:
    with capture_spans() as captured:
        with pyflare.span("ask", kind="chain"):
            with pyflare.span("chat", kind="llm"):
                pyflare.record_usage(input_tokens=7, output_tokens=3, model="m-1", provider="p")
    with DuckDBSpanStore(tmp_path / "sdk.duckdb") as store:
        store.write(captured.batch())
        with TestClient(Starlette(routes=api.routes(store))) as client:
            (summary,) = client.get("/api/v1/traces").json()["traces"]
            assert (summary["model_id"], summary["total_tokens"]) == ("m-1", 10)
            assert summary["service_name"] == "pyflare-test"
            detail = client.get(f"/api/v1/traces/{summary['trace_id']}").json()
            assert [s["operation_name"] for s in detail["spans"]] == ["ask", "chat"]


def test_attribute_and_min_duration_ms_filters(client: TestClient) -> None:
    assert listed(client, attribute="user.id=u-1") == [tid(1)]
    assert listed(client, attribute=["user.id=u-1", "gen_ai.request.model=gpt-4o-mini"]) == [tid(1)]
    assert listed(client, attribute="user.id=u-2") == []
    assert listed(client, attribute="user.id=") == []
    assert listed(client, min_duration_ms="1999.5") == [tid(1)]
    assert listed(client, min_duration_ms="0", limit=2) == [tid(FRAUD), tid(2)]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"attribute": "user.id"}, "attribute must be key=value"),
        ({"attribute": "=x"}, "attribute must be key=value"),
        ({"attribute": ["a=1", "a=2"]}, "attribute 'a' is given two values"),
        ({"attribute": [f"k{i}=v" for i in range(17)]}, "at most 16"),
        ({"min_duration_ms": "-1"}, "min_duration_ms must be a number"),
        ({"min_duration_ms": "nan"}, "min_duration_ms must be a number"),
        ({"min_duration_ms": "soon"}, "min_duration_ms must be a number"),
        ({"min_duration_ms": "1", "min_duration": "1s"}, "not both"),
    ],
)
def test_bad_attribute_and_duration_filters(
    client: TestClient, params: dict[str, Any], named: str
) -> None:
    assert named in bad_request(client, "/api/v1/traces", **params)
