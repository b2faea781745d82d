"""Budgets checked over stored costs: status rows for the API, cost alerts for the alert engine.

The server's budgets are the same :class:`~pyflare.cost.budgets.Budget` rules as the
SDK's, read from configuration with :func:`~pyflare.cost.budgets.budgets_from_config`.
Spend comes from the store (``SpanStore.cost_summary`` over the rule's current UTC
window); an alert is a row of the spec's alerts table (``alert_type='cost'``), in the
same shape as drift alerts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from pyflare.cost._budget_rules import (
    MICROS_PER_USD,
    Budget,
    format_usd,
    iso_utc,
    window_bounds,
)
from pyflare.errors import InvalidArgumentError, StoreError

if TYPE_CHECKING:
    from pyflare.store.base import SpanStore

__all__ = ["DIMENSION_COLUMNS", "budget_status", "evaluate_budgets"]

#: The costs table's column for each budget dimension.
DIMENSION_COLUMNS: Final[dict[str, str]] = {
    "model": "model_id",
    "user": "user_id",
    "feature": "feature_id",
    "team": "team",
    "environment": "environment",
}


class _Table(Protocol):
    @property
    def column_names(self) -> list[str]: ...

    def column(self, name: str) -> Any: ...


def _usd(micros: int) -> float:
    return micros / MICROS_PER_USD  # floats for display only


def _check_rules(rules: object) -> Sequence[Budget]:
    if isinstance(rules, Budget | str | bytes) or not isinstance(rules, Sequence):
        raise InvalidArgumentError(f"rules must be a list of Budget, got {type(rules).__name__}")
    for index, rule in enumerate(rules):
        if not isinstance(rule, Budget):
            raise InvalidArgumentError(
                f"rules[{index}] must be a Budget (see budgets_from_config), "
                f"got {type(rule).__name__}"
            )
    return rules


def _alert(rule: Budget, spent: int, now_ns: int) -> dict[str, Any] | None:
    warn = rule.warn_micros
    if spent >= rule.limit_micros:
        severity, threshold = "critical", rule.limit_micros
        title = f"Budget {rule.name!r} exceeded"
    elif warn is not None and spent >= warn:
        severity, threshold = "warning", warn
        title = f"Budget {rule.name!r} at {spent * 100 // rule.limit_micros}% of its limit"
    else:
        return None
    start, end = window_bounds(rule.window, now_ns)
    what = (
        "All calls" if rule.dimension == "total" else f"{rule.dimension.capitalize()} {rule.value}"
    )
    return {
        "alert_type": "cost",
        "severity": severity,
        "status": "firing",
        "triggered_at": iso_utc(now_ns),
        "model_id": rule.value if rule.dimension == "model" else "",
        "service_name": "",
        "title": title,
        "description": (
            f"{what} spent {format_usd(spent)} of {format_usd(rule.limit_micros)} this "
            f"{rule.window} (window {iso_utc(start)} to {iso_utc(end)})"
        ),
        "metric_value": _usd(spent),
        "threshold_value": _usd(threshold),
        # window_start makes one alert per budget, window and severity.
        "labels": {
            "budget": rule.name,
            "dimension": rule.dimension,
            "value": rule.value or "",
            "window": rule.window,
            "window_start": iso_utc(start),
        },
        "annotations": {
            "window_end": iso_utc(end),
            "spent_micros": str(spent),
            "limit_micros": str(rule.limit_micros),
            "threshold_micros": str(threshold),
        },
        "sample_trace_ids": [],
    }


def evaluate_budgets(
    rules: Sequence[Budget], spend_by_rule: Mapping[str, int], *, now_ns: int | None = None
) -> list[dict[str, Any]]:
    """Cost alerts for the budgets at or past their warning threshold or limit.

    ``spend_by_rule`` maps a rule's name to its spend (micro-dollars) in the
    window holding ``now_ns`` (default: now); a rule missing from it has spent
    nothing. An alert is ``critical`` at the limit and ``warning`` from
    ``warn_at`` of it, shaped as a row of the alerts table (as drift alerts are).
    """
    checked = _check_rules(rules)
    if not isinstance(spend_by_rule, Mapping):
        raise InvalidArgumentError(
            f"spend_by_rule must map budget names to micro-dollars, got "
            f"{type(spend_by_rule).__name__}"
        )
    names = {rule.name for rule in checked}
    for name, spent in spend_by_rule.items():
        if name not in names:
            raise InvalidArgumentError(f"spend_by_rule names {name!r}, which is not a budget")
        if isinstance(spent, bool) or not isinstance(spent, int) or spent < 0:
            raise InvalidArgumentError(
                f"spend_by_rule[{name!r}] must be a non-negative integer of micro-dollars, "
                f"got {spent!r}"
            )
    now = time.time_ns() if now_ns is None else now_ns
    alerts = (_alert(rule, spend_by_rule.get(rule.name, 0), now) for rule in checked)
    return [alert for alert in alerts if alert is not None]


def _column_sum(table: _Table, name: str) -> int:
    """A cost_summary column's total, NULLs (nothing known) skipped."""
    if name not in table.column_names:
        raise StoreError(
            f"the store's cost_summary() has no {name!r} column (columns: "
            f"{', '.join(table.column_names)})"
        )
    return sum(int(v) for v in table.column(name).to_pylist() if v is not None)


def budget_status(
    store: SpanStore, rules: Sequence[Budget], now_ns: int | None = None
) -> list[dict[str, Any]]:
    """Each budget's spend in its current UTC window, read from ``store``'s costs.

    One row per rule: the rule, its window, ``spent_micros`` (priced calls only),
    ``remaining_micros``, ``requests``, ``unpriced_requests``, ``status``
    (``ok``/``warning``/``exceeded``) and ``alert`` (the :func:`evaluate_budgets`
    row, or None). Dollar fields are floats for display; the micros are exact.
    """
    checked = _check_rules(rules)
    now = time.time_ns() if now_ns is None else now_ns
    rows = []
    for rule in checked:
        start, end = window_bounds(rule.window, now)
        if rule.dimension == "total":
            group_by: list[str] = []
            filters: dict[str, str] = {}
        else:
            column = DIMENSION_COLUMNS[rule.dimension]
            group_by, filters = [column], {column: str(rule.value)}
        summary = store.cost_summary(
            since_ns=start, until_ns=end, group_by=group_by, filters=filters
        )
        spent = _column_sum(summary, "cost_micros")
        alert = _alert(rule, spent, now)
        remaining = max(0, rule.limit_micros - spent)
        rows.append(
            {
                "name": rule.name,
                "dimension": rule.dimension,
                "value": rule.value,
                "window": rule.window,
                "window_start": iso_utc(start),
                "resets_at": iso_utc(end),
                "limit_micros": rule.limit_micros,
                "limit_usd": _usd(rule.limit_micros),
                "warn_at": rule.warn_at,
                "spent_micros": spent,
                "spent_usd": _usd(spent),
                "remaining_micros": remaining,
                "remaining_usd": _usd(remaining),
                "requests": _column_sum(summary, "requests"),
                "unpriced_requests": _column_sum(summary, "unpriced_requests"),
                "status": "ok"
                if alert is None
                else ("exceeded" if alert["severity"] == "critical" else "warning"),
                "alert": alert,
            }
        )
    return rows
