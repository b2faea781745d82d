"""Fixtures for the instrumentation tests: a local OpenAI server, an instrumented client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _openai_server import OpenAIServer

from pyflare.instrumentation import uninstrument


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A local OpenAI-compatible server (see _openai_server.py)."""
    server = OpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openai_instrumented() -> Iterator[None]:
    """PyFlare's OpenAI instrumentation on for the test, off afterwards."""
    from pyflare.instrumentation import instrument

    assert instrument("openai") == ["openai"]
    try:
        yield
    finally:
        uninstrument("openai")
