"""The costs resource: summaries, breakdowns, forecasts and budgets of model calls.

- ``GET /api/v1/costs``: the spec's CostSummary over calls that started in
  ``[start_time, end_time)`` (both required), with ``by_period`` (days, or hours
  when ``group_by`` names ``hour``) and ``groups`` per ``group_by`` (repeated, or
  a comma list, of model_id, user_id, feature_id, team, environment, provider,
  service_name, hour, day).
- ``GET /api/v1/costs/breakdown``: the ``limit`` costliest values of one
  ``dimension`` (model, user, feature, team, environment, provider, service),
  with their share of the priced total and what the rest add up to.
- ``GET /api/v1/costs/forecast``: daily cost of a ``model_id`` or ``team`` (or
  everything) forecast ``horizon_days`` ahead from the last ``history_days``
  complete UTC days (:func:`pyflare.cost.forecast.forecast_daily`).
- ``GET /api/v1/costs/budgets``: the server's budget rules and their spend in
  the current window (:func:`pyflare.cost.budgets.budget_status`).

A caller allowed only its own costs (``costs:read:own``: the auth middleware
sets ``request.state.cost_owner`` to its user id) gets summaries and breakdowns
of the calls whose ``user_id`` is its own, grouped and broken down within them
(a breakdown by user lists only itself); forecasts and budget status cover
every user's calls, so such a caller gets 403 there.

Money goes out twice: exact integer micro-dollars (``*_micros``) and US dollars
as floats for display (``*_usd``). A total is null when calls were made but none
could be priced (unknown models), never 0; ``unpriced_requests`` counts them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from starlette.datastructures import QueryParams
from starlette.routing import Route

from pyflare.analysis import daily_cost_series
from pyflare.errors import PyFlareError
from pyflare.store.base import COST_BREAKDOWNS, COST_DIMENSIONS, COST_PERIODS
from pyflare_server.api._http import ApiError, call_store, endpoint, iso_ns, json_response
from pyflare_server.api._models import BudgetList, CostBreakdown, CostForecast, CostSummary
from pyflare_server.api._params import instant, integer, invalid, records, single
from pyflare_server.api.openapi import Operation, Param, documented
from pyflare_server.auth.permissions import requires

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from pyflare.store.base import SpanStore

__all__ = ["parse_breakdown", "parse_forecast", "parse_summary", "routes", "usd"]

MAX_BREAKDOWN: Final = 1000
DEFAULT_BREAKDOWN: Final = 10
DEFAULT_HORIZON: Final = 30
MAX_HORIZON: Final = 365
DEFAULT_HISTORY: Final = 90
MAX_HISTORY: Final = 730
_GROUPS: Final = (*COST_DIMENSIONS, *COST_PERIODS)
_MAX_VALUE: Final = 512


_TIME_TEXT: Final = "ISO 8601 (e.g. 2026-01-01T00:00:00Z), a duration back from now, or ns"
_WINDOW: Final = (
    Param("start_time", {"type": "string", "minLength": 1}, _TIME_TEXT, required=True),
    Param("end_time", {"type": "string", "minLength": 1}, _TIME_TEXT, required=True),
)
_SUMMARY: Final = Operation(
    "Cost summary of the calls in a time window",
    CostSummary,
    (
        *_WINDOW,
        Param(
            "group_by",
            {"type": "string", "pattern": "^[a-z_]+(,[a-z_]+)*$"},
            f"Any of {', '.join(_GROUPS)} (repeat or comma list; hour or day, not both)",
            repeated=True,
        ),
    ),
    tags=("costs",),
)
_BREAKDOWN: Final = Operation(
    "The costliest values of one dimension",
    CostBreakdown,
    (
        Param("dimension", {"type": "string", "enum": list(COST_BREAKDOWNS)}, required=True),
        *_WINDOW,
        Param(
            "limit",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_BREAKDOWN,
                "default": DEFAULT_BREAKDOWN,
            },
        ),
    ),
    tags=("costs",),
)
_FORECAST: Final = Operation(
    "Daily cost forecast",
    CostForecast,
    (
        Param("model_id", {"type": "string", "minLength": 1, "maxLength": _MAX_VALUE}),
        Param("team", {"type": "string", "minLength": 1, "maxLength": _MAX_VALUE}),
        Param(
            "horizon_days",
            {"type": "integer", "minimum": 1, "maximum": MAX_HORIZON, "default": DEFAULT_HORIZON},
        ),
        Param(
            "history_days",
            {"type": "integer", "minimum": 3, "maximum": MAX_HISTORY, "default": DEFAULT_HISTORY},
        ),
    ),
    errors=(400, 404, 422, 503),
    tags=("costs",),
)
_BUDGETS: Final = Operation("Budgets and their spend", BudgetList, tags=("costs",))


def usd(micros: int | None) -> float | None:
    """Micro-dollars as dollars, for display (the exact value travels as ``*_micros``)."""
    return None if micros is None else micros / 1_000_000


# -- routes --------------------------------------------------------------------


def routes(store: SpanStore, budgets: Sequence[Any] = ()) -> list[Route]:
    """The costs resource's routes, reading from ``store``; ``budgets`` are the server's rules."""

    @requires("costs:read")
    @documented(_SUMMARY)
    @endpoint
    async def summary(request: Request) -> Response:
        since, until, group_by = parse_summary(request.query_params)
        owner = _owner(request)
        return json_response(await call_store(_summary, store, since, until, group_by, owner))

    @requires("costs:read")
    @documented(_BREAKDOWN)
    @endpoint
    async def breakdown(request: Request) -> Response:
        dimension, since, until, limit = parse_breakdown(request.query_params)
        owner = _owner(request)
        body = await call_store(_breakdown, store, dimension, since, until, limit, owner)
        return json_response(body)

    @requires("costs:read")
    @documented(_FORECAST)
    @endpoint
    async def forecast(request: Request) -> Response:
        model_id, team, horizon, history = parse_forecast(request.query_params)
        _all_costs(request, "a forecast")
        body = await call_store(_forecast, store, model_id, team, horizon, history, time.time_ns())
        return json_response(body)

    @requires("costs:read")
    @documented(_BUDGETS)
    @endpoint
    async def budget_status(request: Request) -> Response:
        single(request.query_params, ())
        _all_costs(request, "budget status")
        return json_response(await call_store(_budgets, store, budgets, time.time_ns()))

    return [
        Route("/api/v1/costs", summary, methods=["GET"], name="costs"),
        Route("/api/v1/costs/breakdown", breakdown, methods=["GET"], name="costs_breakdown"),
        Route("/api/v1/costs/forecast", forecast, methods=["GET"], name="costs_forecast"),
        Route("/api/v1/costs/budgets", budget_status, methods=["GET"], name="costs_budgets"),
    ]


def _owner(request: Request) -> str | None:
    """The user whose costs alone the caller may read (``costs:read:own``), or None: all."""
    owner = getattr(request.state, "cost_owner", None)
    return None if owner is None else str(owner)


def _all_costs(request: Request, what: str) -> None:
    if _owner(request) is not None:
        raise ApiError(
            403,
            "forbidden",
            f"{what} covers every user's calls and your role may read only your own costs "
            "(costs:read:own); use GET /api/v1/costs or /api/v1/costs/breakdown, or ask for "
            "a role with costs:read",
        )


# -- parameters ----------------------------------------------------------------


def _time_window(values: dict[str, str], now_ns: int) -> tuple[int, int]:
    for name in ("start_time", "end_time"):
        if not values.get(name, "").strip():
            raise invalid(f"{name} is required (ISO 8601, e.g. 2026-01-01T00:00:00Z)")
    since = instant("start_time", values["start_time"], now_ns)
    until = instant("end_time", values["end_time"], now_ns)
    if until <= since:
        raise invalid(
            f"end_time ({values['end_time']}) must be after start_time ({values['start_time']})"
        )
    return since, until


def parse_summary(params: QueryParams, *, now_ns: int | None = None) -> tuple[int, int, list[str]]:
    """(since_ns, until_ns, group_by) from a summary query string; 400 naming the bad one."""
    group_by: list[str] = []
    for given in params.getlist("group_by"):
        for name in given.split(","):
            name = name.strip()
            if name not in _GROUPS:
                raise invalid(f"group_by {name!r} is not one of {', '.join(_GROUPS)}")
            if name in group_by:
                raise invalid(f"group_by names {name!r} twice")
            group_by.append(name)
    if "hour" in group_by and "day" in group_by:
        raise invalid("group_by takes hour or day, not both")
    others = [(k, v) for k, v in params.multi_items() if k != "group_by"]
    values = single(QueryParams(others), ("start_time", "end_time", "group_by"))
    now = time.time_ns() if now_ns is None else now_ns
    since, until = _time_window(values, now)
    return since, until, group_by


def parse_breakdown(params: QueryParams, *, now_ns: int | None = None) -> tuple[str, int, int, int]:
    """(dimension, since_ns, until_ns, limit) from a breakdown query string."""
    values = single(params, ("dimension", "start_time", "end_time", "limit"))
    dimension = values.get("dimension", "").strip()
    if not dimension:
        raise invalid(f"dimension is required: one of {', '.join(COST_BREAKDOWNS)}")
    if dimension not in COST_BREAKDOWNS:
        raise invalid(f"dimension {dimension!r} is not one of {', '.join(COST_BREAKDOWNS)}")
    since, until = _time_window(values, time.time_ns() if now_ns is None else now_ns)
    limit = integer("limit", values.get("limit", str(DEFAULT_BREAKDOWN)), 1, MAX_BREAKDOWN)
    return dimension, since, until, limit


def parse_forecast(params: QueryParams) -> tuple[str | None, str | None, int, int]:
    """(model_id, team, horizon_days, history_days) from a forecast query string."""
    values = single(params, ("model_id", "team", "horizon_days", "history_days"))
    for name in ("model_id", "team"):
        if name in values and not values[name].strip():
            raise invalid(f"{name} must not be empty; leave it out to forecast every call")
        if len(values.get(name, "")) > _MAX_VALUE:
            raise invalid(f"{name} is longer than {_MAX_VALUE} characters")
    horizon = integer(
        "horizon_days", values.get("horizon_days", str(DEFAULT_HORIZON)), 1, MAX_HORIZON
    )
    history = integer(
        "history_days", values.get("history_days", str(DEFAULT_HISTORY)), 3, MAX_HISTORY
    )
    return values.get("model_id"), values.get("team"), horizon, history


# -- answers -------------------------------------------------------------------


def _money(record: dict[str, Any]) -> dict[str, Any]:
    """A summary row with ``cost_usd`` beside ``cost_micros``, periods as ISO 8601."""
    record["cost_usd"] = usd(record["cost_micros"])
    if "hour" in record:
        record["hour"] = iso_ns(record["hour"])
    if "day" in record:
        record["day"] = iso_ns(record["day"])[:10]
    return record


def _summary(
    store: SpanStore, since: int, until: int, group_by: list[str], owner: str | None = None
) -> dict[str, Any]:
    only = None if owner is None else {"user_id": owner}
    totals = records(store.cost_summary(since, until, (), only))[0]
    period = "hour" if "hour" in group_by else "day"
    periods = [_money(r) for r in records(store.cost_summary(since, until, [period], only))]
    groups = (
        [_money(r) for r in records(store.cost_summary(since, until, group_by, only))]
        if group_by
        else []
    )
    requests = totals["requests"]
    priced = requests - totals["unpriced_requests"]
    cost = totals["cost_micros"] if requests else 0

    def known(value: int | None) -> int | None:
        return value if requests else 0

    return {
        "start_time": iso_ns(since),
        "end_time": iso_ns(until),
        "total_cost_usd": usd(cost),
        "total_cost_micros": cost,
        "total_requests": requests,
        "total_input_tokens": known(totals["input_tokens"]),
        "total_output_tokens": known(totals["output_tokens"]),
        "total_tokens": known(totals["total_tokens"]),
        "average_cost_per_request_usd": (
            cost / priced / 1_000_000 if priced and cost is not None else None
        ),
        "unpriced_requests": totals["unpriced_requests"],
        "estimated_token_requests": totals["estimated_token_requests"],
        "period": period,
        "by_period": [
            {
                "period": p[period],
                "cost_usd": p["cost_usd"],
                "cost_micros": p["cost_micros"],
                "requests": p["requests"],
                "unpriced_requests": p["unpriced_requests"],
            }
            for p in periods
        ],
        "group_by": group_by,
        "groups": groups,
    }


def _breakdown(
    store: SpanStore, dimension: str, since: int, until: int, limit: int, owner: str | None = None
) -> dict[str, Any]:
    column = COST_BREAKDOWNS[dimension]
    if owner is None:
        totals = records(store.cost_summary(since, until))[0]
        items = records(store.cost_breakdown(dimension, since, until, limit))
    else:
        # The caller's own calls, costliest value first (cost_summary's order without a period).
        only = {"user_id": owner}
        totals = records(store.cost_summary(since, until, (), only))[0]
        items = records(store.cost_summary(since, until, [column], only))[:limit]
    total = totals["cost_micros"]
    listed_cost = sum(i["cost_micros"] or 0 for i in items)
    listed_requests = sum(i["requests"] for i in items)
    return {
        "dimension": dimension,
        "column": column,
        "start_time": iso_ns(since),
        "end_time": iso_ns(until),
        "total_cost_usd": usd(total if totals["requests"] else 0),
        "total_cost_micros": total if totals["requests"] else 0,
        "total_requests": totals["requests"],
        "items": [
            {
                "value": item.pop(column),
                **_money(item),
                "share": None
                if not total or item["cost_micros"] is None
                else item["cost_micros"] / total,
            }
            for item in items
        ],
        "other": {
            "cost_micros": (total or 0) - listed_cost,
            "cost_usd": usd((total or 0) - listed_cost),
            "requests": totals["requests"] - listed_requests,
        },
    }


def _forecast(
    store: SpanStore,
    model_id: str | None,
    team: str | None,
    horizon: int,
    history: int,
    now_ns: int,
) -> dict[str, Any]:
    days, costs = daily_cost_series(
        store, model_id=model_id, team=team, history_days=history, now_ns=now_ns
    )
    scope = {"model_id": model_id, "team": team, "history_days": history}
    if not days:
        raise ApiError(
            404,
            "not_found",
            f"no cost rows in the last {history} complete days for "
            f"{_scope_text(model_id, team)}; nothing to forecast",
        )
    from pyflare.cost.forecast import forecast_daily

    try:
        result = forecast_daily(days, costs, horizon)
    except PyFlareError as exc:
        raise ApiError(
            422, "unprocessable", f"cannot forecast {_scope_text(model_id, team)}: {exc}"
        ) from exc
    return {**scope, "horizon_days": horizon, **result.to_dict()}


def _scope_text(model_id: str | None, team: str | None) -> str:
    parts = [f"model_id={model_id!r}" if model_id else "", f"team={team!r}" if team else ""]
    return " and ".join(p for p in parts if p) or "all calls"


def _budgets(store: SpanStore, rules: Sequence[Any], now_ns: int) -> dict[str, Any]:
    if not rules:
        return {"budgets": []}
    from pyflare.cost.budgets import budget_status

    return {"budgets": budget_status(store, list(rules), now_ns)}
