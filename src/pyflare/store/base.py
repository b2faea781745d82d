"""The storage seams: what every span store provides.

Two real implementations sit behind :class:`SpanStore`: DuckDB (the local,
embedded default, :mod:`pyflare.store.duckdb`) and ClickHouse (the scaled
server). ``tests/contract`` runs one suite against every implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

    from pyflare.store.vectors import VectorBatch, VectorFilter, VectorHit

__all__ = [
    "COST_BREAKDOWNS",
    "COST_DIMENSIONS",
    "COST_PERIODS",
    "DRIFT_TYPES",
    "MAX_METRIC_BUCKETS",
    "MAX_SQL_ROWS",
    "METRIC_AGGREGATIONS",
    "METRIC_GROUP_COLUMNS",
    "PYFLARE_TABLES",
    "SpanStore",
    "TraceQuery",
    "VectorStore",
]

#: Tables and views a user may query with :meth:`SpanStore.sql`. The drift
#: references are not among them: their rows are detector state (binary), read
#: with :meth:`SpanStore.drift_reference`.
PYFLARE_TABLES: frozenset[str] = frozenset(
    {"traces", "metrics", "logs", "drift_results", "costs", "costs_hourly"}
)
MAX_SQL_ROWS = 10_000
#: The drift types a store keeps results and references for (``pyflare.drift.DriftType``).
DRIFT_TYPES: frozenset[str] = frozenset({"feature", "embedding", "concept", "prediction"})

#: The cost row columns a cost summary groups and filters by.
COST_DIMENSIONS: tuple[str, ...] = (
    "model_id",
    "user_id",
    "feature_id",
    "team",
    "environment",
    "provider",
    "service_name",
)
#: The periods a cost summary groups by: UTC hours and days of the call's start.
COST_PERIODS: tuple[str, ...] = ("hour", "day")
#: The dimensions of a cost breakdown (the spec's names) and their columns.
COST_BREAKDOWNS: Mapping[str, str] = {
    "model": "model_id",
    "user": "user_id",
    "feature": "feature_id",
    "team": "team",
    "environment": "environment",
    "provider": "provider",
    "service": "service_name",
}

# -- metric queries (metric_names, metric_series) --
#: How :meth:`SpanStore.metric_series` aggregates the points of a bucket.
METRIC_AGGREGATIONS: tuple[str, ...] = (
    "avg",
    "sum",
    "min",
    "max",
    "count",
    "p50",
    "p90",
    "p95",
    "p99",
    "last",
)
#: The metric columns a series is grouped and filtered by.
METRIC_GROUP_COLUMNS: tuple[str, ...] = ("service_name", "model_id", "model_version", "environment")
#: The most buckets one series of :meth:`SpanStore.metric_series` may have.
MAX_METRIC_BUCKETS = 10_000

StatusFilter = Literal["ok", "error", "unset"]


@dataclass(frozen=True)
class TraceQuery:
    """Filters for listing traces. Times are UTC nanoseconds since the epoch.

    A trace matches when any of its spans matches the span-level filters
    (model, attribute, text in a preview, any case) and its summary matches the
    trace-level ones: the root's service, the trace's status (error when any
    span errored), its duration, and its start (earliest span) in
    ``[since_ns, until_ns)``. A matching trace is summarised from all its spans.
    """

    service: str | None = None
    model_id: str | None = None
    status: StatusFilter | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    min_duration_ns: int | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    text: str | None = None
    limit: int = 100
    offset: int = 0


@runtime_checkable
class SpanStore(Protocol):
    """Where canonical span rows live, and the metric points and log records beside them."""

    def write(self, batch: pa.Table) -> int:
        """Store a batch of canonical rows; durable when it returns.

        Idempotent: writing a span (same trace_id and span_id) again, in a later
        batch or twice in one, never shows as a duplicate in query results.
        Returns the number of new rows. Raises ``StoreError`` for a batch without
        the canonical schema (the store stays usable) or a closed store.
        """
        ...

    def write_metrics(self, batch: pa.Table) -> int:
        """Append metric data points (rows of ``METRIC_SCHEMA``); durable when it returns.

        Returns the number of rows stored. Raises ``StoreError`` for a batch
        without the metrics schema (the store stays usable) or a closed store.
        """
        ...

    def write_logs(self, batch: pa.Table) -> int:
        """Append log records (rows of ``LOG_SCHEMA``); durable when it returns.

        Returns the number of rows stored. Raises ``StoreError`` for a batch
        without the logs schema (the store stays usable) or a closed store.
        """
        ...

    def traces(self, query: TraceQuery) -> pa.Table:
        """One summary row per matching trace, newest first.

        Columns: trace_id, start_time, end_time, duration_ns, service_name,
        operation_name, status_code, span_count, error_count, model_id,
        input_preview, output_preview, input_tokens, output_tokens, total_tokens,
        cost_micros. Service, operation
        and (unless a span errored) status are the root's, or the earliest span's
        when the root is missing; model_id is the first LLM span's model, else the
        first span's that has one; the previews are the root's, else the earliest
        span's that has one; token and cost sums skip NULLs and are NULL when
        no span knows them.
        """
        ...

    def count_traces(self, query: TraceQuery) -> int:
        """How many traces match ``query`` (ignoring limit and offset)."""
        ...

    def spans(self, trace_id: str) -> pa.Table:
        """The canonical rows of one trace in tree order, plus a ``depth`` column.

        Parents come before their children, siblings by start time; spans whose
        parent is missing are roots. An unknown trace gives an empty table.
        """
        ...

    def sql(
        self,
        query: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        max_rows: int = MAX_SQL_ROWS,
        dialect: str = "duckdb",
        timeout_s: float | None = None,
    ) -> pa.Table:
        """Run one read-only SELECT over PyFlare's tables (``QueryError`` otherwise).

        ``dialect`` is the SQL's dialect (``duckdb`` or ``clickhouse``), translated to
        the store's. With ``timeout_s``, a query running longer is stopped and raises
        ``QueryError``; it runs beside writes, never holding them up.
        """
        ...

    def write_drift_results(self, batch: pa.Table) -> int:
        """Append drift results (rows of ``DRIFT_RESULT_SCHEMA``); durable when it returns.

        Returns the number of rows stored. Raises ``StoreError`` for a batch without
        that schema or with a drift_type outside ``DRIFT_TYPES`` (the store stays
        usable), or a closed store.
        """
        ...

    def drift_results(
        self,
        model_id: str,
        *,
        drift_type: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 1000,
    ) -> pa.Table:
        """One model's drift results (``DRIFT_RESULT_SCHEMA``), newest window first.

        A result matches when its window ends in ``[since_ns, until_ns)`` (UTC
        nanoseconds); ties on window_end are broken by the latest computed_at.
        An unknown model gives an empty table; a bad drift_type or a negative
        limit raises ``QueryError``.
        """
        ...

    def models_with_drift(self) -> list[str]:
        """The model ids with a drift result or a drift reference, sorted."""
        ...

    def put_drift_reference(
        self,
        model_id: str,
        drift_type: str,
        state: bytes,
        *,
        n_samples: int,
        dataset_version: str | None = None,
    ) -> dict[str, Any]:
        """Store a drift reference (a detector's ``state()`` bytes); it becomes the active one.

        Earlier references stay (history); the latest per (model_id, drift_type)
        is active. Returns its metadata, as :meth:`drift_reference` does. Raises
        ``StoreError`` for an empty model id or state, a drift_type outside
        ``DRIFT_TYPES``, a negative n_samples, or a closed store.
        """
        ...

    def drift_reference(
        self, model_id: str, drift_type: str
    ) -> tuple[bytes, dict[str, Any]] | None:
        """The active reference of a model and drift type: (state, metadata), or None.

        The metadata has model_id, drift_type, created_at_ns (UTC nanoseconds),
        dataset_version and n_samples.
        """
        ...

    def write_costs(self, batch: pa.Table) -> int:
        """Store cost rows (``COST_SCHEMA``, one per model call); durable when it returns.

        Idempotent on (trace_id, span_id): a row for a span that has one replaces
        it (how ``pyflare costs recompute`` reprices), and within one batch the
        last row of a span wins. Returns the number of rows written. Raises
        ``StoreError`` for a batch without the cost schema (the store stays
        usable) or a closed store.
        """
        ...

    def cost_summary(
        self,
        since_ns: int | None,
        until_ns: int | None,
        group_by: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
    ) -> pa.Table:
        """Cost totals of the calls that started in ``[since_ns, until_ns)``, per group.

        ``group_by`` names any of :data:`COST_DIMENSIONS` and :data:`COST_PERIODS`
        (``hour``/``day``: UTC timestamps); ``filters`` keeps rows whose
        dimension equals the value. Columns: the group columns, then requests,
        input_tokens, output_tokens, total_tokens, cost_micros,
        unpriced_requests, estimated_token_requests. Sums skip NULLs and are
        NULL when no row of the group knows the value: an unpriced call is
        counted in unpriced_requests, never as 0. Rows come by period, then
        cost (highest first). Without group_by, one row (requests 0 when
        nothing matched). Bad names or values raise ``QueryError``.
        """
        ...

    def cost_breakdown(
        self, dimension: str, since_ns: int | None, until_ns: int | None, limit: int = 10
    ) -> pa.Table:
        """The ``limit`` costliest values of one dimension, as :meth:`cost_summary` rows.

        ``dimension`` is a key of :data:`COST_BREAKDOWNS` (model, user, feature,
        team, environment, provider, service) or one of its columns; the
        table's first column is that column (NULL: calls without a value).
        """
        ...

    def daily_costs(
        self,
        since_ns: int | None,
        until_ns: int | None,
        model_id: str | None = None,
        team: str | None = None,
    ) -> pa.Table:
        """Cost per UTC day with calls (columns day: date, cost_micros, requests), oldest first.

        Days without calls are absent; unpriced calls count in requests and add
        nothing to cost_micros (0 when none of a day's calls was priced).
        """
        ...

    def model_spans(
        self,
        since_ns: int | None,
        until_ns: int | None,
        *,
        after: tuple[int, str, str] | None = None,
        limit: int = 10_000,
    ) -> pa.Table:
        """Canonical rows of spans with a model_id that started in ``[since_ns, until_ns)``.

        Ordered by (start_time, trace_id, span_id), at most ``limit``, after the
        span ``after`` names as (start_ns, trace_id, span_id): pass the last
        row's to read the next page.
        """
        ...

    def update_span_costs(self, batch: pa.Table) -> int:
        """Rewrite input/output/total tokens, cost_micros and attributes of stored spans.

        ``batch`` has the canonical schema (rows as :meth:`model_spans` read them,
        repriced); spans not in the store are ignored. Returns the number of
        spans whose values changed.
        """
        ...

    # -- api keys (pyflare_server.auth) ------------------------------------------

    def put_api_key(self, record: Mapping[str, Any]) -> None:
        """Store an API key's record: only its hash, never the key.

        ``record`` has key_id (1-64 of ``[A-Za-z0-9_-]``), key_hash (sha256,
        lowercase hex), name, role, user_id (str or None), created_at_ns and
        expires_at_ns (int or None, after created_at_ns). A bad field or a
        key_id already stored raises ``InvalidArgumentError``.
        """
        ...

    def api_keys(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        """Every key's record plus revoked_at_ns (None while valid), oldest first."""
        ...

    def api_key(self, key_id: str) -> dict[str, Any] | None:
        """The record of ``key_id`` (revoked ones too, revoked_at_ns set), or None."""
        ...

    def revoke_api_key(self, key_id: str, *, at_ns: int) -> bool:
        """Mark ``key_id`` revoked at ``at_ns``; False when unknown or already revoked."""
        ...

    # -- metric queries --

    def metric_names(
        self,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        service: str | None = None,
        model_id: str | None = None,
        limit: int = 1000,
    ) -> pa.Table:
        """The metrics with points in ``[since_ns, until_ns)``, sorted by name, at most ``limit``.

        Columns: metric_name, value_type and unit (of the latest point), services
        (sorted list of the service names), points (int64), last_seen (timestamp,
        ns). ``service`` and ``model_id`` keep the points with that value. A
        negative limit raises ``QueryError``.
        """
        ...

    def metric_series(
        self,
        name: str,
        *,
        since_ns: int,
        until_ns: int,
        step_ns: int,
        aggregation: str = "avg",
        group_by: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
        max_series: int = 100,
    ) -> pa.Table:
        """Metric ``name`` in ``[since_ns, until_ns)`` as time series, one per ``group_by`` value.

        Buckets start at ``since_ns`` and are ``step_ns`` wide; every bucket is
        in the answer (value NULL, points 0 when a series has no point there).
        ``aggregation`` is one of :data:`METRIC_AGGREGATIONS` over the points'
        ``value``; ``group_by`` and ``filters`` (column → value) name
        :data:`METRIC_GROUP_COLUMNS`. Columns: bucket (timestamp ns), the
        group_by columns, value (float64), points (int64); ordered by the group
        values (NULLs first), then bucket; at most ``max_series`` series, and
        none when the metric has no point in range. Bad arguments, or more than
        :data:`MAX_METRIC_BUCKETS` buckets, raise ``QueryError``. The checks are
        :func:`pyflare.store._duckdb_metrics.check_series`.
        """
        ...

    def close(self) -> None:
        """Release the store; later calls raise ``StoreError``."""
        ...


# -- VectorStore --------------------------------------------------------------


@runtime_checkable
class VectorStore(Protocol):
    """Where embeddings live: the spec's ``inference_embeddings`` and ``reference_embeddings``.

    DuckDB (:mod:`pyflare.store.duckdb_vectors`, fixed-size FLOAT arrays) for the
    local mode and Qdrant (:mod:`pyflare_server.storage.qdrant`) for the scaled
    one; ``tests/contract/test_vector_store.py`` runs against both. Collections,
    payload fields, filters and the input checks are :mod:`pyflare.store.vectors`'s.
    Similarity is cosine; vectors are stored unit-length. Bad arguments raise
    ``InvalidArgumentError`` (nothing is written); a backend failure or a closed
    store raises ``StoreError``.
    """

    @property
    def dim(self) -> int:
        """The size of every vector in this store."""
        ...

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: Any,
        payloads: Sequence[Mapping[str, Any]],
    ) -> int:
        """Insert or replace points (an id written again replaces its point); durable on return.

        ``vectors`` is an (n, dim) array of numbers. Returns the number of points
        written (a repeated id in one call counts once: its last row wins).
        """
        ...

    def search(
        self,
        collection: str,
        vector: Any,
        *,
        limit: int = 10,
        where: VectorFilter | None = None,
    ) -> list[VectorHit]:
        """The ``limit`` points most similar to ``vector`` among those matching ``where``, best first."""
        ...

    def search_batch(
        self,
        collection: str,
        vectors: Any,
        *,
        limit: int = 10,
        where: VectorFilter | None = None,
    ) -> list[list[VectorHit]]:
        """:meth:`search` for each row of ``vectors`` (n, dim), in one round trip."""
        ...

    def sample(self, collection: str, n: int, *, where: VectorFilter | None = None) -> VectorBatch:
        """Up to ``n`` distinct points drawn at random among those matching ``where``.

        All of them when fewer match. The drift detectors' reference sample:
        ``sample(REFERENCE_EMBEDDINGS, n, where=VectorFilter({"model_id": m}))``.
        """
        ...

    def get(self, collection: str, ids: Sequence[str]) -> VectorBatch:
        """The points with these ids, in the order given; unknown ids are left out."""
        ...

    def count(self, collection: str, *, where: VectorFilter | None = None) -> int:
        """How many points match ``where`` (all of the collection when None)."""
        ...

    def delete(
        self,
        collection: str,
        *,
        ids: Sequence[str] | None = None,
        where: VectorFilter | None = None,
    ) -> int:
        """Delete the points with these ids, or matching ``where``; returns how many went.

        One of ``ids`` and ``where`` is required (``VectorFilter()`` deletes all).
        """
        ...

    def close(self) -> None:
        """Release the store; later calls raise ``StoreError``."""
        ...
