"""Fixtures of the scaled mode's tests: a real Kafka-protocol broker (tansu)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _kafka_broker import Broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A tansu broker on a free port with in-memory storage, stopped by PID after the test."""
    started = Broker(tmp_path).start()
    try:
        yield started
    finally:
        started.stop()
