"""ClickHouse schema of the scaled store, as numbered migrations.

The spec's DDL (database ``pyflare``) with the canonical row's columns and
types (DESIGN.md §3): NULL stays NULL (``Nullable``), counts and micro-dollars
are Int64 like everywhere else in PyFlare. Where PyFlare's contract needs more
than the spec's sketch, the tables differ as follows:

* ``traces`` is a ReplacingMergeTree keyed by the spec's sort key, versioned by
  a hidden ``_version`` column (0 for a span as received, the rewrite time for
  a repriced one), so a redelivered span collapses into the stored one and a
  cost rewrite wins over it. Readers query with ``final = 1``.
* ``costs`` keeps one row per model call, replaced on rewrite
  (ReplacingMergeTree); the spec's SummingMergeTree rollup is
  ``costs_hourly_mv``, fed from ``cost_changes`` (a Null table that receives
  +1 rows for new costs and -1 rows for the ones they replace), read through
  the ``costs_hourly`` view.
* Hidden columns (``_partition_date``, ``_version``) are MATERIALIZED, so
  ``SELECT *`` shows the canonical row only.

A database records the versions applied in ``pyflare_schema``. ClickHouse has
no transactions: every statement is idempotent (IF NOT EXISTS), so a migration
interrupted half way is completed by the next open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyflare_server.storage._clickhouse_keys import API_KEYS_TABLE

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "VERSION_TABLE", "Retention", "migration_statements"]


@dataclass(frozen=True)
class Retention:
    """Days each kind of row is kept (the spec's TTLs); None keeps rows forever."""

    traces: int | None = 30
    metrics: int | None = 90
    logs: int | None = 30
    costs: int | None = 365


_STR_MAP = "Map(LowCardinality(String), String)"

_TRACES = f"""
CREATE TABLE IF NOT EXISTS traces (
    trace_id        String CODEC(ZSTD(1)),
    span_id         String CODEC(ZSTD(1)),
    parent_span_id  Nullable(String) CODEC(ZSTD(1)),
    start_time      DateTime64(9) CODEC(Delta, ZSTD(1)),
    end_time        DateTime64(9) CODEC(Delta, ZSTD(1)),
    duration_ns     Int64 CODEC(ZSTD(1)),
    service_name    LowCardinality(String),
    operation_name  LowCardinality(String),
    span_kind       LowCardinality(String),
    status_code     LowCardinality(String),
    status_message  Nullable(String) CODEC(ZSTD(1)),
    model_id        LowCardinality(Nullable(String)),
    model_version   LowCardinality(Nullable(String)),
    inference_type  LowCardinality(Nullable(String)),
    input_preview   Nullable(String) CODEC(ZSTD(1)),
    output_preview  Nullable(String) CODEC(ZSTD(1)),
    input_hash      Nullable(String) CODEC(ZSTD(1)),
    input_tokens    Nullable(Int64) CODEC(ZSTD(1)),
    output_tokens   Nullable(Int64) CODEC(ZSTD(1)),
    total_tokens    Nullable(Int64) CODEC(ZSTD(1)),
    cost_micros     Nullable(Int64) CODEC(ZSTD(1)),
    attributes      {_STR_MAP} CODEC(ZSTD(1)),
    resource        {_STR_MAP} CODEC(ZSTD(1)),
    events          Array(Tuple(time DateTime64(9), name String, attributes Map(String, String)))
                    CODEC(ZSTD(1)),
    _ingested_at    DateTime64(6) CODEC(Delta, ZSTD(1)),
    _partition_date Date MATERIALIZED toDate(start_time),
    _version        UInt64 MATERIALIZED 0,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_model_id model_id TYPE set(100) GRANULARITY 1,
    INDEX idx_status status_code TYPE set(10) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(_version)
PARTITION BY toYYYYMM(_partition_date)
ORDER BY (service_name, model_id, start_time, trace_id, span_id)
{{ttl:_partition_date:traces}}
SETTINGS index_granularity = 8192, allow_nullable_key = 1
"""

_METRICS = f"""
CREATE TABLE IF NOT EXISTS metrics (
    metric_name        LowCardinality(String),
    service_name       LowCardinality(String),
    model_id           LowCardinality(Nullable(String)),
    model_version      LowCardinality(Nullable(String)),
    environment        LowCardinality(Nullable(String)),
    timestamp          DateTime64(9) CODEC(Delta, ZSTD(1)),
    start_time         Nullable(DateTime64(9)) CODEC(ZSTD(1)),
    value_type         LowCardinality(String),
    temporality        LowCardinality(Nullable(String)),
    value              Nullable(Float64) CODEC(ZSTD(1)),
    histogram_count    Nullable(Int64) CODEC(ZSTD(1)),
    histogram_sum      Nullable(Float64) CODEC(ZSTD(1)),
    histogram_buckets  Array(Tuple(upper_bound Float64, count Int64)) CODEC(ZSTD(1)),
    quantiles          Array(Tuple(quantile Float64, value Float64)) CODEC(ZSTD(1)),
    unit               LowCardinality(Nullable(String)),
    scope_name         LowCardinality(Nullable(String)),
    attributes         {_STR_MAP} CODEC(ZSTD(1)),
    resource           {_STR_MAP} CODEC(ZSTD(1)),
    _ingested_at       DateTime64(6) CODEC(Delta, ZSTD(1)),
    _partition_date    Date MATERIALIZED toDate(timestamp)
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(_partition_date)
ORDER BY (metric_name, service_name, model_id, timestamp)
{{ttl:_partition_date:metrics}}
SETTINGS allow_nullable_key = 1
"""

_LOGS = f"""
CREATE TABLE IF NOT EXISTS logs (
    timestamp           DateTime64(9) CODEC(Delta, ZSTD(1)),
    observed_timestamp  Nullable(DateTime64(9)) CODEC(ZSTD(1)),
    trace_id            Nullable(String) CODEC(ZSTD(1)),
    span_id             Nullable(String) CODEC(ZSTD(1)),
    severity_number     Int32,
    severity_text       LowCardinality(Nullable(String)),
    body                Nullable(String) CODEC(ZSTD(1)),
    event_name          LowCardinality(Nullable(String)),
    service_name        LowCardinality(String),
    scope_name          LowCardinality(Nullable(String)),
    attributes          {_STR_MAP} CODEC(ZSTD(1)),
    resource            {_STR_MAP} CODEC(ZSTD(1)),
    _ingested_at        DateTime64(6) CODEC(Delta, ZSTD(1)),
    _partition_date     Date MATERIALIZED toDate(timestamp),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(_partition_date)
ORDER BY (service_name, timestamp)
{{ttl:_partition_date:logs}}
"""

_DRIFT_RESULTS = """
CREATE TABLE IF NOT EXISTS drift_results (
    model_id        String,
    drift_type      LowCardinality(String),
    window_start    Nullable(DateTime64(9)),
    window_end      DateTime64(9),
    computed_at     DateTime64(9),
    score           Float64,
    threshold       Float64,
    is_drifted      Bool,
    method          Nullable(String),
    feature_scores  Map(String, Float64),
    explanation     Nullable(String),
    n_reference     Nullable(Int64),
    n_current       Nullable(Int64),
    details         Nullable(String) CODEC(ZSTD(1))
)
ENGINE = MergeTree()
ORDER BY (model_id, drift_type, window_end, computed_at)
"""

_DRIFT_REFERENCES = """
CREATE TABLE IF NOT EXISTS drift_references (
    model_id         String,
    drift_type       LowCardinality(String),
    created_at       DateTime64(9),
    dataset_version  Nullable(String),
    n_samples        Int64,
    state            String CODEC(ZSTD(1))
)
ENGINE = MergeTree()
ORDER BY (model_id, drift_type, created_at)
"""

_COSTS = """
CREATE TABLE IF NOT EXISTS costs (
    trace_id             String CODEC(ZSTD(1)),
    span_id              String CODEC(ZSTD(1)),
    timestamp            DateTime64(9) CODEC(Delta, ZSTD(1)),
    service_name         LowCardinality(String),
    model_id             LowCardinality(String),
    model_version        LowCardinality(Nullable(String)),
    provider             LowCardinality(Nullable(String)),
    price_model          LowCardinality(Nullable(String)),
    price_source         LowCardinality(Nullable(String)),
    input_tokens         Nullable(Int64),
    output_tokens        Nullable(Int64),
    total_tokens         Nullable(Int64),
    cached_input_tokens  Nullable(Int64),
    reasoning_tokens     Nullable(Int64),
    tokens_estimated     Bool,
    input_cost_micros    Nullable(Int64),
    output_cost_micros   Nullable(Int64),
    total_cost_micros    Nullable(Int64),
    user_id              Nullable(String),
    session_id           Nullable(String),
    feature_id           LowCardinality(Nullable(String)),
    team                 LowCardinality(Nullable(String)),
    environment          LowCardinality(Nullable(String)),
    dimensions           Map(LowCardinality(String), String),
    _partition_date      Date MATERIALIZED toDate(timestamp),
    _version             UInt64 MATERIALIZED toUnixTimestamp64Nano(now64(9))
)
ENGINE = ReplacingMergeTree(_version)
PARTITION BY toYYYYMM(_partition_date)
ORDER BY (toStartOfHour(timestamp), trace_id, span_id)
{ttl:_partition_date:costs}
"""

# What changed in the costs: +1 rows for a new or replacing cost, -1 rows for
# the cost replaced. A Null table stores nothing; it feeds the rollup below.
_COST_CHANGES = """
CREATE TABLE IF NOT EXISTS cost_changes (
    sign                 Int8,
    timestamp            DateTime64(9),
    service_name         String,
    model_id             String,
    provider             Nullable(String),
    user_id              Nullable(String),
    feature_id           Nullable(String),
    team                 Nullable(String),
    environment          Nullable(String),
    input_tokens         Nullable(Int64),
    output_tokens        Nullable(Int64),
    total_tokens         Nullable(Int64),
    tokens_estimated     Bool,
    input_cost_micros    Nullable(Int64),
    output_cost_micros   Nullable(Int64),
    total_cost_micros    Nullable(Int64)
)
ENGINE = Null
"""


def _known(column: str, alias: str) -> str:
    return (
        f"sum(c.sign * ifNull(c.{column}, 0)) AS {alias}, "
        f"sum(c.sign * toInt64(isNotNull(c.{column}))) AS {alias}_known"
    )


_COSTS_HOURLY_MV = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS costs_hourly_mv
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (model_id, user_id, feature_id, hour, service_name, provider, team, environment)
SETTINGS allow_nullable_key = 1
AS SELECT
    model_id, user_id, feature_id, environment, service_name, provider, team,
    toStartOfHour(c.timestamp) AS hour,
    {_known("input_tokens", "input_tokens")},
    {_known("output_tokens", "output_tokens")},
    {_known("total_tokens", "total_tokens")},
    {_known("input_cost_micros", "input_cost_micros")},
    {_known("output_cost_micros", "output_cost_micros")},
    {_known("total_cost_micros", "total_cost_micros")},
    sum(toInt64(c.sign)) AS request_count,
    sum(c.sign * toInt64(c.tokens_estimated)) AS estimated_token_requests
FROM cost_changes AS c
GROUP BY model_id, user_id, feature_id, environment, service_name, provider, team, hour
"""


def _unknown_is_null(column: str) -> str:
    return f"if(sum(r.{column}_known) > 0, sum(r.{column}), NULL) AS {column}"


# The rollup as users query it: the same columns as the DuckDB store's view.
_COSTS_HOURLY = f"""
CREATE VIEW IF NOT EXISTS costs_hourly AS
SELECT
    hour, service_name, model_id, provider, user_id, feature_id, team, environment,
    sum(r.request_count) AS requests,
    {_unknown_is_null("input_tokens")},
    {_unknown_is_null("output_tokens")},
    {_unknown_is_null("total_tokens")},
    {_unknown_is_null("input_cost_micros")},
    {_unknown_is_null("output_cost_micros")},
    {_unknown_is_null("total_cost_micros")},
    sum(r.request_count) - sum(r.total_cost_micros_known) AS unpriced_requests,
    sum(r.estimated_token_requests) AS estimated_token_requests
FROM costs_hourly_mv AS r
GROUP BY hour, service_name, model_id, provider, user_id, feature_id, team, environment
HAVING requests != 0
"""

_ALERTS = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id          UUID DEFAULT generateUUIDv4(),
    triggered_at      DateTime64(3),
    resolved_at       Nullable(DateTime64(3)),
    alert_type        LowCardinality(String),
    severity          LowCardinality(String),
    status            LowCardinality(String),
    model_id          LowCardinality(String),
    service_name      LowCardinality(String),
    title             String,
    description       String,
    metric_value      Float64,
    threshold_value   Float64,
    labels            Map(String, String),
    annotations       Map(String, String),
    sample_trace_ids  Array(String),
    _partition_date   Date DEFAULT toDate(triggered_at)
)
ENGINE = ReplacingMergeTree(triggered_at)
PARTITION BY toYYYYMM(_partition_date)
ORDER BY (alert_type, model_id, triggered_at, alert_id)
"""

# The OpenTelemetry Collector ClickHouse exporter's span columns over PyFlare's
# rows, so Grafana's ClickHouse trace panels read PyFlare's data as they are.
_OTEL_TRACES = """
CREATE VIEW IF NOT EXISTS otel_traces AS
SELECT
    start_time AS Timestamp,
    trace_id AS TraceId,
    span_id AS SpanId,
    ifNull(parent_span_id, '') AS ParentSpanId,
    '' AS TraceState,
    operation_name AS SpanName,
    concat('SPAN_KIND_', upper(span_kind)) AS SpanKind,
    service_name AS ServiceName,
    resource AS ResourceAttributes,
    '' AS ScopeName,
    '' AS ScopeVersion,
    attributes AS SpanAttributes,
    duration_ns AS Duration,
    concat('STATUS_CODE_', upper(status_code)) AS StatusCode,
    ifNull(status_message, '') AS StatusMessage,
    arrayMap(e -> tupleElement(e, 'time'), events) AS `Events.Timestamp`,
    arrayMap(e -> tupleElement(e, 'name'), events) AS `Events.Name`,
    arrayMap(e -> tupleElement(e, 'attributes'), events) AS `Events.Attributes`,
    CAST([], 'Array(String)') AS `Links.TraceId`,
    CAST([], 'Array(String)') AS `Links.SpanId`,
    CAST([], 'Array(String)') AS `Links.TraceState`,
    CAST([], 'Array(Map(String, String))') AS `Links.Attributes`
FROM traces FINAL
"""

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS pyflare_schema (
    version      UInt32,
    description  String,
    applied_at   DateTime64(3) DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""

#: (version, description, statements), applied in order.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "traces table (canonical span row)", (_TRACES,)),
    (2, "metrics and logs tables", (_METRICS, _LOGS)),
    (3, "drift results and references", (_DRIFT_RESULTS, _DRIFT_REFERENCES)),
    (
        4,
        "costs table and its hourly rollup",
        (_COSTS, _COST_CHANGES, _COSTS_HOURLY_MV, _COSTS_HOURLY),
    ),
    (5, "api keys (hashed)", (API_KEYS_TABLE,)),
    (6, "alerts table and the otel_traces view", (_ALERTS, _OTEL_TRACES)),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
VERSION_TABLE = _VERSION_TABLE


def _ttl(retention: Retention, kind: str, column: str) -> str:
    days: Any = getattr(retention, kind)
    return "" if days is None else f"TTL {column} + INTERVAL {int(days)} DAY"


def migration_statements(statements: tuple[str, ...], retention: Retention) -> list[str]:
    """``statements`` with their TTL placeholders filled from ``retention``."""
    out = []
    for statement in statements:
        for kind in ("traces", "metrics", "logs", "costs"):
            statement = statement.replace(
                f"{{ttl:_partition_date:{kind}}}", _ttl(retention, kind, "_partition_date")
            )
        out.append(statement)
    return out
