"""``import pyflare`` stays light, and its public surface changes only on purpose."""

from __future__ import annotations

import pytest

import pyflare

HEAVY = (
    "duckdb",
    "pandas",
    "pyarrow",
    "numpy",
    "torch",
    "openai",
    "langchain",
    "langchain_core",
    "rich",
    "sqlglot",
    "requests",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "pyflare_server",
)

EXPECTED_ALL = [
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


def test_import_pulls_in_nothing_heavy(run_python) -> None:
    child = run_python(
        f"""
        import json, sys
        import pyflare

        @pyflare.trace
        def work() -> int:
            return 1

        work()  # tracing before init() costs nothing and loads nothing
        with pyflare.span("block"), pyflare.context(user_id="u"):
            pass
        heavy = {HEAVY!r}
        loaded = sorted(
            name for name in sys.modules if any(name == h or name.startswith(h + ".") for h in heavy)
        )
        print("RESULT", json.dumps(loaded))
        """
    )
    assert run_python.result(child.stdout) == []


def test_all_is_pinned_and_resolves() -> None:
    assert pyflare.__all__ == EXPECTED_ALL
    assert sorted(pyflare.__all__) == pyflare.__all__
    for name in pyflare.__all__:
        assert getattr(pyflare, name) is not None, name
    assert set(pyflare.__all__) <= set(dir(pyflare))
    assert isinstance(pyflare.__version__, str)
    assert issubclass(pyflare.StoreLockedError, pyflare.StoreError)
    for error in ("ConfigError", "InvalidArgumentError", "QueryError", "StoreError"):
        assert issubclass(getattr(pyflare, error), pyflare.PyFlareError)


def test_unknown_attributes_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'does_not_exist'"):
        pyflare.does_not_exist  # noqa: B018
