"""DuckDB schema of the local store, as numbered migrations.

The tables mirror the ClickHouse DDL of the spec with DuckDB's types. A store
records the versions applied in ``pyflare_schema``; opening a store applies
the missing ones in order (:func:`migrate`), each in its own transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import duckdb

from pyflare.errors import StoreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "check_version", "migrate", "schema_version"]

logger = logging.getLogger(__name__)

_TRACES = """
CREATE TABLE traces (
    trace_id        VARCHAR NOT NULL,
    span_id         VARCHAR NOT NULL,
    parent_span_id  VARCHAR,
    start_time      TIMESTAMP_NS NOT NULL,
    end_time        TIMESTAMP_NS NOT NULL,
    duration_ns     BIGINT NOT NULL,
    service_name    VARCHAR NOT NULL,
    operation_name  VARCHAR NOT NULL,
    span_kind       VARCHAR NOT NULL,
    status_code     VARCHAR NOT NULL,
    status_message  VARCHAR,
    model_id        VARCHAR,
    model_version   VARCHAR,
    inference_type  VARCHAR,
    input_preview   VARCHAR,
    output_preview  VARCHAR,
    input_hash      VARCHAR,
    input_tokens    BIGINT,
    output_tokens   BIGINT,
    total_tokens    BIGINT,
    cost_micros     BIGINT,
    attributes      MAP(VARCHAR, VARCHAR) NOT NULL,
    resource        MAP(VARCHAR, VARCHAR) NOT NULL,
    events          STRUCT("time" TIMESTAMP_NS, "name" VARCHAR, attributes MAP(VARCHAR, VARCHAR))[] NOT NULL,
    _ingested_at    TIMESTAMP NOT NULL
)
"""

_METRICS = """
CREATE TABLE metrics (
    metric_name        VARCHAR NOT NULL,
    service_name       VARCHAR NOT NULL,
    model_id           VARCHAR,
    model_version      VARCHAR,
    environment        VARCHAR,
    "timestamp"        TIMESTAMP_NS NOT NULL,
    start_time         TIMESTAMP_NS,
    value_type         VARCHAR NOT NULL,
    temporality        VARCHAR,
    "value"            DOUBLE,
    histogram_count    BIGINT,
    histogram_sum      DOUBLE,
    histogram_buckets  STRUCT(upper_bound DOUBLE, "count" BIGINT)[] NOT NULL,
    quantiles          STRUCT(quantile DOUBLE, "value" DOUBLE)[] NOT NULL,
    unit               VARCHAR,
    scope_name         VARCHAR,
    attributes         MAP(VARCHAR, VARCHAR) NOT NULL,
    resource           MAP(VARCHAR, VARCHAR) NOT NULL,
    _ingested_at       TIMESTAMP NOT NULL
)
"""

_LOGS = """
CREATE TABLE logs (
    "timestamp"         TIMESTAMP_NS NOT NULL,
    observed_timestamp  TIMESTAMP_NS,
    trace_id            VARCHAR,
    span_id             VARCHAR,
    severity_number     INTEGER NOT NULL,
    severity_text       VARCHAR,
    body                VARCHAR,
    event_name          VARCHAR,
    service_name        VARCHAR NOT NULL,
    scope_name          VARCHAR,
    attributes          MAP(VARCHAR, VARCHAR) NOT NULL,
    resource            MAP(VARCHAR, VARCHAR) NOT NULL,
    _ingested_at        TIMESTAMP NOT NULL
)
"""

# One row per closed window per model and drift type, written by the server's
# drift processor. feature_scores is DriftScore.feature_breakdown; details is the
# JSON of DriftReport.to_dict() (per-feature methods, p-values, skips).
_DRIFT_RESULTS = """
CREATE TABLE drift_results (
    model_id        VARCHAR NOT NULL,
    drift_type      VARCHAR NOT NULL,
    window_start    TIMESTAMP_NS,
    window_end      TIMESTAMP_NS NOT NULL,
    computed_at     TIMESTAMP_NS NOT NULL,
    score           DOUBLE NOT NULL,
    threshold       DOUBLE NOT NULL,
    is_drifted      BOOLEAN NOT NULL,
    method          VARCHAR,
    feature_scores  MAP(VARCHAR, DOUBLE) NOT NULL,
    explanation     VARCHAR,
    n_reference     BIGINT,
    n_current       BIGINT,
    details         VARCHAR
)
"""

# Drift references as detector state (the bytes of ``state()``); every upload is
# kept and the latest per (model_id, drift_type) is the active one.
_DRIFT_REFERENCES = """
CREATE TABLE drift_references (
    model_id         VARCHAR NOT NULL,
    drift_type       VARCHAR NOT NULL,
    created_at       TIMESTAMP_NS NOT NULL,
    dataset_version  VARCHAR,
    n_samples        BIGINT NOT NULL,
    state            BLOB NOT NULL
)
"""

# One row per priced (or unpriced) model call: pyflare.records.COST_SCHEMA. A span
# has at most one row: rewriting it (a recompute) replaces the row. timestamp is
# the span's start time. Cost columns are NULL for an unpriced call, never 0.
_COSTS = """
CREATE TABLE costs (
    trace_id             VARCHAR NOT NULL,
    span_id              VARCHAR NOT NULL,
    "timestamp"          TIMESTAMP_NS NOT NULL,
    service_name         VARCHAR NOT NULL,
    model_id             VARCHAR NOT NULL,
    model_version        VARCHAR,
    provider             VARCHAR,
    price_model          VARCHAR,
    price_source         VARCHAR,
    input_tokens         BIGINT,
    output_tokens        BIGINT,
    total_tokens         BIGINT,
    cached_input_tokens  BIGINT,
    reasoning_tokens     BIGINT,
    tokens_estimated     BOOLEAN NOT NULL,
    input_cost_micros    BIGINT,
    output_cost_micros   BIGINT,
    total_cost_micros    BIGINT,
    user_id              VARCHAR,
    session_id           VARCHAR,
    feature_id           VARCHAR,
    team                 VARCHAR,
    environment          VARCHAR,
    dimensions           MAP(VARCHAR, VARCHAR) NOT NULL
)
"""

# The hourly rollup (the spec's costs_hourly_mv) as a view: DuckDB aggregates 10M
# cost rows in tens of milliseconds (bench/_cost_queries.py), so a table kept up
# to date at every write, and at every replaced row, would buy nothing. Sums skip
# NULLs and are NULL when no row of the group knows the value: an unpriced call
# adds to requests and unpriced_requests, never to cost_micros as 0.
_COSTS_HOURLY = """
CREATE VIEW costs_hourly AS
SELECT
    date_trunc('hour', "timestamp") AS "hour",
    service_name,
    model_id,
    provider,
    user_id,
    feature_id,
    team,
    environment,
    count(*) AS requests,
    CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
    CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
    CAST(sum(total_tokens) AS BIGINT) AS total_tokens,
    CAST(sum(input_cost_micros) AS BIGINT) AS input_cost_micros,
    CAST(sum(output_cost_micros) AS BIGINT) AS output_cost_micros,
    CAST(sum(total_cost_micros) AS BIGINT) AS total_cost_micros,
    count(*) - count(total_cost_micros) AS unpriced_requests,
    count(*) FILTER (WHERE tokens_estimated) AS estimated_token_requests
FROM costs
GROUP BY ALL
"""

# API keys (pyflare_server.auth): the sha256 of each key, never the key. Not
# among the tables user SQL may read (pyflare.store.base.PYFLARE_TABLES).
_API_KEYS = """
CREATE TABLE api_keys (
    key_id      VARCHAR PRIMARY KEY,
    key_hash    VARCHAR NOT NULL,
    name        VARCHAR,
    role        VARCHAR NOT NULL,
    user_id     VARCHAR,
    created_at  TIMESTAMP_NS NOT NULL,
    expires_at  TIMESTAMP_NS,
    revoked_at  TIMESTAMP_NS
)
"""

# One row per trace: what listing traces filters and orders on, kept up to date by
# every span write (an upsert of min/max/or and root-or-earliest values, all of them
# unchanged by writing a span twice). Listing picks a page here, then summarises
# only that page's spans. Not among the tables user SQL may read.
_TRACE_INDEX = """
CREATE TABLE trace_index (
    trace_id        VARCHAR PRIMARY KEY,
    start_time      TIMESTAMP_NS NOT NULL,
    end_time        TIMESTAMP_NS NOT NULL,
    root_start      TIMESTAMP_NS,
    root_service    VARCHAR,
    root_status     VARCHAR,
    first_service   VARCHAR NOT NULL,
    first_status    VARCHAR NOT NULL,
    has_error       BOOLEAN NOT NULL,
    models          VARCHAR[] NOT NULL
)
"""
_TRACE_INDEX_FILL = """
INSERT INTO trace_index
SELECT trace_id, min(start_time), max(end_time),
       min(start_time) FILTER (WHERE parent_span_id IS NULL),
       arg_min(service_name, start_time) FILTER (WHERE parent_span_id IS NULL),
       arg_min(status_code, start_time) FILTER (WHERE parent_span_id IS NULL),
       arg_min(service_name, start_time), arg_min(status_code, start_time),
       bool_or(status_code = 'error'),
       coalesce(list_distinct(list(model_id) FILTER (WHERE model_id IS NOT NULL)), [])
FROM traces GROUP BY trace_id
"""

#: (version, description, statements), applied in order.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "traces table (canonical span row)", (_TRACES,)),
    (2, "metrics and logs tables", (_METRICS, _LOGS)),
    (3, "drift results and references", (_DRIFT_RESULTS, _DRIFT_REFERENCES)),
    (4, "costs table and its hourly rollup", (_COSTS, _COSTS_HOURLY)),
    (5, "api keys (hashed)", (_API_KEYS,)),
    (6, "trace index for listing traces", (_TRACE_INDEX, _TRACE_INDEX_FILL)),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def _run(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None
) -> list[Any]:
    rows: list[Any] = con.execute(sql, params).fetchall()
    return rows


def _has_version_table(con: duckdb.DuckDBPyConnection) -> bool:
    rows = _run(
        con,
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE table_name = 'pyflare_schema' AND database_name = current_database()"
        " AND schema_name = 'main'",
    )
    return bool(rows[0][0])


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The latest migration applied to the store on ``con``."""
    rows = _run(con, "SELECT coalesce(max(version), 0) FROM pyflare_schema")
    return int(rows[0][0]) if rows else 0


def migrate(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Apply the migrations the store at ``path`` lacks, each in its own transaction."""
    current = schema_version(con) if _has_version_table(con) else 0
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"the store {path} has schema version {current}, newer than this "
            f"PyFlare supports ({SCHEMA_VERSION}); upgrade PyFlare to open it"
        )
    for version, description, statements in MIGRATIONS:
        if version <= current:
            continue
        _run(con, "BEGIN TRANSACTION")
        try:
            # Created with the first migration, so a failed one leaves no trace.
            _run(
                con,
                "CREATE TABLE IF NOT EXISTS pyflare_schema ("
                " version INTEGER PRIMARY KEY, description VARCHAR NOT NULL,"
                " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)",
            )
            for statement in statements:
                _run(con, statement)
            _run(
                con,
                "INSERT INTO pyflare_schema (version, description) VALUES (?, ?)",
                [version, description],
            )
            _run(con, "COMMIT")
        except duckdb.Error as exc:
            _run(con, "ROLLBACK")
            raise StoreError(
                f"migrating the store {path} to schema version {version} "
                f"({description}) failed: {exc}"
            ) from exc
        logger.debug("store %s migrated to schema version %d", path, version)


def check_version(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Refuse (read-only) a file that is not a PyFlare store at this schema version."""
    if not _has_version_table(con):
        raise StoreError(
            f"{path} is a DuckDB database but not a PyFlare store (it has no "
            "pyflare_schema table); point PyFlare at the file its exporter writes"
        )
    version = schema_version(con)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store {path} has schema version {version}, newer than this "
            f"PyFlare supports ({SCHEMA_VERSION}); upgrade PyFlare to read it"
        )
    if version < SCHEMA_VERSION:
        raise StoreError(
            f"the store {path} has schema version {version}; this PyFlare expects "
            f"{SCHEMA_VERSION}. Open it once read-write to migrate."
        )
