"""The SQL endpoint: POST /api/v1/query.

The body is JSON::

    {"sql": "SELECT model_id, count() FROM traces WHERE start_time > now() - INTERVAL 1 HOUR GROUP BY model_id",
     "parameters": {"model": "gpt-4o"},      # or a list for ? marks (dialect duckdb)
     "format": "json",                        # json | csv | arrow
     "dialect": "clickhouse",                 # clickhouse (default) | duckdb
     "max_rows": 1000}                        # at most server.api.max_query_rows

``params`` and ``limit`` are accepted too: they are the spec's names for
``parameters`` and ``max_rows``. The SQL is ClickHouse's by default and runs on
either store (translated for DuckDB). It must be one read-only SELECT over
PyFlare's tables (:mod:`pyflare.store.sqlguard` checks it); parameters are bound,
never formatted into the text. The query runs in a worker thread, at most
``server.api.query_timeout_s`` seconds, four at a time (more wait their turn).

The JSON answer is the spec's ``QueryResult``: ``columns`` (``[{name, type}]``),
``rows`` (lists, in column order), ``row_count``, ``truncated`` (more rows existed
than ``max_rows``), ``elapsed_ms``. CSV and Arrow answers carry the same counts in
``X-PyFlare-Row-Count``, ``X-PyFlare-Truncated`` and ``X-PyFlare-Elapsed-Ms``.

Errors: 400 a query that is not allowed or fails (the message says why), or a bad
body; 408 the query ran past the timeout; 413 the body is over 1 MiB; 415 not JSON;
503 the store could not answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response
from starlette.routing import Route

from pyflare.errors import InvalidArgumentError, QueryError, QueryTimeoutError
from pyflare.store.sqlguard import MAX_SQL_CHARS
from pyflare_server.api._http import ApiError, call_store, endpoint
from pyflare_server.api._query_results import (
    MEDIA_TYPES,
    arrow_body,
    column_types,
    csv_body,
    dumps,
    json_rows,
)
from pyflare_server.api.openapi import Operation, documented
from pyflare_server.auth.permissions import requires
from pyflare_server.bodies import BodyError, read_body

if TYPE_CHECKING:
    import pyarrow as pa
    from starlette.requests import Request

    from pyflare.store.base import SpanStore
    from pyflare_server.settings import ApiSettings

__all__ = ["MAX_BODY_BYTES", "SPEC_EXAMPLE", "QueryRequest", "QueryResult", "routes"]

SPEC_EXAMPLE: Final = (
    "SELECT model_id, count() FROM traces WHERE start_time > now() - INTERVAL 1 HOUR "
    "GROUP BY model_id"
)
MAX_BODY_BYTES: Final = 1024 * 1024
_BODY_TIMEOUT_S: Final = 30.0
_CONCURRENT_QUERIES: Final = 4
_MAX_PARAMETERS: Final = 1000

Scalar = str | int | float | bool | None
Value = Scalar | list[Scalar]
Parameters = dict[str, Value] | list[Value]


class QueryRequest(BaseModel):
    """The body of POST /api/v1/query."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sql: Annotated[str, Field(min_length=1, max_length=MAX_SQL_CHARS, examples=[SPEC_EXAMPLE])]
    parameters: Parameters | None = None
    params: Parameters | None = Field(None, description="The spec's name for parameters.")
    format: Literal["json", "csv", "arrow"] = "json"
    dialect: Literal["clickhouse", "duckdb"] = "clickhouse"
    max_rows: Annotated[int, Field(ge=1, le=10_000)] | None = None
    limit: Annotated[int, Field(ge=1, le=10_000)] | None = Field(
        None, description="The spec's name for max_rows."
    )


class QueryColumn(BaseModel):
    name: str
    type: str


class QueryResult(BaseModel):
    """The JSON answer of POST /api/v1/query."""

    columns: list[QueryColumn]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    elapsed_ms: float


_OPERATION: Final = Operation(
    summary="Run one read-only SQL query over PyFlare's tables",
    description=(
        "ClickHouse SQL by default (dialect duckdb for DuckDB's), on either store. One "
        "SELECT over PyFlare's tables; parameters are bound. format json answers a "
        "QueryResult; csv (text/csv) and arrow (an Arrow IPC stream) carry the counts in "
        "the X-PyFlare-Row-Count, X-PyFlare-Truncated and X-PyFlare-Elapsed-Ms headers."
    ),
    response=QueryResult,
    request_body=QueryRequest.model_json_schema(),
    errors=(400, 408, 413, 415, 503),
    media_types=tuple(dict.fromkeys(m.split(";")[0] for m in MEDIA_TYPES.values())),
    tags=("query",),
)


def routes(store: SpanStore, settings: ApiSettings) -> list[Route]:
    """POST /api/v1/query over ``store``, limited as ``settings`` (server.api) says."""
    running = asyncio.Semaphore(_CONCURRENT_QUERIES)

    @requires("query:execute")
    @documented(_OPERATION)
    @endpoint
    async def query(request: Request) -> Response:
        body = await _read(request)
        max_rows = _max_rows(body, settings.max_query_rows)
        parameters = _parameters(body)
        async with running:
            # A StoreError (the store is down) becomes call_store's 503.
            return await call_store(
                _answer, store, body, parameters, max_rows, settings.query_timeout_s
            )

    return [Route("/api/v1/query", query, methods=["POST"], name="query")]


# -- the request -----------------------------------------------------------------


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_argument", message)


async def _read(request: Request) -> QueryRequest:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the query as JSON (Content-Type: application/json), got {media or 'none'!r}",
        )
    try:
        raw = await read_body(request, max_bytes=MAX_BODY_BYTES, timeout_s=_BODY_TIMEOUT_S)
    except BodyError as exc:
        code = {408: "timeout", 413: "too_large", 415: "unsupported_media_type"}
        raise ApiError(exc.status, code.get(exc.status, "invalid_argument"), exc.message) from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _invalid(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _invalid(
            f'the body must be a JSON object such as {{"sql": "SELECT ..."}}, '
            f"got {type(data).__name__}"
        )
    try:
        return QueryRequest.model_validate(data)
    except ValidationError as exc:
        raise _invalid(_describe(exc)) from None


def _describe(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    if first["type"] == "extra_forbidden":
        known = ", ".join(QueryRequest.model_fields)
        return f"unknown field {where!r}; the fields are {known}"
    if first["type"] == "missing":
        return f'{where} is missing: give the query as "sql"'
    if where.startswith(("parameters", "params")):
        return (
            f"{where}: {first['msg']}; parameters are an object of name → value (or a list "
            "for ? marks), each value a string, number, boolean, null or a list of them"
        )
    return f"{where}: {first['msg']}"


def _max_rows(body: QueryRequest, limit: int) -> int:
    if body.max_rows is not None and body.limit is not None:
        raise _invalid("give max_rows or limit (the same thing), not both")
    wanted = body.max_rows if body.max_rows is not None else body.limit
    if wanted is None:
        return limit
    if wanted > limit:
        raise _invalid(f"max_rows must be from 1 to {limit} (server.api.max_query_rows)")
    return wanted


def _parameters(body: QueryRequest) -> dict[str, Value] | list[Value] | None:
    if body.parameters is not None and body.params is not None:
        raise _invalid("give parameters or params (the same thing), not both")
    given = body.parameters if body.parameters is not None else body.params
    if given is not None and len(given) > _MAX_PARAMETERS:
        raise _invalid(f"at most {_MAX_PARAMETERS} parameters, got {len(given)}")
    if isinstance(given, list) and given and body.dialect == "clickhouse":
        raise _invalid(
            "ClickHouse SQL takes named parameters: write {name:Type} in the query and give "
            "parameters as an object (or set dialect to duckdb for ? marks)"
        )
    return given or None


# -- the answer (in a worker thread) ----------------------------------------------------


def _answer(
    store: SpanStore,
    body: QueryRequest,
    parameters: dict[str, Value] | list[Value] | None,
    max_rows: int,
    timeout_s: float,
) -> Response:
    started = time.perf_counter()
    try:
        # One row past the limit tells whether there were more.
        table = store.sql(
            body.sql, parameters, max_rows=max_rows + 1, dialect=body.dialect, timeout_s=timeout_s
        )
    except QueryTimeoutError as exc:
        raise ApiError(
            408,
            "timeout",
            f"the query ran longer than {timeout_s:g} s (server.api.query_timeout_s) and "
            "was stopped; narrow its time range, add filters or aggregate more",
        ) from exc
    except (QueryError, InvalidArgumentError) as exc:
        raise ApiError(400, "invalid_query", str(exc)) from exc
    elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    truncated = table.num_rows > max_rows
    if truncated:
        table = table.slice(0, max_rows)
    return _response(table, body.format, truncated, elapsed_ms)


def _response(table: pa.Table, format_: str, truncated: bool, elapsed_ms: float) -> Response:
    if format_ == "json":
        content = {
            "columns": column_types(table),
            "rows": json_rows(table),
            "row_count": table.num_rows,
            "truncated": truncated,
            "elapsed_ms": elapsed_ms,
        }
        return Response(dumps(content), media_type=MEDIA_TYPES["json"])
    data = csv_body(table) if format_ == "csv" else arrow_body(table)
    headers = {
        "X-PyFlare-Row-Count": str(table.num_rows),
        "X-PyFlare-Truncated": "true" if truncated else "false",
        "X-PyFlare-Elapsed-Ms": f"{elapsed_ms:g}",
    }
    return Response(data, media_type=MEDIA_TYPES[format_], headers=headers)
