"""GET /api/v1/drift/{model_id}, …/history and POST …/reference, on a real DuckDB store."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.testclient import TestClient

from pyflare.drift import (
    EmbeddingDriftDetector,
    FeatureDriftDetector,
    PredictionDriftDetector,
)
from pyflare.records import DRIFT_RESULT_SCHEMA
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.api import drift
from pyflare_server.api._http import ApiError
from pyflare_server.api._params import records
from pyflare_server.api.drift import (
    CRITICAL_SCORE,
    MAX_BODY_BYTES,
    MAX_ROWS,
    alert_payload,
    overall_status,
    parse_history,
    parse_reference,
    trend,
)

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000_000
W = 300 * S  # one five-minute window
MODEL = "fraud-detector"


def result(
    window: int,
    score: float,
    *,
    drift_type: str = "feature",
    model_id: str = MODEL,
    breakdown: dict[str, float] | None = None,
    method: str | None = "ks",
) -> dict[str, Any]:
    """One drift_results row for the ``window``-th window after T0."""
    return {
        "model_id": model_id,
        "drift_type": drift_type,
        "window_start": T0 + window * W,
        "window_end": T0 + (window + 1) * W,
        "computed_at": T0 + (window + 1) * W + 7,
        "score": score,
        "threshold": 0.5,
        "is_drifted": score > 0.5,
        "method": method,
        "feature_scores": list((breakdown or {"amount": score}).items()),
        "explanation": f"score {score}",
        "n_reference": 1000,
        "n_current": 200,
        "details": "{}",
    }


def write(store: DuckDBSpanStore, rows: list[dict[str, Any]]) -> None:
    store.write_drift_results(pa.Table.from_pylist(rows, schema=DRIFT_RESULT_SCHEMA))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBSpanStore]:
    with DuckDBSpanStore(tmp_path / "drift.duckdb") as opened:
        yield opened


@pytest.fixture
def client(store: DuckDBSpanStore) -> Iterator[TestClient]:
    with TestClient(Starlette(routes=drift.routes(store))) as test_client:
        yield test_client


def error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"], body["type"]) == (
        status,
        code,
        f"urn:pyflare:problem:{code}",
    )
    assert body["instance"] == response.request.url.path
    return str(body["detail"])


def bad(response: Any) -> str:
    return error(response, 400, "invalid_argument")


# -- the rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("newest_first", "expected"),
    [
        ([], "stable"),
        ([0.9, 0.1], "stable"),  # fewer than three results
        ([0.3, 0.2, 0.1], "increasing"),
        ([0.1, 0.2, 0.3], "decreasing"),
        ([0.22, 0.2, 0.21], "stable"),  # within TREND_MIN_CHANGE
        ([0.24, 0.2, 0.2], "stable"),  # fitted rise 0.04
        ([0.27, 0.2, 0.2], "increasing"),  # fitted rise 0.07
        ([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1], "stable"),  # only the newest six count
        ([0.6, 0.1, 0.6, 0.1, 0.6, 0.1], "increasing"),  # least squares, not last vs first
    ],
)
def test_trend_is_the_fitted_change_over_the_newest_scores(
    newest_first: list[float], expected: str
) -> None:
    assert trend(newest_first) == expected


def score(value: float, drifted: bool | None = None) -> dict[str, Any]:
    return {
        "score": value,
        "threshold": 0.5,
        "is_drifted": value > 0.5 if drifted is None else drifted,
    }


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({}, "healthy"),
        ({"feature": score(0.1)}, "healthy"),
        ({"feature": score(0.39)}, "healthy"),
        ({"feature": score(0.4)}, "warning"),  # 0.8 of the threshold
        ({"feature": score(0.1), "prediction": score(0.45)}, "warning"),
        ({"feature": score(0.45), "embedding": score(0.7)}, "drifted"),
        # drifted follows the detector's decision (after FDR), not the score alone
        ({"feature": score(0.6, drifted=False)}, "warning"),
        ({"feature": score(0.3, drifted=True)}, "drifted"),
    ],
)
def test_overall_status(scores: dict[str, dict[str, Any]], expected: str) -> None:
    assert overall_status(scores) == expected


def test_alert_payload_is_an_alerts_table_row() -> None:
    row = result(2, 0.6, breakdown={"amount": 0.6, "country": 0.2, "age": 0.55})
    row["feature_scores"] = dict(row["feature_scores"])
    assert alert_payload(MODEL, row) == {
        "alert_type": "drift",
        "severity": "warning",
        "status": "firing",
        "triggered_at": "2026-01-01T00:15:00.000000007Z",
        "model_id": MODEL,
        "service_name": "",
        "title": "Feature drift on fraud-detector",
        "description": "score 0.6",
        "metric_value": 0.6,
        "threshold_value": 0.5,
        "labels": {"drift_type": "feature", "method": "ks"},
        "annotations": {
            "window_start": "2026-01-01T00:10:00.000000000Z",
            "window_end": "2026-01-01T00:15:00.000000000Z",
            "drifted_features": "amount, age",
        },
        "sample_trace_ids": [],
    }
    critical = {**row, "score": CRITICAL_SCORE, "window_start": None, "method": None}
    payload = alert_payload(MODEL, critical)
    assert payload is not None
    assert payload["severity"] == "critical"
    assert payload["labels"] == {"drift_type": "feature"}
    assert "window_start" not in payload["annotations"]
    assert alert_payload(MODEL, {**row, "is_drifted": False}) is None


def test_alert_payloads_from_stored_results(store: DuckDBSpanStore) -> None:
    write(store, [result(0, 0.2), result(1, 0.9, drift_type="prediction", method=None)])
    rows = records(store.drift_results(MODEL))
    payloads = [alert_payload(MODEL, row) for row in rows]
    assert payloads[1] is None
    fired = payloads[0]
    assert fired is not None
    assert (fired["severity"], fired["title"]) == ("critical", "Prediction drift on fraud-detector")
    assert fired["annotations"]["drifted_features"] == "amount"


# -- status --------------------------------------------------------------------


def test_status_reads_the_newest_result_of_each_type(
    store: DuckDBSpanStore, client: TestClient
) -> None:
    write(
        store,
        [
            *(
                result(w, 0.1 + 0.05 * w, breakdown={"amount": 0.1, "age": 0.1 + 0.05 * w})
                for w in range(5)
            ),
            result(3, 0.2, drift_type="prediction", method="chi2"),
            result(0, 0.9, model_id="other"),
        ],
    )
    response = client.get(f"/api/v1/drift/{MODEL}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "model_id": MODEL,
        "overall_status": "healthy",
        "drift_scores": {
            "feature": {
                "score": 0.30000000000000004,
                "threshold": 0.5,
                "is_drifted": False,
                "trend": "increasing",
                "feature_breakdown": {"amount": 0.1, "age": 0.30000000000000004},
                "method": "ks",
                "explanation": "score 0.30000000000000004",
                "window_start": "2026-01-01T00:20:00.000000000Z",
                "window_start_ns": T0 + 4 * W,
                "window_end": "2026-01-01T00:25:00.000000000Z",
                "window_end_ns": T0 + 5 * W,
                "computed_at": "2026-01-01T00:25:00.000000007Z",
                "computed_at_ns": T0 + 5 * W + 7,
            },
            "prediction": {
                "score": 0.2,
                "threshold": 0.5,
                "is_drifted": False,
                "trend": "stable",
                "feature_breakdown": {"amount": 0.2},
                "method": "chi2",
                "explanation": "score 0.2",
                "window_start": "2026-01-01T00:15:00.000000000Z",
                "window_start_ns": T0 + 3 * W,
                "window_end": "2026-01-01T00:20:00.000000000Z",
                "window_end_ns": T0 + 4 * W,
                "computed_at": "2026-01-01T00:20:00.000000007Z",
                "computed_at_ns": T0 + 4 * W + 7,
            },
        },
        "last_updated": "2026-01-01T00:25:00.000000007Z",
        "last_updated_ns": T0 + 5 * W + 7,
    }
    write(store, [result(5, 0.45)])
    assert client.get(f"/api/v1/drift/{MODEL}").json()["overall_status"] == "warning"
    write(store, [result(4, 0.8, drift_type="embedding", method="mmd")])
    body = client.get(f"/api/v1/drift/{MODEL}").json()
    assert body["overall_status"] == "drifted"
    assert list(body["drift_scores"]) == ["feature", "embedding", "prediction"]
    assert body["last_updated_ns"] == T0 + 6 * W + 7
    assert client.get("/api/v1/drift/other").json()["overall_status"] == "drifted"


def test_status_of_a_model_with_only_a_reference_is_healthy(client: TestClient) -> None:
    upload = client.post(f"/api/v1/drift/{MODEL}/reference", json={"features": {"x": [1.0, 2.0]}})
    assert upload.status_code == 201, upload.text
    assert client.get(f"/api/v1/drift/{MODEL}").json() == {
        "model_id": MODEL,
        "overall_status": "healthy",
        "drift_scores": {},
        "last_updated": None,
        "last_updated_ns": None,
    }
    history = client.get(f"/api/v1/drift/{MODEL}/history").json()
    assert history == {"model_id": MODEL, "drift_type": None, "limit": 100, "results": []}


@pytest.mark.parametrize("suffix", ["", "/history"])
def test_an_unknown_model_is_404(client: TestClient, suffix: str) -> None:
    message = error(client.get(f"/api/v1/drift/nobody{suffix}"), 404, "not_found")
    assert "model 'nobody' has no drift results and no drift reference" in message


# -- history -------------------------------------------------------------------


def test_history_newest_first_with_filters(store: DuckDBSpanStore, client: TestClient) -> None:
    write(store, [result(w, 0.1 * w) for w in range(4)])
    # the same window as a feature result, computed later: listed first of the two
    embedding_row = result(1, 0.7, drift_type="embedding", method="mmd")
    write(store, [{**embedding_row, "computed_at": T0 + 2 * W + 9}])

    def windows(**params: Any) -> list[tuple[str, int]]:
        response = client.get(f"/api/v1/drift/{MODEL}/history", params=params)
        assert response.status_code == 200, response.text
        return [
            (r["drift_type"], (r["window_end_ns"] - T0) // W) for r in response.json()["results"]
        ]

    assert windows() == [
        ("feature", 4),
        ("feature", 3),
        ("embedding", 2),
        ("feature", 2),
        ("feature", 1),
    ]
    assert windows(drift_type="embedding") == [("embedding", 2)]
    assert windows(drift_type="concept") == []
    # the window's end in [start_time, end_time)
    assert windows(start_time="2026-01-01T00:10:00Z") == [
        ("feature", 4),
        ("feature", 3),
        ("embedding", 2),
        ("feature", 2),
    ]
    assert windows(
        start_time="2026-01-01T00:10:00Z", end_time="2026-01-01T00:15:00Z", drift_type="feature"
    ) == [("feature", 2)]
    assert windows(end_time=str(T0 + W + 1)) == [("feature", 1)]
    assert windows(limit=2) == [("feature", 4), ("feature", 3)]
    (embedding,) = client.get(
        f"/api/v1/drift/{MODEL}/history", params={"drift_type": "embedding"}
    ).json()["results"]
    assert embedding == {
        "drift_type": "embedding",
        "window_start": "2026-01-01T00:05:00.000000000Z",
        "window_start_ns": T0 + W,
        "window_end": "2026-01-01T00:10:00.000000000Z",
        "window_end_ns": T0 + 2 * W,
        "computed_at": "2026-01-01T00:10:00.000000009Z",
        "computed_at_ns": T0 + 2 * W + 9,
        "score": 0.7,
        "threshold": 0.5,
        "is_drifted": True,
        "method": "mmd",
        "feature_breakdown": {"amount": 0.7},
        "explanation": "score 0.7",
        "n_reference": 1000,
        "n_current": 200,
    }


@pytest.mark.parametrize(
    ("params", "named"),
    [
        (
            {"drift_type": "data"},
            "drift_type must be one of feature, embedding, concept, prediction",
        ),
        ({"drift_type": ""}, "drift_type must not be empty"),
        ({"start_time": "soon"}, "start_time='soon' is not a time"),
        ({"end_time": "2026-02-30T00:00:00Z"}, "end_time"),
        ({"start_time": "2026-01-02", "end_time": "2026-01-01"}, "end_time (2026-01-01) is before"),
        ({"limit": "0"}, "limit must be an integer from 1 to 1000, got '0'"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"type": "feature"}, "unknown parameter 'type'; expected one of: drift_type,"),
    ],
)
def test_bad_history_parameters_are_400(
    store: DuckDBSpanStore, client: TestClient, params: dict[str, str], named: str
) -> None:
    write(store, [result(0, 0.1)])
    assert named in bad(client.get(f"/api/v1/drift/{MODEL}/history", params=params))


def test_parse_history() -> None:
    now = T0 + 3600 * S
    assert parse_history(QueryParams("start_time=1h&limit=5"), now_ns=now) == (None, T0, None, 5)
    with pytest.raises(ApiError, match="drift_type") as raised:
        parse_history(QueryParams("drift_type=x"))
    assert raised.value.status == 400


def test_status_takes_no_parameters(store: DuckDBSpanStore, client: TestClient) -> None:
    write(store, [result(0, 0.1)])
    assert "unknown parameter 'limit'" in bad(client.get(f"/api/v1/drift/{MODEL}?limit=1"))
    response = client.get(f"/api/v1/drift/{MODEL}/history?limit=1&limit=2")
    assert "'limit' is given 2 times" in bad(response)


def test_model_ids_are_checked(client: TestClient) -> None:
    assert "model_id must not be empty" in bad(client.get("/api/v1/drift/%20"))
    assert "at most 512" in bad(client.get(f"/api/v1/drift/{'m' * 513}"))


# -- reference uploads ---------------------------------------------------------


def post(client: TestClient, body: Any, model_id: str = MODEL) -> Any:
    return client.post(f"/api/v1/drift/{model_id}/reference", json=body)


def test_a_feature_reference_becomes_the_active_detector_state(
    store: DuckDBSpanStore, client: TestClient
) -> None:
    rng = np.random.default_rng(1)
    amounts = rng.normal(100, 10, 500).tolist()
    countries = rng.choice(["de", "fr", "us"], 500).tolist()
    response = post(
        client,
        {
            "features": {"amount": amounts, "country": countries},
            "dataset_version": "train-2026-01",
            "config": {"test": "ks", "min_sample_size": 50, "reference_sample_size": 400},
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    created = body.pop("created_at_ns")
    assert body.pop("created_at").startswith("20")
    assert body == {
        "model_id": MODEL,
        "drift_type": "feature",
        "n_samples": 500,
        "reference_size": 400,
        "dataset_version": "train-2026-01",
        "config": {
            "test": "ks",
            "significance_level": 0.05,
            "min_sample_size": 50,
            "reference_sample_size": 400,
            "fdr": None,
            "categorical": None,
            "seed": 0,
        },
    }
    stored = store.drift_reference(MODEL, "feature")
    assert stored is not None
    state, meta = stored
    assert meta == {
        "model_id": MODEL,
        "drift_type": "feature",
        "created_at_ns": created,
        "dataset_version": "train-2026-01",
        "n_samples": 500,
    }
    detector = FeatureDriftDetector.from_state(state)
    assert (detector.reference_size, detector.config.min_sample_size) == (400, 50)
    same = detector.compute(
        {"amount": rng.normal(100, 10, 200), "country": rng.choice(["de", "fr", "us"], 200)}
    )
    shifted = detector.compute(
        {"amount": rng.normal(130, 10, 200), "country": rng.choice(["de", "fr", "us"], 200)}
    )
    assert (same.is_drifted, shifted.drifted_features) == (False, ["amount"])
    # a later upload is the active one
    again = post(client, {"rows": [{"amount": 1.0, "country": "de"}] * 3})
    assert again.status_code == 201
    assert again.json()["dataset_version"] is None
    latest = store.drift_reference(MODEL, "feature")
    assert latest is not None
    assert latest[1]["n_samples"] == 3
    assert FeatureDriftDetector.from_state(latest[0]).config.test == "auto"


def test_rows_and_columns_give_the_same_reference(
    store: DuckDBSpanStore, client: TestClient
) -> None:
    rows = [
        {"x": i * 0.5, "flag": i % 2 == 0, "tier": None if i == 3 else "gold"} for i in range(20)
    ]
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    assert post(client, {"rows": rows}, "by-rows").status_code == 201
    assert post(client, {"features": columns}, "by-columns").status_code == 201
    by_rows = store.drift_reference("by-rows", "feature")
    by_columns = store.drift_reference("by-columns", "feature")
    assert by_rows is not None
    assert by_columns is not None
    assert by_rows[0] == by_columns[0]


@pytest.mark.parametrize(
    ("predictions", "config", "kind"),
    [
        (["fraud", "ok", "ok", True], {}, "classification"),
        ([0.1, 0.7, 3], {}, "regression"),
        ([0, 1, 1, 0], {"kind": "classification"}, "classification"),
        (["Sure, here it is.", {"text": "I'm sorry, but no.", "finish_reason": "stop"}], {}, "llm"),
    ],
)
def test_a_prediction_reference_infers_the_kind(
    store: DuckDBSpanStore,
    client: TestClient,
    predictions: list[Any],
    config: dict[str, Any],
    kind: str,
) -> None:
    response = post(client, {"predictions": predictions, "config": config})
    assert response.status_code == 201, response.text
    assert (response.json()["drift_type"], response.json()["config"]["kind"]) == (
        "prediction",
        kind,
    )
    stored = store.drift_reference(MODEL, "prediction")
    assert stored is not None
    detector = PredictionDriftDetector.from_state(stored[0])
    assert (detector.config.kind, detector.reference_size) == (kind, len(predictions))


def test_an_embedding_reference(store: DuckDBSpanStore, client: TestClient) -> None:
    vectors = np.random.default_rng(2).normal(size=(60, 8)).round(4).tolist()
    vectors[0][0] = 1  # an integer is a number too
    response = post(
        client,
        {
            "drift_type": "embedding",
            "embeddings": vectors,
            "config": {"metric": "mmd", "permutations": 50},
        },
    )
    assert response.status_code == 201, response.text
    assert (response.json()["n_samples"], response.json()["config"]["metric"]) == (60, "mmd")
    stored = store.drift_reference(MODEL, "embedding")
    assert stored is not None
    detector = EmbeddingDriftDetector.from_state(stored[0])
    assert (detector.reference_size, detector.config.permutations) == (60, 50)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ([1, 2], "the body must be a JSON object, not an array"),
        ({}, "give exactly one of features, rows, predictions, embeddings; got none"),
        ({"features": {"x": [1]}, "rows": [{"x": 1}]}, "got features, rows"),
        ({"features": {"x": [1]}, "extra": 1}, "unknown field 'extra'"),
        (
            {"features": {"x": [1]}, "drift_type": "concept"},
            "drift_type must be feature, prediction or embedding, got 'concept'",
        ),
        ({"features": {"x": [1]}, "drift_type": "data"}, "drift_type must be"),
        (
            {"embeddings": [[1.0]], "drift_type": "feature"},
            "embeddings are for drift_type 'embedding', not 'feature'",
        ),
        (
            {"features": {"x": [1]}, "dataset_version": 3},
            "dataset_version must be a non-empty string",
        ),
        ({"features": {"x": [1]}, "dataset_version": " "}, "dataset_version"),
        ({"features": {"x": [1]}, "config": []}, "config must be an object, not an array"),
        ({"features": [[1]]}, "features must be an object of name -> values, not an array"),
        ({"features": {}}, "features is empty"),
        ({"features": {"x": []}}, "features['x'] is empty"),
        ({"features": {"x": 1}}, "features['x'] must be an array, not a number"),
        ({"features": {"x": [1, [2]]}}, "feature 'x' has an array; values are numbers"),
        ({"features": {"x": [1], "y": [1, 2]}}, "features have different lengths: [1, 2]"),
        ({"features": {f"f{i}": [1] for i in range(1001)}}, "at most 1000"),
        ({"rows": {"x": 1}}, "rows must be an array, not an object"),
        ({"rows": [1]}, "rows must be objects of feature -> value"),
        ({"rows": [{"x": 1}, {"y": 1}]}, "rows[1] must be an object with the same features"),
        ({"rows": [{"x": {"a": 1}}]}, "feature 'x' has an object"),
        ({"predictions": "ok"}, "predictions must be an array, not a string"),
        ({"predictions": ["ok", None]}, "predictions[1] is null"),
        ({"predictions": [[1]]}, "predictions[0] is an array"),
        (
            {"predictions": ["1.5"], "config": {"kind": "regression"}},
            "must all be numbers for config.kind 'regression'",
        ),
        ({"embeddings": [1.0]}, "embeddings must be arrays of numbers"),
        ({"embeddings": [[1.0, 2.0], [1.0]]}, "embeddings[1] must be an array of 2 numbers"),
        ({"embeddings": [[1.0, "2"]]}, "embeddings[0] has a value that is not a float32 number"),
        ({"embeddings": [[True]]}, "embeddings[0] has a value that is not a float32 number"),
        ({"embeddings": [[1e39]]}, "embeddings[0] has a value that is not a float32 number"),
        (
            {"features": {"x": [1]}, "config": {"metric": "mmd"}},
            "unknown config field 'metric' for feature drift",
        ),
        ({"features": {"x": [1]}, "config": {"test": "t"}}, "config.test must be one of auto, ks,"),
        (
            {"features": {"x": [1]}, "config": {"significance_level": 1}},
            "config.significance_level must be a number between 0 and 1",
        ),
        (
            {"features": {"x": [1]}, "config": {"min_sample_size": 0}},
            "config.min_sample_size must be an integer from 1",
        ),
        ({"features": {"x": [1]}, "config": {"seed": True}}, "config.seed"),
        (
            {"features": {"x": [1]}, "config": {"categorical": "x"}},
            "config.categorical must be an array",
        ),
        ({"features": {"x": [1]}, "config": {"fdr": "holm"}}, "config.fdr"),
        ({"predictions": [1], "config": {"kind": "ranking"}}, "config.kind must be one of"),
        (
            {"embeddings": [[1.0]], "config": {"threshold": 0}},
            "config.threshold must be a positive number",
        ),
    ],
)
def test_bad_reference_bodies_are_400_naming_the_problem(
    store: DuckDBSpanStore, client: TestClient, body: Any, named: str
) -> None:
    assert named in bad(post(client, body))
    assert store.drift_reference(MODEL, "feature") is None


def test_drift_errors_are_400(client: TestClient) -> None:
    message = bad(post(client, {"predictions": [{"text": 5}]}))
    assert "predictions: LLM output 0's text must be a string, got int" in message


def test_row_and_size_limits(client: TestClient) -> None:
    message = bad(post(client, {"predictions": [1] * (MAX_ROWS + 1)}))
    assert f"predictions has {MAX_ROWS + 1} rows; at most {MAX_ROWS}" in message
    huge = b'{"predictions": [' + b"1," * (MAX_BODY_BYTES // 2) + b"1]}"
    response = client.post(
        f"/api/v1/drift/{MODEL}/reference",
        content=huge,
        headers={"content-type": "application/json"},
    )
    assert f"larger than {MAX_BODY_BYTES} bytes" in error(response, 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield huge

    response = client.post(f"/api/v1/drift/{MODEL}/reference", content=chunks())
    error(response, 413, "payload_too_large")


def test_bodies_must_be_json(client: TestClient) -> None:
    url = f"/api/v1/drift/{MODEL}/reference"
    assert "the body is not valid JSON" in bad(client.post(url, content=b"{features"))
    assert "not valid JSON" in bad(client.post(url, content=b""))
    assert "not valid JSON" in bad(client.post(url, content=b'{"features": {"x": [NaN]}}'))
    response = client.post(url, content=b"x=1", headers={"content-type": "text/plain"})
    assert "send application/json, not 'text/plain'" in error(
        response, 415, "unsupported_media_type"
    )
    ok = client.post(
        url,
        content=orjson.dumps({"features": {"x": [1]}}),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 201, ok.text
    assert "unknown parameter 'x'" in bad(client.post(f"{url}?x=1", json={"features": {"x": [1]}}))


def test_parse_reference_directly() -> None:
    upload = parse_reference({"features": {"x": [1, 2, 3]}, "config": {"reference_sample_size": 2}})
    assert (upload.drift_type, upload.n_samples, upload.reference_size) == ("feature", 3, 2)
    assert FeatureDriftDetector.from_state(upload.state).reference_size == 2
    with pytest.raises(ApiError, match="features is empty") as raised:
        parse_reference({"features": {}})
    assert (raised.value.status, raised.value.code) == (400, "invalid_argument")


def test_only_the_documented_methods(store: DuckDBSpanStore, client: TestClient) -> None:
    write(store, [result(0, 0.1)])
    assert client.post(f"/api/v1/drift/{MODEL}").status_code == 405
    assert client.get(f"/api/v1/drift/{MODEL}/reference").status_code == 405
    assert client.delete(f"/api/v1/drift/{MODEL}/history").status_code == 405


# -- the store -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", f"/api/v1/drift/{MODEL}"),
        ("GET", f"/api/v1/drift/{MODEL}/history"),
        ("POST", f"/api/v1/drift/{MODEL}/reference"),
    ],
)
def test_a_failing_store_is_503_json(
    store: DuckDBSpanStore, client: TestClient, method: str, url: str
) -> None:
    store.close()
    response = client.request(method, url, json={"features": {"x": [1.0]}})
    assert "closed" in error(response, 503, "unavailable")


def test_gzip_uploads_are_read_and_bombs_refused(client: TestClient) -> None:
    url = f"/api/v1/drift/{MODEL}/reference"
    body = orjson.dumps({"features": {"x": [float(i % 7) for i in range(500)]}})
    response = client.post(
        url,
        content=gzip.compress(body),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["n_samples"] == 500
    bomb = gzip.compress(b" " * (MAX_BODY_BYTES + 1024))
    response = client.post(
        url, content=bomb, headers={"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert f"larger than {MAX_BODY_BYTES} bytes" in error(response, 413, "payload_too_large")
    response = client.post(
        url, content=body, headers={"content-type": "application/json", "content-encoding": "br"}
    )
    assert "unsupported Content-Encoding 'br'" in error(response, 415, "unsupported_media_type")
