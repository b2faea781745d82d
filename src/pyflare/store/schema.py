"""DuckDB schema of the local store, as numbered migrations.

The tables mirror the ClickHouse DDL of the spec with DuckDB's types. A store
records the versions applied in ``pyflare_schema``; opening a store applies
the missing ones in order, each in its own transaction.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

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

#: (version, description, statements), applied in order.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "traces table (canonical span row)", (_TRACES,)),
    (2, "metrics and logs tables", (_METRICS, _LOGS)),
    (3, "drift results and references", (_DRIFT_RESULTS, _DRIFT_REFERENCES)),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
