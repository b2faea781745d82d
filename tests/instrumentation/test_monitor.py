"""pyflare.monitor(): scikit-learn estimators traced with one row's features and prediction."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import StandardScaler

import pyflare
from pyflare.errors import InvalidArgumentError
from pyflare.instrumentation.monitor import MAX_FEATURES, monitor, unmonitor
from pyflare.testing import CapturedSpans

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.5, 3.0], [3.0, 0.5]])
LABELS = np.array(["stay", "churn", "stay", "churn", "stay", "churn"])


def drift_attributes(row: dict[str, Any]) -> dict[str, str]:
    prefixes = ("pyflare.feature.", "pyflare.prediction.", "pyflare.batch.")
    return {k: v for k, v in row["attributes"].items() if k.startswith(prefixes)}


def test_classifier_records_one_sampled_row_and_its_prediction(
    pyflare_capture: CapturedSpans,
) -> None:
    model = LogisticRegression().fit(X, LABELS)
    assert monitor(model, name="churn", version="7", seed=3) is model

    predictions = model.predict(X)

    (row,) = pyflare_capture.rows()
    assert row["operation_name"] == "predict churn"
    assert (row["model_id"], row["model_version"], row["inference_type"]) == (
        "churn",
        "7",
        "classification",
    )
    recorded = drift_attributes(row)
    index = int(recorded["pyflare.batch.row"])
    assert recorded == {
        "pyflare.batch.size": "6",
        "pyflare.batch.row": str(index),
        "pyflare.feature.x0": repr(float(X[index][0])),
        "pyflare.feature.x1": repr(float(X[index][1])),
        "pyflare.prediction.label": str(predictions[index]),
    }
    assert row["attributes"]["pyflare.span.kind"] == "inference"


def test_predict_proba_gives_the_label_and_its_probability(
    pyflare_capture: CapturedSpans,
) -> None:
    model = monitor(LogisticRegression().fit(X, LABELS), "predict_proba")

    probabilities = model.predict_proba(X[:1])

    recorded = drift_attributes(pyflare_capture.rows()[0])
    best = int(np.argmax(probabilities[0]))
    assert recorded["pyflare.prediction.label"] == str(model.classes_[best])
    assert float(recorded["pyflare.prediction.score"]) == pytest.approx(probabilities[0][best])
    assert "pyflare.batch.row" not in recorded  # a batch of one: its only row


def test_regressor_with_a_dataframe_uses_its_columns(pyflare_capture: CapturedSpans) -> None:
    frame = pd.DataFrame({"tenure": [1.0, 2.0, 3.0], "plan": ["a", "b", "a"]})
    model = LinearRegression().fit(frame[["tenure"]], [10.0, 20.0, 30.0])
    monitor(model, name="ltv", seed=0)

    values = model.predict(frame[["tenure"]])

    (row,) = pyflare_capture.rows()
    assert row["inference_type"] == "regression"
    recorded = drift_attributes(row)
    index = int(recorded["pyflare.batch.row"])
    assert recorded["pyflare.feature.tenure"] == repr(float(frame["tenure"][index]))
    assert float(recorded["pyflare.prediction.value"]) == pytest.approx(values[index])


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_feature_names_from_the_fitted_model_or_given(pyflare_capture: CapturedSpans) -> None:
    model = LinearRegression().fit(pd.DataFrame({"age": [1.0, 2.0], "income": [3.0, 5.0]}), [1, 2])
    monitor(model)
    model.predict(pd.DataFrame({"age": [1.5], "income": [4.0]}).to_numpy())  # no columns here
    unmonitor(model)
    monitor(model, feature_names=["a", "b"])
    model.predict(np.array([[1.5, 4.0]]))

    first, second = (drift_attributes(r) for r in pyflare_capture.rows())
    assert first["pyflare.feature.age"] == "1.5" and first["pyflare.feature.income"] == "4.0"
    assert second["pyflare.feature.a"] == "1.5" and second["pyflare.feature.b"] == "4.0"


def test_clusterers_and_transformers_are_custom(pyflare_capture: CapturedSpans) -> None:
    clusters = monitor(KMeans(n_clusters=2, n_init=1, random_state=0).fit(X))
    scaler = monitor(StandardScaler().fit(X), "transform")

    clusters.predict(X[:1])
    scaler.transform(X[:1])

    by_name = {r["operation_name"]: r for r in pyflare_capture.rows()}
    kmeans, transform = by_name["predict KMeans"], by_name["transform StandardScaler"]
    assert kmeans["inference_type"] == transform["inference_type"] == "custom"
    assert drift_attributes(kmeans)["pyflare.prediction.label"] in {"0", "1"}
    assert not any(k.startswith("pyflare.prediction.") for k in drift_attributes(transform))


def test_wide_inputs_keep_their_first_features(pyflare_capture: CapturedSpans) -> None:
    wide = np.arange(MAX_FEATURES + 10, dtype=float).reshape(1, -1)
    model = monitor(StandardScaler().fit(np.vstack([wide, wide + 1])), "transform")

    model.transform(wide)

    row = pyflare_capture.rows()[0]
    features = [k for k in row["attributes"] if k.startswith("pyflare.feature.")]
    assert len(features) == MAX_FEATURES
    assert row["attributes"]["pyflare.features.truncated"] == "true"
    assert row["model_id"] == "StandardScaler"  # within the span's attribute limit


def test_an_error_in_the_model_is_recorded_and_raised_unchanged(
    pyflare_capture: CapturedSpans,
) -> None:
    model = monitor(LogisticRegression().fit(X, LABELS))

    with pytest.raises(ValueError, match="features"):
        model.predict(np.zeros((1, 5)))

    (row,) = pyflare_capture.rows()
    assert row["status_code"] == "error"
    assert "ValueError" in row["status_message"]


def test_spans_nest_under_the_caller(pyflare_capture: CapturedSpans) -> None:
    model = monitor(LogisticRegression().fit(X, LABELS), name="m")

    @pyflare.trace
    def score() -> Any:
        return model.predict(X[:1])

    score()
    spans = {s.name: s for s in pyflare_capture.spans}
    outer = next(s for n, s in spans.items() if n.endswith("score"))
    assert spans["predict m"].parent is not None
    assert spans["predict m"].parent.span_id == outer.context.span_id


def test_sample_rate_traces_a_fraction_of_calls(pyflare_capture: CapturedSpans) -> None:
    model = monitor(LogisticRegression().fit(X, LABELS), sample_rate=0.25, seed=11)
    for _ in range(200):
        model.predict(X[:1])
    assert 20 < len(pyflare_capture.spans) < 80

    unmonitor(model)
    pyflare_capture.clear()
    monitor(model, sample_rate=0.0)
    model.predict(X[:1])
    assert pyflare_capture.spans == []


def test_unmonitor_restores_the_class_method_and_only_this_instance_was_touched(
    pyflare_capture: CapturedSpans,
) -> None:
    model = LogisticRegression().fit(X, LABELS)
    other = LogisticRegression().fit(X, LABELS)
    monitor(model, ["predict", "predict_proba"])
    other.predict(X)
    assert pyflare_capture.spans == []

    assert unmonitor(model) is True
    assert "predict" not in vars(model) and "predict_proba" not in vars(model)
    assert unmonitor(model) is False  # again: nothing to restore
    model.predict(X)
    assert pyflare_capture.spans == []


def test_an_instance_attribute_that_was_there_is_put_back() -> None:
    class Model:
        def predict(self, data: Any) -> Any:
            return data

    model = Model()

    def own(data: Any) -> str:
        return "own"

    model.predict = own  # type: ignore[method-assign]
    monitor(model)
    assert model.predict([1]) == "own"
    unmonitor(model)
    assert vars(model)["predict"] is own


def test_a_pickled_or_copied_model_comes_back_unmonitored(pyflare_capture: CapturedSpans) -> None:
    model = monitor(LogisticRegression().fit(X, LABELS))

    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert list(clone.predict(X)) == list(LABELS)
        assert unmonitor(clone) is False
    assert pyflare_capture.spans == []


def test_duck_typed_models_and_list_inputs(pyflare_capture: CapturedSpans) -> None:
    class Scorer:
        def predict_proba(self, rows: list[dict[str, float]]) -> list[list[float]]:
            return [[0.2, 0.8] for _ in rows]

    model = monitor(Scorer(), "predict_proba", name="scorer")
    model.predict_proba([{"age": 30.0, "country": "FR"}])  # type: ignore[list-item]

    row = pyflare_capture.rows()[0]
    assert row["inference_type"] == "classification"
    assert drift_attributes(row) == {
        "pyflare.batch.size": "1",
        "pyflare.feature.age": "30.0",
        "pyflare.feature.country": "FR",
        "pyflare.prediction.label": "1",
        "pyflare.prediction.score": "0.8",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "predict_log_odds"}, "no method 'predict_log_odds'"),
        ({"method": []}, "method must be"),
        ({"sample_rate": 1.5}, r"sample_rate must be in \[0, 1\]"),
        ({"sample_rate": "all"}, "sample_rate must be a number"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"inference_type": "vibes"}, "unknown inference_type 'vibes'"),
        ({"feature_names": "age"}, "feature_names must be a list"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    model = LogisticRegression().fit(X, LABELS)
    with pytest.raises(InvalidArgumentError, match=message):
        monitor(model, **kwargs)
    assert "predict" not in vars(model)


def test_monitoring_twice_or_an_object_without_a_dict_is_refused() -> None:
    model = monitor(LogisticRegression().fit(X, LABELS))
    with pytest.raises(InvalidArgumentError, match="already monitored"):
        monitor(model)
    with pytest.raises(InvalidArgumentError, match="no __dict__"):
        monitor(1.5, "hex")
