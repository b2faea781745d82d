"""The server's own metrics, served as Prometheus text at GET /metrics.

Each :class:`ServerTelemetry` has its own registry, so several servers (or
tests) in one process never share counters.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["SIGNALS", "ServerTelemetry"]

#: The ``signal`` label's values (OTLP's three signals).
SIGNALS = ("traces", "metrics", "logs")

# Store writes take from under a millisecond to seconds (a checkpoint).
_WRITE_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Rows per store write: one small request up to a full group.
_BATCH_ROWS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 50_000)


class ServerTelemetry:
    """Counters, gauges and histograms of the receiver and the pipeline.

    Items are spans, metric data points or log records, by ``signal``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "pyflare_received", "Items received (accepted, rejected or sampled out).",
            ["signal"], registry=r,
        )  # fmt: skip
        self.accepted = Counter("pyflare_accepted", "Items stored.", ["signal"], registry=r)
        self.rejected = Counter(
            "pyflare_rejected", "Items rejected as invalid (OTLP partial success).",
            ["signal"], registry=r,
        )  # fmt: skip
        self.sampled_out = Counter(
            "pyflare_sampled_out", "Items dropped by the sampler.", ["signal"], registry=r
        )
        self.queue_full = Counter(
            "pyflare_queue_full", "Requests turned away because the queue was full.",
            ["signal"], registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "pyflare_queue_depth_rows", "Rows accepted and not yet stored.", registry=r
        )
        self.write_seconds = Histogram(
            "pyflare_write_seconds", "Duration of one store write.",
            ["signal"], buckets=_WRITE_SECONDS, registry=r,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "pyflare_batch_rows", "Rows in one store write.",
            ["signal"], buckets=_BATCH_ROWS, registry=r,
        )  # fmt: skip
        self.store_errors = Counter("pyflare_store_errors", "Store writes that failed.", registry=r)
        self.requests = Counter(
            "pyflare_requests", "OTLP requests answered, by transport and outcome "
            "(HTTP status, or gRPC status name).",
            ["signal", "transport", "outcome"], registry=r,
        )  # fmt: skip
        # Every signal shows up (as 0) from the start, so rates work from the first scrape.
        for signal in SIGNALS:
            for metric in (
                self.received,
                self.accepted,
                self.rejected,
                self.sampled_out,
                self.queue_full,
                self.write_seconds,
                self.batch_rows,
            ):
                metric.labels(signal)

    def render(self) -> tuple[bytes, str]:
        """The metrics as Prometheus text: (body, content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0.0 when absent), e.g. ``value("pyflare_accepted_total", signal="traces")``."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found
