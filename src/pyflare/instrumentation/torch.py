"""``pyflare.instrument_torch(model)``: an inference span per forward pass of a PyTorch model.

Forward hooks on the top module (a pre-hook that runs first, a post-hook that runs
last and also when ``forward`` raises) make one span per sampled call,
``forward {name}``, with the model id and version, ``inference_type``, batch size,
input shapes and dtypes, and the device. Its duration is the forward pass; on a
CUDA device the hooks synchronise before and after, so it is the GPU's time too
(sampled calls only). Calls are sampled with ``sample_rate``; the others cost a
random draw.

Summaries for the drift detectors are opt-in and memory-bounded: one row of the
batch, drawn at random, copied to the CPU as at most ``max_summary_values``
numbers. ``capture_outputs=True`` records that row's prediction
(``pyflare.prediction.label`` and ``.score`` for ``inference_type="classification"``:
the most probable class, from probabilities or logits; ``.value`` for
``"regression"``; the first values as ``pyflare.output.values`` otherwise).
``capture_inputs=True`` records the row's features (``pyflare.feature.*``: each
value when the row has at most ``max_summary_values`` of them, else its mean,
standard deviation, minimum and maximum).

Training: with ``training=True``, ``with handle.training_step(step=n) as step:``
wraps one optimisation step in a ``train_step {name}`` span and
``step.record_loss(loss)`` puts the loss on it; forward passes inside a training
step are not inference spans. Without a training step, forward passes are
traced in train and eval mode alike (``pyflare.training`` says which).

The spans are not made current while ``forward`` runs: an exception that isn't an
``Exception`` (KeyboardInterrupt) skips the post-hook, and a context left attached
would adopt every later span.

A model is instrumented once: a second ``instrument_torch`` on it raises until its
handle is removed; ``handle.remove()`` is idempotent.
"""

from __future__ import annotations

import random
import sys
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import torch
from opentelemetry import context as otel_context
from opentelemetry import trace

from pyflare import semconv as sc
from pyflare._runtime import STATE, warn_once
from pyflare.errors import InvalidArgumentError
from pyflare.instrumentation._torch_summaries import (
    first_tensor,
    input_attributes,
    input_features,
    output_attributes,
)
from pyflare.instrumentation.monitor import BATCH_ROW, BATCH_SIZE, check_name, check_sample_rate
from pyflare.tracing.spans import record_error

__all__ = ["TorchHandle", "TrainingStep", "instrument_torch"]

TRAINING: Final = "pyflare.training"
TRAINING_STEP: Final = "pyflare.training.step"
TRAINING_LOSS: Final = "pyflare.training.loss"

_HANDLES: weakref.WeakKeyDictionary[torch.nn.Module, TorchHandle] = weakref.WeakKeyDictionary()
_HANDLES_LOCK = threading.Lock()


class TrainingStep:
    """One training step's span; :meth:`record_loss` puts the loss on it."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def record_loss(self, loss: torch.Tensor | float) -> None:
        """Record the step's loss (a one-element tensor or a number; NaN is recorded as NaN)."""
        if isinstance(loss, torch.Tensor):
            if loss.numel() != 1:
                raise InvalidArgumentError(
                    f"record_loss() needs a one-element tensor (the step's loss), got shape "
                    f"{tuple(loss.shape)}"
                )
            value = float(loss.detach().item())
        elif isinstance(loss, int | float) and not isinstance(loss, bool):
            value = float(loss)
        else:
            raise InvalidArgumentError(
                f"record_loss() needs a tensor or a number, got {type(loss).__name__}"
            )
        self.span.set_attribute(TRAINING_LOSS, value)


class TorchHandle:
    """What :func:`instrument_torch` returns: ``remove()`` and ``training_step()``."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        name: str,
        static: dict[str, Any],
        sample_rate: float,
        capture_inputs: bool,
        capture_outputs: bool,
        inference_type: str,
        feature_names: Sequence[str] | None,
        class_names: Sequence[str] | None,
        max_values: int,
        training: bool,
        seed: int | None,
    ) -> None:
        self.name = name
        self._model = weakref.ref(model)
        self._static = static
        self._span_name = f"forward {name}"
        self._rate = sample_rate
        self._rng = random.Random(seed)
        self._inputs = capture_inputs
        self._outputs = capture_outputs
        self._inference_type = inference_type
        self._feature_names = feature_names
        self._class_names = class_names
        self._max_values = max_values
        self._training = training
        self._local = threading.local()
        self._removed = False
        self._hooks = (
            model.register_forward_pre_hook(self._pre, with_kwargs=True, prepend=True),
            model.register_forward_hook(self._post, with_kwargs=True, always_call=True),
        )

    @property
    def active(self) -> bool:
        """Whether the hooks are still installed."""
        return not self._removed and self._model() is not None

    def _stack(self) -> list[Any]:
        stack: list[Any] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _pre(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        stack = self._stack()
        if getattr(self._local, "in_step", False) or (
            self._rate < 1.0 and self._rng.random() >= self._rate
        ):
            stack.append(None)
            return
        try:
            described = input_attributes(args, kwargs)
            attributes = {**self._static, **described, TRAINING: module.training}
            tensor = first_tensor(args) if args else None
            if self._inputs or self._outputs:
                size = described.get(BATCH_SIZE)
                row = 0 if not size or size == 1 else self._rng.randrange(size)
                if size and size > 1:
                    attributes[BATCH_ROW] = row
                if self._inputs and tensor is not None:
                    attributes.update(
                        input_features(tensor, row, self._feature_names, self._max_values)
                    )
            else:
                row = None
            if tensor is not None and tensor.is_cuda:
                torch.cuda.synchronize(tensor.device)
            span = STATE.tracer.start_span(
                self._span_name, attributes=attributes, start_time=STATE.clock()
            )
            stack.append((span, row, tensor is not None and tensor.is_cuda))
        except Exception as exc:  # never fail the forward pass
            stack.append(None)
            warn_once("torch-pre", "PyFlare could not start a forward-pass span: %r", exc)

    def _post(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        stack = self._stack()
        entry = stack.pop() if stack else None
        if entry is None:
            return
        span, row, cuda = entry
        try:
            # Called from forward's except block when it raised (output is then None).
            error = sys.exc_info()[1] if output is None else None
            if cuda:
                torch.cuda.synchronize()
            if error is not None:
                record_error(span, error)
            elif self._outputs and span.is_recording():
                span.set_attributes(
                    output_attributes(
                        output, row, self._inference_type, self._class_names, self._max_values
                    )
                )
        except Exception as exc:
            warn_once("torch-post", "PyFlare could not finish a forward-pass span: %r", exc)
        finally:
            span.end(end_time=STATE.clock())

    @contextmanager
    def training_step(self, step: int | None = None) -> Iterator[TrainingStep]:
        """Trace one training step as a span (see the module doc); yields a :class:`TrainingStep`."""
        if not self._training:
            raise InvalidArgumentError(
                f"training steps of {self.name!r} are not recorded: instrument the model with "
                "pyflare.instrument_torch(model, ..., training=True)"
            )
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise InvalidArgumentError(f"training_step(step=...) must be an int, got {step!r}")
        attributes = dict(self._static)
        attributes[sc.SPAN_KIND] = "task"
        attributes.pop(sc.INFERENCE_TYPE, None)
        if step is not None:
            attributes[TRAINING_STEP] = step
        span = STATE.tracer.start_span(
            f"train_step {self.name}", attributes=attributes, start_time=STATE.clock()
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        outer = getattr(self._local, "in_step", False)
        self._local.in_step = True
        try:
            yield TrainingStep(span)
        except BaseException as exc:
            record_error(span, exc)
            raise
        finally:
            self._local.in_step = outer
            otel_context.detach(token)
            span.end(end_time=STATE.clock())

    def remove(self) -> None:
        """Remove the hooks (idempotent): the model runs exactly as before."""
        for hook in self._hooks:
            hook.remove()
        self._removed = True
        model = self._model()
        with _HANDLES_LOCK:
            if model is not None and _HANDLES.get(model) is self:
                del _HANDLES[model]

    def __enter__(self) -> TorchHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"<TorchHandle {self.name!r} {'active' if self.active else 'removed'}>"


def _check_names(value: object, label: str, where: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidArgumentError(f"{where}: {label} must be a list of strings, got {value!r}")
    if not all(isinstance(v, str) and v for v in value):
        raise InvalidArgumentError(f"{where}: {label} must hold non-empty strings, got {value!r}")
    return list(value)


def instrument_torch(
    model: torch.nn.Module,
    *,
    name: str | None = None,
    version: str | None = None,
    sample_rate: float = 1.0,
    inference_type: str = "custom",
    capture_inputs: bool = False,
    capture_outputs: bool = False,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    max_summary_values: int = 32,
    training: bool = False,
    seed: int | None = None,
) -> TorchHandle:
    """Trace every (sampled) forward pass of ``model`` as an inference span.

    Args:
        model: a ``torch.nn.Module`` (its top-level forward is traced).
        name: the model id (default: the module's class name).
        version: the model version.
        sample_rate: the fraction of forward passes traced, in [0, 1].
        inference_type: ``classification``, ``regression``, ``embedding``… or
            ``custom`` (the default); decides how outputs are summarised.
        capture_inputs, capture_outputs: record one sampled row's features /
            prediction for the drift detectors (see the module doc).
        feature_names, class_names: names for input columns and output classes.
        max_summary_values: the most numbers copied from a row (1 to 1024).
        training: allow :meth:`TorchHandle.training_step` spans.
        seed: seeds the sampling and the choice of the recorded row.

    Returns a :class:`TorchHandle`; ``handle.remove()`` takes the hooks off.

    Raises:
        InvalidArgumentError: not an ``nn.Module``, a bad argument, or a model
            already instrumented (remove its handle first).
    """
    where = "pyflare.instrument_torch()"
    if not isinstance(model, torch.nn.Module):
        raise InvalidArgumentError(
            f"{where} needs a torch.nn.Module, got {type(model).__name__}; "
            "for other models use pyflare.monitor(model)"
        )
    check_name(name, "name", where)
    check_name(version, "version", where)
    rate = check_sample_rate(sample_rate, where)
    if inference_type not in sc.INFERENCE_TYPES:
        raise InvalidArgumentError(
            f"{where}: unknown inference_type {inference_type!r}; expected one of "
            f"{', '.join(sc.INFERENCE_TYPES)}"
        )
    if (
        isinstance(max_summary_values, bool)
        or not isinstance(max_summary_values, int)
        or not 1 <= max_summary_values <= 1024
    ):
        raise InvalidArgumentError(
            f"{where}: max_summary_values must be an int from 1 to 1024, got {max_summary_values!r}"
        )
    features = _check_names(feature_names, "feature_names", where)
    classes = _check_names(class_names, "class_names", where)
    model_id = name or type(model).__name__
    static: dict[str, Any] = {
        sc.MODEL_ID: model_id,
        sc.INFERENCE_TYPE: inference_type,
        sc.SPAN_KIND: "inference",
    }
    if version is not None:
        static[sc.MODEL_VERSION] = version
    with _HANDLES_LOCK:
        existing = _HANDLES.get(model)
        if existing is not None and existing.active:
            raise InvalidArgumentError(
                f"{where}: this {type(model).__name__} is already instrumented as "
                f"{existing.name!r}; call handle.remove() first"
            )
        handle = TorchHandle(
            model,
            name=model_id,
            static=static,
            sample_rate=rate,
            capture_inputs=bool(capture_inputs),
            capture_outputs=bool(capture_outputs),
            inference_type=inference_type,
            feature_names=features,
            class_names=classes,
            max_values=max_summary_values,
            training=bool(training),
            seed=seed,
        )
        _HANDLES[model] = handle
    return handle
