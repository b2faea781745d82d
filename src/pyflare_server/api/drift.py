"""The drift resource: a model's drift status, its history, and reference uploads.

- ``GET /api/v1/drift/{model_id}``: the spec's DriftStatus, from the newest
  results the drift processor stored for each drift type.
- ``GET /api/v1/drift/{model_id}/history``: stored results, newest window first,
  filtered by ``drift_type`` and the window's end in ``[start_time, end_time)``.
- ``POST /api/v1/drift/{model_id}/reference``: a reference distribution (feature
  columns or rows, predictions, or embeddings) becomes the model's active
  reference for that drift type: the matching :mod:`pyflare.drift` detector
  samples it and the store keeps the detector's state (the body's rules are in
  :mod:`pyflare_server.api._drift_upload`).

Scores are on :mod:`pyflare.drift`'s common 0..1 scale, where the threshold of
every method is 0.5. The rules the status applies:

- ``trend``: the least-squares line through the newest :data:`TREND_WINDOW`
  scores of a drift type (oldest first); ``increasing`` when it rises by more
  than :data:`TREND_MIN_CHANGE` across them, ``decreasing`` when it falls by
  more, else ``stable`` (also with fewer than three results).
- ``overall_status``: ``drifted`` when the newest result of any drift type
  drifted; else ``warning`` when one's score is at least :data:`WARNING_FRACTION`
  of its threshold (0.4 on the common scale); else ``healthy`` (also for a model
  that has a reference but no results yet).

:func:`alert_payload` turns one stored result into the spec's alerts-table shape
(``alert_type`` ``drift``) for the alert engine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from starlette.routing import Route

from pyflare_server.api._drift_upload import (
    MAX_BODY_BYTES,
    MAX_ROWS,
    DriftUpload,
    parse_reference,
    read_json,
)
from pyflare_server.api._http import ApiError, call_store, endpoint, iso_ns, json_response
from pyflare_server.api._models import DriftHistory, DriftReferenceCreated, DriftStatus
from pyflare_server.api._params import instant, integer, invalid, records, single
from pyflare_server.api.openapi import Operation, Param, documented
from pyflare_server.auth.permissions import requires

if TYPE_CHECKING:
    from starlette.datastructures import QueryParams
    from starlette.requests import Request
    from starlette.responses import Response

    from pyflare.store.base import SpanStore

__all__ = [
    "CRITICAL_SCORE",
    "MAX_BODY_BYTES",
    "MAX_ROWS",
    "TREND_MIN_CHANGE",
    "TREND_WINDOW",
    "WARNING_FRACTION",
    "DriftUpload",
    "alert_payload",
    "overall_status",
    "parse_history",
    "parse_reference",
    "routes",
    "trend",
]

TREND_WINDOW: Final = 6
"""How many of the newest results of a drift type its trend is read from."""
TREND_MIN_CHANGE: Final = 0.05
"""How much the fitted score must change across the trend window to not be stable."""
WARNING_FRACTION: Final = 0.8
"""A score at least this fraction of its threshold, not drifted, is a warning."""
CRITICAL_SCORE: Final = 0.75
"""A drifted result scoring at least this is a critical alert (3x a distance threshold, p <= alpha^3)."""
MAX_MODEL_ID: Final = 512
MAX_HISTORY: Final = 1000
DEFAULT_HISTORY: Final = 100

# The drift types in the order the status lists them (the spec's DriftStatus).
_TYPES: Final = ("feature", "embedding", "concept", "prediction")
_HISTORY_PARAMETERS: Final = ("drift_type", "start_time", "end_time", "limit")


_MODEL_ID: Final = Param(
    "model_id", {"type": "string", "minLength": 1, "maxLength": MAX_MODEL_ID}, location="path"
)
_STATUS: Final = Operation(
    "A model's drift status",
    DriftStatus,
    (_MODEL_ID,),
    errors=(400, 404, 503),
    tags=("drift",),
)
_HISTORY: Final = Operation(
    "A model's drift results, newest window first",
    DriftHistory,
    (
        _MODEL_ID,
        Param("drift_type", {"type": "string", "enum": list(_TYPES)}),
        Param("start_time", {"type": "string", "minLength": 1}, "Windows ending at or after"),
        Param("end_time", {"type": "string", "minLength": 1}, "Windows ending before"),
        Param(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY, "default": DEFAULT_HISTORY},
        ),
    ),
    errors=(400, 404, 503),
    tags=("drift",),
)
_REFERENCE: Final = Operation(
    "Upload a model's reference distribution",
    DriftReferenceCreated,
    (_MODEL_ID,),
    description="One data key: features, rows, predictions or embeddings "
    f"(at most {MAX_ROWS} rows); optional drift_type, dataset_version and config.",
    status=201,
    errors=(400, 413, 415, 503),
    request_body={
        "type": "object",
        "properties": {
            "features": {"type": "object", "additionalProperties": {"type": "array"}},
            "rows": {"type": "array", "items": {"type": "object"}},
            "predictions": {"type": "array"},
            "embeddings": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}},
            },
            "drift_type": {"type": "string", "enum": list(_TYPES)},
            "dataset_version": {"type": "string"},
            "config": {"type": "object"},
        },
    },
    tags=("drift",),
)

# -- routes --------------------------------------------------------------------


def routes(store: SpanStore) -> list[Route]:
    """The drift resource's routes, reading from and writing to ``store``."""

    @requires("drift:read")
    @documented(_STATUS)
    @endpoint
    async def drift_status(request: Request) -> Response:
        single(request.query_params, ())
        model_id = _model_id(request)
        return json_response(await call_store(_status, store, model_id))

    @requires("drift:read")
    @documented(_HISTORY)
    @endpoint
    async def drift_history(request: Request) -> Response:
        model_id = _model_id(request)
        drift_type, since, until, limit = parse_history(request.query_params)
        results = await call_store(_history, store, model_id, drift_type, since, until, limit)
        return json_response(
            {"model_id": model_id, "drift_type": drift_type, "limit": limit, "results": results}
        )

    @requires("drift:configure")
    @documented(_REFERENCE)
    @endpoint
    async def upload_reference(request: Request) -> Response:
        single(request.query_params, ())
        model_id = _model_id(request)
        body = await read_json(request)
        upload = await call_store(parse_reference, body)
        meta = await call_store(_put_reference, store, model_id, upload)
        return json_response(
            {
                "model_id": model_id,
                "drift_type": upload.drift_type,
                "n_samples": upload.n_samples,
                "reference_size": upload.reference_size,
                "dataset_version": meta.get("dataset_version"),
                "created_at": iso_ns(int(meta["created_at_ns"])),
                "created_at_ns": int(meta["created_at_ns"]),
                "config": upload.config,
            },
            201,
        )

    return [
        Route("/api/v1/drift/{model_id}", drift_status, methods=["GET"], name="drift_status"),
        Route(
            "/api/v1/drift/{model_id}/history",
            drift_history,
            methods=["GET"],
            name="drift_history",
        ),
        Route(
            "/api/v1/drift/{model_id}/reference",
            upload_reference,
            methods=["POST"],
            name="drift_reference",
        ),
    ]


def _model_id(request: Request) -> str:
    model_id = str(request.path_params["model_id"])
    if not model_id.strip():
        raise invalid("model_id must not be empty")
    if len(model_id) > MAX_MODEL_ID:
        raise invalid(f"model_id is {len(model_id)} characters; at most {MAX_MODEL_ID}")
    return model_id


def _unknown(model_id: str) -> ApiError:
    return ApiError(
        404,
        "not_found",
        f"model {model_id!r} has no drift results and no drift reference; upload one with "
        f"POST /api/v1/drift/{model_id}/reference or send spans with pyflare.feature.* attributes",
    )


def parse_history(
    params: QueryParams, *, now_ns: int | None = None
) -> tuple[str | None, int | None, int | None, int]:
    """(drift_type, since_ns, until_ns, limit) from a history query string; 400 naming the bad one."""
    values = single(params, _HISTORY_PARAMETERS)
    for name in ("drift_type", "start_time", "end_time"):
        if name in values and not values[name].strip():
            raise invalid(f"{name} must not be empty; leave it out to not filter on it")
    drift_type = values.get("drift_type")
    if drift_type is not None and drift_type not in _TYPES:
        raise invalid(f"drift_type must be one of {', '.join(_TYPES)}, got {drift_type!r}")
    now = time.time_ns() if now_ns is None else now_ns
    since = instant("start_time", values["start_time"], now) if "start_time" in values else None
    until = instant("end_time", values["end_time"], now) if "end_time" in values else None
    if since is not None and until is not None and until < since:
        raise invalid(
            f"end_time ({values['end_time']}) is before start_time ({values['start_time']})"
        )
    limit = integer("limit", values.get("limit", str(DEFAULT_HISTORY)), 1, MAX_HISTORY)
    return drift_type, since, until, limit


# -- status and history --------------------------------------------------------


def trend(scores_newest_first: list[float]) -> str:
    """``stable``, ``increasing`` or ``decreasing`` (the rule in the module docstring)."""
    scores = scores_newest_first[:TREND_WINDOW][::-1]
    n = len(scores)
    if n < 3:
        return "stable"
    mean_x = (n - 1) / 2
    mean_y = sum(scores) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(scores)) / sum(
        (x - mean_x) ** 2 for x in range(n)
    )
    change = slope * (n - 1)
    if change > TREND_MIN_CHANGE:
        return "increasing"
    if change < -TREND_MIN_CHANGE:
        return "decreasing"
    return "stable"


def overall_status(scores: Mapping[str, Mapping[str, Any]]) -> str:
    """``drifted``, ``warning`` or ``healthy`` from each drift type's DriftScore."""
    if any(score["is_drifted"] for score in scores.values()):
        return "drifted"
    if any(_near(score["score"], score["threshold"]) for score in scores.values()):
        return "warning"
    return "healthy"


def _near(score: float, threshold: float) -> bool:
    return score >= WARNING_FRACTION * threshold


def _status(store: SpanStore, model_id: str) -> dict[str, Any]:
    drift_scores: dict[str, dict[str, Any]] = {}
    newest = None
    for drift_type in _TYPES:
        rows = records(store.drift_results(model_id, drift_type=drift_type, limit=TREND_WINDOW))
        if not rows:
            continue
        latest = rows[0]
        drift_scores[drift_type] = {
            "score": latest["score"],
            "threshold": latest["threshold"],
            "is_drifted": latest["is_drifted"],
            "trend": trend([row["score"] for row in rows]),
            "feature_breakdown": latest["feature_scores"],
            "method": latest["method"],
            "explanation": latest["explanation"],
            **_times(latest),
        }
        newest = max(newest or latest["computed_at"], latest["computed_at"])
    if not drift_scores and model_id not in store.models_with_drift():
        raise _unknown(model_id)
    return {
        "model_id": model_id,
        "overall_status": overall_status(drift_scores),
        "drift_scores": drift_scores,
        "last_updated": None if newest is None else iso_ns(newest),
        "last_updated_ns": newest,
    }


def _history(
    store: SpanStore,
    model_id: str,
    drift_type: str | None,
    since_ns: int | None,
    until_ns: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    table = store.drift_results(
        model_id, drift_type=drift_type, since_ns=since_ns, until_ns=until_ns, limit=limit
    )
    if table.num_rows == 0 and model_id not in store.models_with_drift():
        raise _unknown(model_id)
    return [
        {
            "drift_type": row["drift_type"],
            **_times(row),
            "score": row["score"],
            "threshold": row["threshold"],
            "is_drifted": row["is_drifted"],
            "method": row["method"],
            "feature_breakdown": row["feature_scores"],
            "explanation": row["explanation"],
            "n_reference": row["n_reference"],
            "n_current": row["n_current"],
        }
        for row in records(table)
    ]


def _times(row: Mapping[str, Any]) -> dict[str, Any]:
    """A result's window and computation times, ISO 8601 plus ``*_ns`` integers."""
    out: dict[str, Any] = {}
    for name in ("window_start", "window_end", "computed_at"):
        ns = row[name]
        out[name] = None if ns is None else iso_ns(ns)
        out[f"{name}_ns"] = ns
    return out


# -- alerts --------------------------------------------------------------------


def alert_payload(model_id: str, report_row: Mapping[str, Any]) -> dict[str, Any] | None:
    """One stored drift result as a row of the spec's alerts table, or None if it didn't drift.

    ``report_row`` is a ``drift_results`` row as a mapping (times as UTC
    nanoseconds, ``feature_scores`` a mapping). The alert is ``critical`` when
    the score is at least :data:`CRITICAL_SCORE`, else ``warning``; its labels
    and annotations are strings, as the alerts table's maps are.
    """
    if not report_row["is_drifted"]:
        return None
    drift_type = str(report_row["drift_type"])
    score = float(report_row["score"])
    breakdown: Mapping[str, float] = report_row.get("feature_scores") or {}
    threshold = float(report_row["threshold"])
    drifted = sorted(
        (name for name, value in breakdown.items() if value > threshold),
        key=lambda name: -breakdown[name],
    )
    annotations = {
        "window_end": iso_ns(int(report_row["window_end"])),
        "drifted_features": ", ".join(drifted),
    }
    if report_row.get("window_start") is not None:
        annotations["window_start"] = iso_ns(int(report_row["window_start"]))
    labels = {"drift_type": drift_type}
    if report_row.get("method"):
        labels["method"] = str(report_row["method"])
    explanation = report_row.get("explanation")
    return {
        "alert_type": "drift",
        "severity": "critical" if score >= CRITICAL_SCORE else "warning",
        "status": "firing",
        "triggered_at": iso_ns(int(report_row["computed_at"])),
        "model_id": model_id,
        "service_name": "",
        "title": f"{drift_type.capitalize()} drift on {model_id}",
        "description": str(explanation) if explanation else f"{drift_type} drift detected",
        "metric_value": score,
        "threshold_value": threshold,
        "labels": labels,
        "annotations": annotations,
        "sample_trace_ids": [],
    }


def _put_reference(store: SpanStore, model_id: str, upload: DriftUpload) -> dict[str, Any]:
    return store.put_drift_reference(
        model_id,
        upload.drift_type,
        upload.state,
        n_samples=upload.n_samples,
        dataset_version=upload.dataset_version,
    )
