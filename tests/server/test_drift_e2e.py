"""Drift end to end: demo traffic → server → drift processor → drift results → the API."""

from __future__ import annotations

from pathlib import Path

import httpx
from _live import live_server

from pyflare_server.demo import run_traffic_sync


def test_the_demo_classifier_drifts_and_the_api_says_so(tmp_path: Path) -> None:
    config = {"collector": {"drift": {"window_s": 60, "min_sample_size": 100}}}
    with live_server(tmp_path, config) as server:
        # Four minutes of history at 20 traces/s; the classifier's inputs drift after two.
        stats = run_traffic_sync(
            server.http, duration_s=0, backfill_s=240, drift_after_s=120, rate=20, seed=3
        )
        assert stats.traces > 3000
    # Stopping the server closed the last window; read the results from the file.
    with live_server(tmp_path) as server, httpx.Client(base_url=server.api) as api:
        status = api.get("/api/v1/drift/fraud-detector")
        assert status.status_code == 200, status.text
        body = status.json()
        assert body["overall_status"] == "drifted"
        feature = body["drift_scores"]["feature"]
        assert feature["is_drifted"] is True
        assert any(
            name.startswith("amount") or "amount" in name for name in feature["feature_breakdown"]
        )
        history = api.get(
            "/api/v1/drift/fraud-detector/history", params={"drift_type": "feature"}
        ).json()["results"]
        # Oldest first: the windows after the drift score far above the first one
        # (window edges follow the wall clock, so which spans land where varies).
        ordered = sorted(history, key=lambda row: row["window_end_ns"])
        assert len(ordered) >= 2
        assert ordered[-1]["is_drifted"] is True
        assert ordered[0]["score"] < ordered[-1]["score"]
        assert api.get("/api/v1/drift/no-such-model").status_code == 404
