"""What a PyTorch forward pass records: input shapes, and one sampled row of inputs and outputs.

Everything here reads tensors without keeping them: shapes and dtypes of the
inputs; for summaries, one row of the batch (chosen by the caller), copied to
the CPU as at most ``max_values`` numbers. Outputs become predictions for the
drift detectors (a label and its probability for classifiers, a value for
regressors, the first values otherwise); inputs become features (each value
when the row is small, else its mean, standard deviation, minimum and maximum).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import torch

from pyflare.instrumentation.monitor import (
    BATCH_SIZE,
    LABEL,
    SCORE,
    VALUE,
    feature_attributes,
    probability_attributes,
)

__all__ = [
    "DEVICE",
    "INPUT_DTYPES",
    "INPUT_SHAPES",
    "OUTPUT_SHAPE",
    "OUTPUT_VALUES",
    "first_tensor",
    "input_attributes",
    "input_features",
    "output_attributes",
]

INPUT_SHAPES: Final = "pyflare.input.shapes"
INPUT_DTYPES: Final = "pyflare.input.dtypes"
OUTPUT_SHAPE: Final = "pyflare.output.shape"
OUTPUT_VALUES: Final = "pyflare.output.values"
DEVICE: Final = "pyflare.device"
_MAX_INPUTS: Final = 8  # tensors described per call
_Tensor = torch.Tensor
_MAX_SIGNATURES: Final = 256
_SIGNATURES: dict[tuple[Any, ...], dict[str, Any]] = {}
_EMPTY: Final[dict[str, Any]] = {}
_INTEGERS: Final = frozenset({torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8})


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape))


def first_tensor(value: Any) -> torch.Tensor | None:
    """The tensor a model output or input is about: itself, ``.logits``, or the first inside."""
    if isinstance(value, _Tensor):
        return value
    logits = getattr(value, "logits", None)
    if isinstance(logits, _Tensor):
        return logits
    items: Any = value.values() if isinstance(value, Mapping) else value
    if isinstance(items, Sequence | type({}.values())) and not isinstance(items, str):
        for item in items:
            if isinstance(item, _Tensor):
                return item
    return None


def input_attributes(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Batch size, shapes, dtypes and device of a call's tensor arguments (a shared dict).

    Worked out once per signature (shapes, dtypes, devices) and cached: a model
    called with the same batch shape pays for a dictionary lookup.
    """
    tensors = [a for a in args[:_MAX_INPUTS] if type(a) is _Tensor or isinstance(a, _Tensor)]
    if kwargs and len(tensors) < _MAX_INPUTS:
        tensors += [v for v in kwargs.values() if isinstance(v, _Tensor)][
            : _MAX_INPUTS - len(tensors)
        ]
    if not tensors:
        return _EMPTY
    key = tuple((t.shape, t.dtype, t.device) for t in tensors)
    found = _SIGNATURES.get(key)
    if found is not None:
        return found
    first = tensors[0]
    attributes: dict[str, Any] = {
        INPUT_SHAPES: tuple(_shape(t) for t in tensors),
        INPUT_DTYPES: tuple(str(t.dtype).removeprefix("torch.") for t in tensors),
        DEVICE: str(first.device),
    }
    if first.dim() > 0:
        attributes[BATCH_SIZE] = int(first.shape[0])
    if len(_SIGNATURES) >= _MAX_SIGNATURES:
        _SIGNATURES.clear()
    _SIGNATURES[key] = attributes
    return attributes


def _row_values(tensor: torch.Tensor, row: int, limit: int | None) -> tuple[list[float], int]:
    """(the first ``limit`` values of one row as floats, how many values the row has)."""
    picked = tensor[row] if tensor.dim() > 1 else tensor[row : row + 1]
    flat = picked.detach().reshape(-1)
    size = int(flat.numel())
    if limit is not None:
        flat = flat[:limit]
    return [float(v) for v in flat.float().cpu().tolist()], size


def input_features(
    tensor: torch.Tensor, row: int, names: Sequence[str] | None, max_values: int
) -> dict[str, Any]:
    """One input row as ``pyflare.feature.*``: its values, or a summary of a wide row."""
    if tensor.dim() == 0 or not (tensor.is_floating_point() or tensor.dtype in _INTEGERS):
        return {}
    picked = tensor[row] if tensor.dim() > 1 else tensor[row : row + 1]
    flat = picked.detach().reshape(-1)
    if flat.numel() <= max_values:
        return feature_attributes(names, [float(v) for v in flat.float().cpu().tolist()])
    values = flat.float()
    stats = torch.stack([values.mean(), values.std(), values.min(), values.max()]).cpu().tolist()
    return feature_attributes(["input_mean", "input_std", "input_min", "input_max"], stats)


def _probabilities(values: list[float]) -> list[float]:
    if all(0.0 <= v <= 1.0 for v in values) and abs(sum(values) - 1.0) < 1e-3:
        return values
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def output_attributes(
    output: Any,
    row: int | None,
    inference_type: str,
    class_names: Sequence[str] | None,
    max_values: int,
) -> dict[str, Any]:
    """The output's shape, and with ``row`` that row as a prediction (see the module doc)."""
    tensor = first_tensor(output)
    if tensor is None:
        return {}
    attributes: dict[str, Any] = {OUTPUT_SHAPE: _shape(tensor)}
    if row is None or tensor.dim() == 0 or row >= tensor.shape[0]:
        return attributes
    if not tensor.is_floating_point():
        values, size = _row_values(tensor, row, max_values)
        if inference_type == "classification" and size == 1:
            attributes[LABEL] = str(int(values[0]))
        return attributes | {OUTPUT_VALUES: tuple(values)}
    if inference_type == "classification":
        values, size = _row_values(tensor, row, None)
        finite = [v for v in values if math.isfinite(v)]
        if not finite or len(finite) != len(values):
            return attributes
        if size == 1:  # one score: a binary classifier (a logit unless already in [0, 1])
            p = values[0] if 0.0 <= values[0] <= 1.0 else 1.0 / (1.0 + math.exp(-values[0]))
            names = class_names if class_names is not None and len(class_names) == 2 else None
            label = (names[1] if names else "1") if p >= 0.5 else (names[0] if names else "0")
            return attributes | {LABEL: label, SCORE: p}
        return attributes | probability_attributes(_probabilities(values), class_names)
    values, _ = _row_values(tensor, row, max_values)
    if inference_type == "regression" and values:
        attributes[VALUE] = values[0]
    attributes[OUTPUT_VALUES] = tuple(values)
    return attributes
