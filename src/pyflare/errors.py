"""PyFlare's exceptions: one root, one class per failure mode."""

from __future__ import annotations

from typing import Any

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "DriftError",
    "InvalidArgumentError",
    "PyFlareError",
    "QueryError",
    "QueryTimeoutError",
    "StoreError",
    "StoreLockedError",
]


class PyFlareError(Exception):
    """Root of every error PyFlare raises on purpose."""


class ConfigError(PyFlareError, ValueError):
    """A setting (argument, environment variable or file) has a value PyFlare can't use."""


class DriftError(PyFlareError, ValueError):
    """Data given to a drift test can't be compared (empty, non-finite, mismatched shape or type)."""


class InvalidArgumentError(PyFlareError, ValueError):
    """A function was called with an argument PyFlare can't use."""


class StoreError(PyFlareError):
    """The span store could not be opened, written or read."""


class StoreLockedError(StoreError):
    """Another process holds the lock on the DuckDB file."""


class QueryError(PyFlareError, ValueError):
    """A query was rejected (not read-only, unknown table) or failed to run."""


class QueryTimeoutError(QueryError):
    """A query ran longer than its time limit and was stopped."""


class BudgetExceeded(PyFlareError):
    """A hard cost budget would be exceeded by the call about to be made."""

    #: The ``pyflare.cost.budgets.Budget`` that refused the call.
    budget: Any = None
    spent_micros: int = 0
    limit_micros: int = 0
    #: When the budget's window ends (UTC nanoseconds).
    resets_at_ns: int = 0
