"""PyFlare: OpenTelemetry-native observability for AI/ML workloads.

``import pyflare`` stays light: the OpenTelemetry API and PyFlare's decorator.
The SDK pipeline, DuckDB, pyarrow and pandas load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyflare._version import __version__
from pyflare.errors import (
    BudgetExceeded,
    ConfigError,
    InvalidArgumentError,
    PyFlareError,
    QueryError,
    StoreError,
    StoreLockedError,
)
from pyflare.tracing.context import context, current_context
from pyflare.tracing.decorator import trace
from pyflare.tracing.spans import record_usage, set_model, span

if TYPE_CHECKING:
    from pyflare.analysis import costs, get_trace, spans, sql, traces
    from pyflare.tracing.masking import PIIConfig
    from pyflare.tracing.setup import flush, init, shutdown, stats
    from pyflare.tracing.threads import wrap_context

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "InvalidArgumentError",
    "PIIConfig",
    "PyFlareError",
    "QueryError",
    "StoreError",
    "StoreLockedError",
    "__version__",
    "budget",
    "context",
    "costs",
    "current_context",
    "flush",
    "get_trace",
    "init",
    "instrument",
    "instrument_torch",
    "monitor",
    "record_usage",
    "set_model",
    "shutdown",
    "span",
    "spans",
    "sql",
    "stats",
    "trace",
    "traces",
    "uninstrument",
    "unmonitor",
    "wrap_context",
]

_LAZY = {
    "init": "pyflare.tracing.setup",
    "flush": "pyflare.tracing.setup",
    "shutdown": "pyflare.tracing.setup",
    "stats": "pyflare.tracing.setup",
    "traces": "pyflare.analysis",
    "spans": "pyflare.analysis",
    "sql": "pyflare.analysis",
    "get_trace": "pyflare.analysis",
    "costs": "pyflare.analysis",
    "budget": "pyflare.cost.budgets",
    "instrument": "pyflare.instrumentation",
    "uninstrument": "pyflare.instrumentation",
    "instrument_torch": "pyflare.instrumentation.torch",
    "monitor": "pyflare.instrumentation.monitor",
    "unmonitor": "pyflare.instrumentation.monitor",
    "PIIConfig": "pyflare.tracing.masking",
    "wrap_context": "pyflare.tracing.threads",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pyflare' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
