"""pyflare_server's public surface, and what importing it costs."""

from __future__ import annotations

from typing import Any

import pytest

import pyflare_server


def test_public_names_are_pinned() -> None:
    assert pyflare_server.__all__ == ["ServerCore", "ServerSettings", "create_app", "serve"]
    for name in pyflare_server.__all__:
        assert getattr(pyflare_server, name).__name__ == name


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        pyflare_server.no_such_thing  # noqa: B018


def test_importing_the_package_loads_no_server_stack(run_python: Any) -> None:
    result = run_python(
        """
        import json, sys
        import pyflare_server, pyflare_server.cli
        heavy = ["starlette", "uvicorn", "grpc", "pydantic", "duckdb", "pyarrow"]
        print("RESULT", json.dumps([m for m in heavy if m in sys.modules]))
        """
    )
    assert run_python.result(result.stdout) == []
