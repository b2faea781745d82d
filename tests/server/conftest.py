"""Fixtures for the server's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai_server() -> Iterator[FakeOpenAI]:
    """A local OpenAI-compatible server (see ``fake_openai``), stopped after the test."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> str:
    """The base URL (``http://127.0.0.1:PORT/v1``) of a local OpenAI-compatible server."""
    return fake_openai_server.base_url
