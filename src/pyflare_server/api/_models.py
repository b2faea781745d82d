"""The API's response bodies as pydantic models: what ``/api/v1/openapi.json`` promises.

Handlers build plain dicts (fast, exact integers); these models describe them,
and the OpenAPI document is generated from them. Objects may carry more fields
than a model names (new fields are additions, never breaking), so no model
forbids extras. Times go out twice: ISO 8601 UTC with nanosecond digits and
integer nanoseconds (``*_ns``); money as integer micro-dollars (``*_micros``)
and display dollars (``*_usd``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "BudgetList",
    "CostBreakdown",
    "CostForecast",
    "CostSummary",
    "DriftHistory",
    "DriftReferenceCreated",
    "DriftStatus",
    "MetricList",
    "MetricSeries",
    "Problem",
    "Span",
    "TraceDetail",
    "TraceList",
    "TraceSummary",
]


class Problem(BaseModel):
    """An error (RFC 9457 problem details, ``application/problem+json``)."""

    type: str = Field(description="URN of the kind of problem: urn:pyflare:problem:<code>")
    title: str = Field(description="The HTTP status phrase")
    status: int
    detail: str = Field(description="What was wrong and what to do about it")
    instance: str | None = Field(None, description="The request path")
    code: str = Field(description="Machine-readable kind, e.g. invalid_argument, not_found")


class _Times(BaseModel):
    start_time: str = Field(description="ISO 8601 UTC, nanosecond digits")
    end_time: str
    start_time_ns: int
    end_time_ns: int
    duration_ns: int
    duration_ms: float


class _Usage(BaseModel):
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cost_micros: int | None = Field(description="Integer micro-dollars; null when not priced")
    cost_usd: float | None


class TraceSummary(_Times, _Usage):
    """One trace: its root's service, operation and previews, and sums over its spans."""

    trace_id: str
    service_name: str
    operation_name: str
    status: Literal["ok", "error"] = Field(description="error when any span failed")
    status_code: Literal["ok", "error", "unset"]
    span_count: int
    error_count: int
    model_id: str | None
    input_preview: str | None
    output_preview: str | None


class TraceList(BaseModel):
    traces: list[TraceSummary]
    total: int = Field(description="How many traces match, ignoring limit and offset")
    limit: int
    offset: int


class SpanEvent(BaseModel):
    name: str
    time: str
    time_ns: int
    attributes: dict[str, str]


class Span(_Times, _Usage):
    """One span (the canonical row), with its depth in the trace's tree."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    depth: int
    service_name: str
    operation_name: str
    span_kind: str
    status_code: Literal["ok", "error", "unset"]
    status_message: str | None
    model_id: str | None
    model_version: str | None
    inference_type: str | None
    input_preview: str | None
    output_preview: str | None
    input_hash: str | None
    attributes: dict[str, str]
    resource: dict[str, str]
    events: list[SpanEvent]


class TraceDetail(TraceSummary):
    """A trace's summary, its root's attributes and resource, and its spans in tree order."""

    attributes: dict[str, str]
    resource: dict[str, str]
    spans: list[Span]


# -- metrics -------------------------------------------------------------------


class MetricInfo(BaseModel):
    name: str
    value_type: str = Field(description="gauge, counter, histogram or summary")
    unit: str | None
    services: list[str]
    points: int
    last_seen: str
    last_seen_ns: int


class MetricList(BaseModel):
    metrics: list[MetricInfo]


class MetricPoint(BaseModel):
    time: str = Field(description="Start of the bucket")
    time_ns: int
    value: float | None = Field(description="null when the bucket has no point")
    points: int


class MetricSeriesItem(BaseModel):
    labels: dict[str, str | None] = Field(description="The group_by columns' values")
    points: list[MetricPoint]


class MetricSeries(BaseModel):
    name: str
    aggregation: str
    step_ns: int
    step_seconds: float
    start_time: str
    end_time: str
    start_time_ns: int
    end_time_ns: int
    group_by: list[str]
    series: list[MetricSeriesItem]


# -- drift ---------------------------------------------------------------------


class _DriftWindow(BaseModel):
    window_start: str | None
    window_start_ns: int | None
    window_end: str
    window_end_ns: int
    computed_at: str
    computed_at_ns: int


class DriftScore(_DriftWindow):
    score: float
    threshold: float
    is_drifted: bool
    trend: Literal["stable", "increasing", "decreasing"]
    feature_breakdown: dict[str, float]
    method: str | None
    explanation: str | None


class DriftStatus(BaseModel):
    model_id: str
    overall_status: Literal["healthy", "warning", "drifted"]
    drift_scores: dict[str, DriftScore]
    last_updated: str | None
    last_updated_ns: int | None


class DriftResult(_DriftWindow):
    drift_type: str
    score: float
    threshold: float
    is_drifted: bool
    method: str | None
    feature_breakdown: dict[str, float]
    explanation: str | None
    n_reference: int | None
    n_current: int | None


class DriftHistory(BaseModel):
    model_id: str
    drift_type: str | None
    limit: int
    results: list[DriftResult]


class DriftReferenceCreated(BaseModel):
    model_id: str
    drift_type: str
    n_samples: int
    reference_size: int
    dataset_version: str | None
    created_at: str
    created_at_ns: int
    config: dict[str, Any]


# -- costs ---------------------------------------------------------------------


class CostPeriod(BaseModel):
    period: str
    cost_usd: float | None
    cost_micros: int | None
    requests: int
    unpriced_requests: int


class CostSummary(BaseModel):
    start_time: str
    end_time: str
    total_cost_usd: float | None
    total_cost_micros: int | None
    total_requests: int
    total_input_tokens: int | None
    total_output_tokens: int | None
    total_tokens: int | None
    average_cost_per_request_usd: float | None
    unpriced_requests: int
    estimated_token_requests: int
    period: Literal["hour", "day"]
    by_period: list[CostPeriod]
    group_by: list[str]
    groups: list[dict[str, Any]]


class CostBreakdownItem(BaseModel):
    value: str | None
    cost_usd: float | None
    cost_micros: int | None
    requests: int
    share: float | None


class CostOther(BaseModel):
    cost_micros: int
    cost_usd: float
    requests: int


class CostBreakdown(BaseModel):
    dimension: str
    column: str
    start_time: str
    end_time: str
    total_cost_usd: float | None
    total_cost_micros: int | None
    total_requests: int
    items: list[CostBreakdownItem]
    other: CostOther


class ForecastPoint(BaseModel):
    day: str
    cost_micros: int
    lower_micros: int
    upper_micros: int
    cost_usd: float
    lower_usd: float
    upper_usd: float


class CostForecast(BaseModel):
    model_id: str | None
    team: str | None
    history_days: int
    horizon_days: int
    method: str
    total_cost_micros: int
    total_cost_usd: float
    mape_percent: float | None
    points: list[ForecastPoint]


class BudgetList(BaseModel):
    budgets: list[dict[str, Any]]
