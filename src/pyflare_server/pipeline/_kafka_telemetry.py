"""The self-metrics of ``pyflare worker``, consumer lag included.

Lag comes from librdkafka's statistics (``statistics.interval.ms``): per
assigned partition, ``consumer_lag`` is the broker's high watermark minus the
group's committed offset (librdkafka reports -1 until both are known; those
partitions are left out).
"""

from __future__ import annotations

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from pyflare_server.telemetry import SIGNALS

__all__ = ["WorkerTelemetry", "lag_from_stats"]

_WRITE_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerTelemetry:
    """Counters of one worker, in a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "pyflare_worker_consumed_messages", "Kafka messages consumed.", registry=r
        )
        self.stored = Counter(
            "pyflare_worker_stored", "Items written to the store.", ["signal"], registry=r
        )
        self.rejected = Counter(
            "pyflare_worker_rejected", "Invalid items left out of stored messages.", registry=r
        )
        self.dead_lettered = Counter(
            "pyflare_worker_dead_lettered_messages",
            "Messages sent to the dead-letter topic.",
            registry=r,
        )
        self.store_errors = Counter(
            "pyflare_worker_store_errors",
            "Store writes that failed (and were retried).",
            registry=r,
        )
        self.commits = Counter("pyflare_worker_commits", "Offset commits.", registry=r)
        self.write_seconds = Histogram(
            "pyflare_worker_write_seconds",
            "Duration of one store write.",
            ["signal"],
            buckets=_WRITE_SECONDS,
            registry=r,
        )
        self.lag = Gauge(
            "pyflare_worker_consumer_lag",
            "Messages in a partition not yet committed by the group.",
            ["topic", "partition"],
            registry=r,
        )
        for signal in SIGNALS:
            self.stored.labels(signal)
            self.write_seconds.labels(signal)

    def render(self) -> tuple[bytes, str]:
        """The metrics as Prometheus text: (body, content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0.0 when absent)."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found


def lag_from_stats(stats: str | bytes) -> dict[tuple[str, int], int]:
    """(topic, partition) → consumer lag, from one librdkafka statistics JSON document."""
    try:
        document = orjson.loads(stats)
    except orjson.JSONDecodeError:
        return {}
    lags: dict[tuple[str, int], int] = {}
    topics = document.get("topics") if isinstance(document, dict) else None
    for topic, entry in (topics or {}).items():
        for partition, numbers in (entry.get("partitions") or {}).items():
            if not isinstance(numbers, dict):
                continue
            lag = numbers.get("consumer_lag")
            number = int(partition) if partition.lstrip("-").isdigit() else -1
            if number >= 0 and isinstance(lag, int) and lag >= 0:
                lags[(topic, number)] = lag
    return lags
