"""pyflare.instrument_torch(): forward hooks on real (CPU) torch models."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

import pyflare
from pyflare.errors import InvalidArgumentError
from pyflare.instrumentation.torch import instrument_torch
from pyflare.testing import CapturedSpans


def classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def attributes(row: dict[str, Any], prefix: str = "pyflare.") -> dict[str, str]:
    return {k: v for k, v in row["attributes"].items() if k.startswith(prefix)}


def test_a_forward_pass_is_an_inference_span(pyflare_capture: CapturedSpans) -> None:
    model = classifier()
    handle = instrument_torch(model, name="intent", version="2")

    with torch.no_grad():
        model(torch.randn(5, 4))

    (row,) = pyflare_capture.rows()
    assert row["operation_name"] == "forward intent"
    assert (row["model_id"], row["model_version"], row["inference_type"]) == (
        "intent",
        "2",
        "custom",
    )
    assert row["status_code"] != "error" and row["duration_ns"] > 0
    found = attributes(row)
    assert found["pyflare.batch.size"] == "5"
    assert found["pyflare.input.shapes"] == '["5x4"]'
    assert found["pyflare.input.dtypes"] == '["float32"]'
    assert found["pyflare.device"] == "cpu"
    assert found["pyflare.training"] == "false"
    assert not any(k.startswith(("pyflare.feature.", "pyflare.prediction.")) for k in found)
    handle.remove()


def test_classification_summaries_follow_the_sampled_row(pyflare_capture: CapturedSpans) -> None:
    model = classifier()
    instrument_torch(
        model,
        inference_type="classification",
        capture_inputs=True,
        capture_outputs=True,
        feature_names=["a", "b", "c", "d"],
        class_names=["billing", "tech", "other"],
        seed=5,
    )
    inputs = torch.randn(6, 4)

    with torch.no_grad():
        logits = model(inputs)

    found = attributes(pyflare_capture.rows()[0])
    row = int(found["pyflare.batch.row"])
    probabilities = torch.softmax(logits[row], dim=0)
    best = int(torch.argmax(probabilities))
    assert found["pyflare.prediction.label"] == ["billing", "tech", "other"][best]
    assert float(found["pyflare.prediction.score"]) == pytest.approx(float(probabilities[best]))
    for index, name in enumerate("abcd"):
        assert float(found[f"pyflare.feature.{name}"]) == pytest.approx(float(inputs[row][index]))
    assert found["pyflare.output.shape"] == "6x3"


def test_binary_and_regression_outputs(pyflare_capture: CapturedSpans) -> None:
    binary = nn.Linear(3, 1)
    regression = nn.Linear(3, 2)
    instrument_torch(binary, name="bin", inference_type="classification", capture_outputs=True)
    instrument_torch(regression, name="reg", inference_type="regression", capture_outputs=True)

    with torch.no_grad():
        logit = binary(torch.ones(1, 3))
        values = regression(torch.ones(1, 3))

    rows = {r["model_id"]: attributes(r) for r in pyflare_capture.rows()}
    p = 1.0 / (1.0 + math.exp(-float(logit[0, 0])))
    assert float(rows["bin"]["pyflare.prediction.score"]) == pytest.approx(p)
    assert rows["bin"]["pyflare.prediction.label"] == ("1" if p >= 0.5 else "0")
    assert float(rows["reg"]["pyflare.prediction.value"]) == pytest.approx(float(values[0, 0]))
    assert len(rows["reg"]["pyflare.output.values"].split(",")) == 2


def test_wide_inputs_are_summarised_within_the_bound(pyflare_capture: CapturedSpans) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    instrument_torch(model, capture_inputs=True, capture_outputs=True, max_summary_values=16)
    image = torch.rand(2, 3, 8, 8)

    with torch.no_grad():
        model(image)

    found = attributes(pyflare_capture.rows()[0], "pyflare.feature.")
    assert set(found) == {
        "pyflare.feature.input_mean",
        "pyflare.feature.input_std",
        "pyflare.feature.input_min",
        "pyflare.feature.input_max",
    }
    assert 0.0 <= float(found["pyflare.feature.input_min"]) <= 1.0
    values = attributes(pyflare_capture.rows()[0])["pyflare.output.values"]
    assert len(values.split(",")) == 2


def test_a_failing_forward_ends_its_span_as_an_error(pyflare_capture: CapturedSpans) -> None:
    model = classifier()
    instrument_torch(model)

    with pytest.raises(RuntimeError, match="shapes"):
        model(torch.randn(2, 7))
    with torch.no_grad():
        model(torch.randn(1, 4))  # the next call is unaffected

    failed, fine = pyflare_capture.rows()
    assert failed["status_code"] == "error" and "RuntimeError" in failed["status_message"]
    assert fine["status_code"] != "error"


def test_spans_nest_under_the_caller_and_the_context_is_untouched(
    pyflare_capture: CapturedSpans,
) -> None:
    model = classifier()
    instrument_torch(model, name="m")

    @pyflare.trace
    def handle_request() -> Any:
        with torch.no_grad():
            return model(torch.randn(1, 4))

    handle_request()
    spans = {s.name: s for s in pyflare_capture.spans}
    outer = next(s for n, s in spans.items() if n.endswith("handle_request"))
    assert spans["forward m"].parent is not None
    assert spans["forward m"].parent.span_id == outer.context.span_id


def test_sample_rate(pyflare_capture: CapturedSpans) -> None:
    model = classifier()
    instrument_torch(model, sample_rate=0.2, seed=3)
    with torch.no_grad():
        for _ in range(200):
            model(torch.randn(1, 4))
    assert 15 < len(pyflare_capture.spans) < 70


def test_training_steps_record_the_loss_and_hide_inner_forwards(
    pyflare_capture: CapturedSpans,
) -> None:
    model = classifier().train()
    handle = instrument_torch(model, name="intent", training=True)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, targets = torch.randn(8, 4), torch.randint(0, 3, (8,))

    losses = []
    for step in range(3):
        with handle.training_step(step=step) as record:
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(inputs), targets)
            loss.backward()
            optimiser.step()
            record.record_loss(loss)
            losses.append(loss.detach().item())
    model(inputs)  # outside a step: an inference span, in train mode

    rows = pyflare_capture.rows()
    steps = [r for r in rows if r["operation_name"] == "train_step intent"]
    assert [int(r["attributes"]["pyflare.training.step"]) for r in steps] == [0, 1, 2]
    recorded = [float(r["attributes"]["pyflare.training.loss"]) for r in steps]
    assert recorded == pytest.approx(losses)
    (forward,) = [r for r in rows if r["operation_name"] == "forward intent"]
    assert forward["attributes"]["pyflare.training"] == "true"


def test_a_failing_training_step_is_an_error_and_propagates(
    pyflare_capture: CapturedSpans,
) -> None:
    handle = instrument_torch(classifier(), training=True)
    with pytest.raises(ZeroDivisionError), handle.training_step():
        _ = 1 / 0
    (row,) = pyflare_capture.rows()
    assert row["status_code"] == "error"


def test_training_steps_need_training_true_and_a_scalar_loss() -> None:
    handle = instrument_torch(classifier())
    with pytest.raises(InvalidArgumentError, match="training=True"), handle.training_step():
        pass
    handle.remove()
    handle = instrument_torch(classifier(), training=True)
    with handle.training_step() as step:
        with pytest.raises(InvalidArgumentError, match="one-element tensor"):
            step.record_loss(torch.ones(3))
        with pytest.raises(InvalidArgumentError, match="a tensor or a number"):
            step.record_loss("low")  # type: ignore[arg-type]
    with (
        pytest.raises(InvalidArgumentError, match="must be an int"),
        handle.training_step(
            step="one"  # type: ignore[arg-type]
        ),
    ):
        pass


def test_remove_restores_the_model_and_is_idempotent(pyflare_capture: CapturedSpans) -> None:
    model = classifier()
    before = (dict(model._forward_pre_hooks), dict(model._forward_hooks))
    handle = instrument_torch(model)
    assert handle.active

    handle.remove()
    handle.remove()

    assert not handle.active
    assert (dict(model._forward_pre_hooks), dict(model._forward_hooks)) == before
    with torch.no_grad():
        model(torch.randn(1, 4))
    assert pyflare_capture.spans == []
    instrument_torch(model).remove()  # instrumenting again after remove() is fine


def test_instrumenting_twice_is_refused() -> None:
    model = classifier()
    handle = instrument_torch(model, name="first")
    with pytest.raises(InvalidArgumentError, match="already instrumented as 'first'"):
        instrument_torch(model)
    handle.remove()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": -0.1}, r"sample_rate must be in \[0, 1\]"),
        ({"sample_rate": None}, "sample_rate must be a number"),
        ({"inference_type": "magic"}, "unknown inference_type 'magic'"),
        ({"max_summary_values": 0}, "max_summary_values must be an int from 1 to 1024"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"class_names": "abc"}, "class_names must be a list of strings"),
        ({"feature_names": ["a", ""]}, "feature_names must hold non-empty strings"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    model = classifier()
    with pytest.raises(InvalidArgumentError, match=message):
        instrument_torch(model, **kwargs)
    assert not model._forward_hooks


def test_only_modules_are_accepted() -> None:
    with pytest.raises(InvalidArgumentError, match=r"needs a torch.nn.Module, got function"):
        instrument_torch(lambda x: x)  # type: ignore[arg-type]
