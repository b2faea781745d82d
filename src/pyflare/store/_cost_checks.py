"""The arguments of the cost queries, checked the same way by every store.

Each store writes its own SQL; what a caller may ask for, and the message it
gets when it asks for something else, are decided here once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyflare.errors import QueryError
from pyflare.store.base import COST_BREAKDOWNS, COST_DIMENSIONS, COST_PERIODS

__all__ = [
    "breakdown_column",
    "checked_after",
    "checked_filters",
    "checked_group_by",
    "checked_limit",
    "checked_range",
    "checked_time",
]


def checked_time(name: str, value: Any) -> int | None:
    """``value`` as integer nanoseconds (or None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise QueryError(f"{name} must be integer nanoseconds or None, got {value!r}")
    return value


def checked_range(since_ns: Any, until_ns: Any) -> tuple[int | None, int | None]:
    since, until = checked_time("since_ns", since_ns), checked_time("until_ns", until_ns)
    if since is not None and until is not None and until < since:
        raise QueryError(f"until_ns ({until}) is before since_ns ({since})")
    return since, until


def checked_group_by(group_by: Sequence[str] | str) -> list[str]:
    """The columns and periods to group by, each allowed and named once."""
    names = [group_by] if isinstance(group_by, str) else list(group_by)
    allowed = (*COST_DIMENSIONS, *COST_PERIODS)
    for name in names:
        if name not in allowed:
            raise QueryError(f"cannot group costs by {name!r}; use any of {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise QueryError(f"group_by names a column twice: {names}")
    return names


def checked_filters(filters: Any) -> list[tuple[str, str]]:
    """(column, value) pairs to keep calls by."""
    if not isinstance(filters, Mapping):
        raise QueryError(f"filters must be a mapping of column to value, got {filters!r}")
    pairs: list[tuple[str, str]] = []
    for name, value in filters.items():
        if name not in COST_DIMENSIONS:
            raise QueryError(
                f"cannot filter costs on {name!r}; use any of {', '.join(COST_DIMENSIONS)}"
            )
        if not isinstance(value, str):
            raise QueryError(f"the filter on {name} must be a string, got {value!r}")
        pairs.append((name, value))
    return pairs


def checked_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise QueryError(f"limit must be a positive integer, got {limit!r}")
    return limit


def breakdown_column(dimension: str) -> str:
    """The cost column a breakdown ``dimension`` (model, user, … or a column) groups by."""
    column = COST_BREAKDOWNS.get(dimension, dimension if dimension in COST_DIMENSIONS else None)
    if column is None:
        raise QueryError(
            f"cannot break costs down by {dimension!r}; use one of "
            f"{', '.join(COST_BREAKDOWNS)} (or a column: {', '.join(COST_DIMENSIONS)})"
        )
    return column


def checked_after(after: Any) -> tuple[int, str, str] | None:
    """``model_spans``' cursor: (start_ns, trace_id, span_id) of the last span read."""
    if after is None:
        return None
    try:
        start, trace_id, span_id = after
    except (TypeError, ValueError):
        raise QueryError(
            f"after must be (start_ns, trace_id, span_id) of the last span read, got {after!r}"
        ) from None
    return int(start), str(trace_id), str(span_id)
