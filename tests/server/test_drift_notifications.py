"""Drift results on the live stream: a drift message per result, an alert when it drifted."""

from __future__ import annotations

from typing import Any

import pytest

from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.pipeline import drift as drift_module
from pyflare_server.pipeline._notifications import drift_notifications
from pyflare_server.pipeline.drift import DriftProcessor

T = 1_767_225_600_000_000_000


def result(drifted: bool, score: float) -> dict[str, Any]:
    return {
        "model_id": "fraud-v3",
        "drift_type": "feature",
        "window_start": T,
        "window_end": T + 300 * 10**9,
        "computed_at": T + 301 * 10**9,
        "score": score,
        "threshold": 0.5,
        "is_drifted": drifted,
        "method": "ks",
        "feature_scores": {"amount": score, "age": 0.1},
        "explanation": "amount moved",
    }


def test_a_drifted_result_is_also_an_alert() -> None:
    [drift, alert] = drift_notifications([result(True, 0.9)])
    assert (drift.topic, drift.keys) == ("drift", ("fraud-v3",))
    assert drift.payload["is_drifted"] is True
    assert drift.payload["window_end"] == "2026-01-01T00:05:00.000000000Z"
    assert (alert.topic, alert.keys) == ("alerts", ("fraud-v3",))
    assert alert.payload["severity"] == "critical"
    assert alert.payload["title"] == "Feature drift on fraud-v3"
    assert alert.payload["alert_id"].startswith("drift:fraud-v3:feature:")


def test_a_healthy_result_is_no_alert() -> None:
    [drift] = drift_notifications([result(False, 0.2)])
    assert drift.topic == "drift"
    assert drift.payload["is_drifted"] is False


class _Window:
    model_id = "fraud-v3"
    start_ns = T
    report = object()


def test_listeners_hear_stored_results_and_a_failing_one_never_fails_the_write(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(drift_module, "_result_row", lambda window, report: result(True, 0.9))
    heard: list[list[dict[str, Any]]] = []
    with DuckDBSpanStore(":memory:") as store:
        processor = DriftProcessor(store)
        processor.on_results = heard.append
        assert processor._write([("feature", _Window())]) == 1  # type: ignore[list-item]
        assert [row["model_id"] for row in heard[0]] == ["fraud-v3"]

        def broken(rows: list[dict[str, Any]]) -> None:
            raise RuntimeError("subscriber gone")

        processor.on_results = broken
        assert processor._write([("feature", _Window())]) == 1  # type: ignore[list-item]
        assert store.drift_results("fraud-v3").num_rows == 2
    assert "notifying of 1 drift results failed" in caplog.text
