"""The server's self-metrics in Prometheus text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from pyflare_server.telemetry import SIGNALS, ServerTelemetry

METRICS = {
    "pyflare_received": "counter",
    "pyflare_accepted": "counter",
    "pyflare_rejected": "counter",
    "pyflare_sampled_out": "counter",
    "pyflare_queue_full": "counter",
    "pyflare_queue_depth_rows": "gauge",
    "pyflare_write_seconds": "histogram",
    "pyflare_batch_rows": "histogram",
    "pyflare_store_errors": "counter",
}


def families(telemetry: ServerTelemetry) -> dict[str, Metric]:
    body, content_type = telemetry.render()
    assert content_type.startswith("text/plain; version=")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def test_every_metric_is_there_from_the_start() -> None:
    found = families(ServerTelemetry())
    for name, kind in METRICS.items():
        assert found[name].type == kind, name


def test_signal_labels_start_at_zero() -> None:
    t = ServerTelemetry()
    for signal in SIGNALS:
        assert t.registry.get_sample_value("pyflare_received_total", {"signal": signal}) == 0.0
        assert t.value("pyflare_batch_rows_count", signal=signal) == 0.0


def test_counts_show_in_the_text() -> None:
    t = ServerTelemetry()
    t.accepted.labels("traces").inc(100)
    t.queue_depth.set(42)
    t.batch_rows.labels("logs").observe(7)
    body = t.render()[0].decode()
    assert 'pyflare_accepted_total{signal="traces"} 100.0' in body
    assert "pyflare_queue_depth_rows 42.0" in body
    assert 'pyflare_batch_rows_bucket{le="10.0",signal="logs"} 1.0' in body
    assert t.value("pyflare_accepted_total", signal="traces") == 100
    assert t.value("pyflare_accepted_total", signal="nope") == 0.0


def test_each_instance_has_its_own_registry() -> None:
    a, b = ServerTelemetry(), ServerTelemetry()
    a.received.labels("traces").inc()
    assert b.value("pyflare_received_total", signal="traces") == 0.0
    registry = CollectorRegistry()
    c = ServerTelemetry(registry)
    assert c.registry is registry
    c.store_errors.inc()
    assert registry.get_sample_value("pyflare_store_errors_total") == 1.0
