"""``pyflare.monitor(model)``: spans with features and predictions for any scikit-learn-style model.

``monitor(model, method="predict")`` replaces the named methods *on that instance*
(the class and other instances are untouched) and returns the same object, so
``model = pyflare.monitor(model)`` and plain ``pyflare.monitor(model)`` both work,
``isinstance`` and ``clone`` behave as before, and ``pyflare.unmonitor(model)``
puts the original methods back. Pickling or deep-copying a monitored model gives
a plain, unmonitored one (the copy's methods call the class's).

Each sampled call is one span (``{method} {name}``) with the model's id, version
and ``inference_type`` (``classification`` for classifiers, ``regression`` for
regressors, ``custom`` for clusterers, transformers and anything else), the batch
size, and one row of the batch for the drift detectors: its features as
``pyflare.feature.<name>`` and its prediction as ``pyflare.prediction.label`` /
``.score`` / ``.value``. The drift processor compares these one value per span,
so the row is drawn at random from the batch (``pyflare.batch.row`` says which):
over many calls the recorded rows are a fair sample of what the model saw,
which neither the first row nor a batch mean would be. Feature names come from
``feature_names``, a DataFrame's columns or the model's ``feature_names_in_``,
else ``x0, x1, …``; at most :data:`MAX_FEATURES` are recorded.
"""

from __future__ import annotations

import math
import random
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace

from pyflare import semconv as sc
from pyflare._runtime import STATE, warn_once
from pyflare.errors import InvalidArgumentError
from pyflare.tracing.spans import record_error

__all__ = ["MAX_FEATURES", "monitor", "unmonitor"]

#: Features recorded per span; wider inputs keep their first ones. OpenTelemetry keeps
#: 128 attributes per span by default (dropping the oldest), so this leaves room.
MAX_FEATURES: Final = 64
BATCH_SIZE: Final = "pyflare.batch.size"
BATCH_ROW: Final = "pyflare.batch.row"
LABEL: Final = sc.PREDICTION_PREFIX + "label"
SCORE: Final = sc.PREDICTION_PREFIX + "score"
VALUE: Final = sc.PREDICTION_PREFIX + "value"
_FEATURES_CUT: Final = "pyflare.features.truncated"
_PROBABILITY_METHODS: Final = ("predict_proba",)
_SCORE_METHODS: Final = ("decision_function", "score_samples")

_MISSING: Final = object()


def check_sample_rate(sample_rate: object, where: str) -> float:
    """``sample_rate`` as a float in [0, 1], or InvalidArgumentError naming it."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float):
        raise InvalidArgumentError(f"{where}: sample_rate must be a number, got {sample_rate!r}")
    if not 0.0 <= sample_rate <= 1.0:
        raise InvalidArgumentError(f"{where}: sample_rate must be in [0, 1], got {sample_rate!r}")
    return float(sample_rate)


def check_name(value: object, label: str, where: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidArgumentError(f"{where}: {label} must be a non-empty string, got {value!r}")
    return value


def scalar(value: Any) -> str | int | float | bool | None:
    """An attribute value for one feature or prediction (numpy scalars unwrapped)."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "shape", None) == ():
        value = item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # the drift processor reads it as missing
    return None if value is None else str(value)


def feature_attributes(names: Sequence[str] | None, values: Sequence[Any]) -> dict[str, Any]:
    """``pyflare.feature.<name>`` for one row's values (the first :data:`MAX_FEATURES`)."""
    attributes: dict[str, Any] = {}
    for index, value in enumerate(values[:MAX_FEATURES]):
        name = names[index] if names is not None and index < len(names) else f"x{index}"
        converted = scalar(value)
        if converted is not None:
            attributes[sc.FEATURE_PREFIX + str(name)] = converted
    if len(values) > MAX_FEATURES:
        attributes[_FEATURES_CUT] = True
    return attributes


def probability_attributes(
    probabilities: Sequence[float], classes: Sequence[Any] | None
) -> dict[str, Any]:
    """Predicted label (the most probable class) and its probability as the score."""
    if not probabilities:
        return {}
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    label = classes[best] if classes is not None and best < len(classes) else best
    return {LABEL: str(scalar(label)), SCORE: float(probabilities[best])}


def _inference_type(model: Any) -> str:
    if hasattr(model, "__sklearn_tags__"):
        try:
            from sklearn.utils import get_tags

            kind = get_tags(model).estimator_type
        except Exception:
            kind = None
        return {"classifier": "classification", "regressor": "regression"}.get(str(kind), "custom")
    return "classification" if callable(getattr(model, "predict_proba", None)) else "custom"


class _Settings:
    """What every call of one monitored model needs, worked out once."""

    __slots__ = ("classes", "feature_names", "inference_type", "rng", "sample_rate", "static")

    def __init__(
        self,
        model: Any,
        name: str,
        version: str | None,
        inference_type: str,
        feature_names: Sequence[str] | None,
        sample_rate: float,
        seed: int | None,
    ) -> None:
        self.static: dict[str, Any] = {
            sc.MODEL_ID: name,
            sc.INFERENCE_TYPE: inference_type,
            sc.SPAN_KIND: "inference",
        }
        if version is not None:
            self.static[sc.MODEL_VERSION] = version
        self.inference_type = inference_type
        self.feature_names = list(feature_names) if feature_names is not None else None
        classes = getattr(model, "classes_", None)
        self.classes = (
            list(classes) if classes is not None and hasattr(classes, "__len__") else None
        )
        self.sample_rate = sample_rate
        self.rng = random.Random(seed)


def _rows(data: Any) -> int | None:
    shape = getattr(data, "shape", None)
    if isinstance(shape, tuple) and shape:
        return int(shape[0])
    return len(data) if isinstance(data, list | tuple) else None


def _row(data: Any, index: int) -> tuple[list[Any], list[str] | None] | None:
    """(values, column names or None) of one input row; None for input it can't read."""
    columns = getattr(data, "columns", None)
    iloc = getattr(data, "iloc", None)
    if iloc is not None and columns is not None:  # a pandas DataFrame
        return list(iloc[index].tolist()), [str(c) for c in columns]
    if hasattr(data, "toarray") or hasattr(data, "tocsr"):
        return None  # sparse: its columns are usually too many to record one by one
    row = data[index]
    if isinstance(row, dict):
        return list(row.values()), [str(k) for k in row]
    if hasattr(row, "tolist"):
        row = row.tolist()
    return (list(row) if isinstance(row, list | tuple) else [row]), None


class _Monitored:
    """The method installed on a monitored instance."""

    __slots__ = ("method", "original", "owner", "previous", "settings", "span_name")

    def __init__(self, owner: Any, method: str, settings: _Settings, name: str) -> None:
        self.owner = weakref.ref(owner)
        self.method = method
        self.original: Callable[..., Any] = getattr(owner, method)
        # What the instance itself had under this name (usually nothing), put back by unmonitor.
        self.previous = vars(owner).get(method, _MISSING)
        self.settings = settings
        self.span_name = f"{method} {name}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        settings = self.settings
        if settings.sample_rate < 1.0 and settings.rng.random() >= settings.sample_rate:
            return self.original(*args, **kwargs)
        span = STATE.tracer.start_span(
            self.span_name, attributes=settings.static, start_time=STATE.clock()
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = self.original(*args, **kwargs)
        except BaseException as exc:
            record_error(span, exc)
            raise
        else:
            if span.is_recording():
                data = args[0] if args else kwargs.get("X", kwargs.get("x"))
                try:
                    span.set_attributes(self._record(data, result))
                except Exception as exc:  # recording never fails the prediction
                    warn_once(
                        "monitor-record", "PyFlare could not record a monitored call: %r", exc
                    )
            return result
        finally:
            otel_context.detach(token)
            span.end(end_time=STATE.clock())

    def _record(self, data: Any, result: Any) -> dict[str, Any]:
        settings = self.settings
        size = _rows(data)
        if not size:
            return {}
        index = 0 if size == 1 else settings.rng.randrange(size)
        attributes: dict[str, Any] = {BATCH_SIZE: size}
        if size > 1:
            attributes[BATCH_ROW] = index
        row = _row(data, index)
        if row is not None:
            values, columns = row
            owner = self.owner()
            names = settings.feature_names or columns
            if names is None and owner is not None:
                fitted = getattr(owner, "feature_names_in_", None)
                names = [str(n) for n in fitted] if fitted is not None else None
            attributes.update(feature_attributes(names, values))
        attributes.update(self._prediction(result, index, size))
        return attributes

    def _prediction(self, result: Any, index: int, size: int) -> dict[str, Any]:
        if _rows(result) != size:
            return {}
        value = result[index]
        if self.method in _PROBABILITY_METHODS:
            values = value.tolist() if hasattr(value, "tolist") else list(value)
            return probability_attributes(values, self.settings.classes)
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, list):  # several outputs per row: the first one
            if not value:
                return {}
            value = value[0]
        value = scalar(value)
        if value is None:
            return {}
        if self.method in _SCORE_METHODS:
            return {SCORE: float(value)} if isinstance(value, int | float) else {}
        if self.method != "predict":
            return {}
        if self.settings.inference_type == "regression" and isinstance(value, int | float):
            return {VALUE: float(value)}
        return {LABEL: str(value)}

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickled or deep-copied model comes back unmonitored: its method calls the class's.
        return (_Unmonitored, (self.method,), {"owner": self.owner()})


class _Unmonitored:
    """What a monitored method becomes in a copy of its model: the class's method."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.owner: Any = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.owner = state["owner"]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(type(self.owner), self.method)(self.owner, *args, **kwargs)


def monitor(
    model: Any,
    method: str | Sequence[str] = "predict",
    *,
    name: str | None = None,
    version: str | None = None,
    feature_names: Sequence[str] | None = None,
    sample_rate: float = 1.0,
    inference_type: str | None = None,
    seed: int | None = None,
) -> Any:
    """Trace calls of ``model``'s ``method`` (or methods) with features and predictions.

    Args:
        model: any object with the methods (a scikit-learn estimator, a pipeline,
            an XGBoost or LightGBM sklearn-API model…).
        method: ``"predict"``, ``"predict_proba"``, ``"transform"``… or a list of them.
        name: the model id (default: the model's class name).
        version: the model version.
        feature_names: names of the input columns (default: a DataFrame's
            columns, the model's ``feature_names_in_``, else ``x0, x1, …``).
        sample_rate: the fraction of calls traced, in [0, 1].
        inference_type: override what the estimator says (``classification``,
            ``regression``, ``custom``…).
        seed: seeds the sampling and the choice of the recorded row.

    Returns the same model, its methods replaced on the instance.

    Raises:
        InvalidArgumentError: a method the model doesn't have, a bad argument, a
            model already monitored, or one whose methods can't be replaced.
    """
    where = "pyflare.monitor()"
    methods = (
        [method]
        if isinstance(method, str)
        else list(method)
        if isinstance(method, Sequence)
        else None
    )
    if not methods or not all(isinstance(m, str) and m for m in methods):
        raise InvalidArgumentError(
            f"{where}: method must be a method name or a list of them, got {method!r}"
        )
    for label, value in (("name", name), ("version", version)):
        check_name(value, label, where)
    rate = check_sample_rate(sample_rate, where)
    if inference_type is not None and inference_type not in sc.INFERENCE_TYPES:
        raise InvalidArgumentError(
            f"{where}: unknown inference_type {inference_type!r}; expected one of {', '.join(sc.INFERENCE_TYPES)}"
        )
    if feature_names is not None and (
        isinstance(feature_names, str) or not all(isinstance(f, str) and f for f in feature_names)
    ):
        raise InvalidArgumentError(
            f"{where}: feature_names must be a list of non-empty strings, got {feature_names!r}"
        )
    kind = type(model).__name__
    if not hasattr(model, "__dict__"):
        raise InvalidArgumentError(
            f"{where}: can't monitor a {kind}: its methods can't be replaced on the instance "
            "(no __dict__)"
        )
    if _wrappers(model):
        raise InvalidArgumentError(
            f"{where}: this {kind} is already monitored; call pyflare.unmonitor(model) first"
        )
    for m in methods:
        if not callable(getattr(model, m, None)):
            raise InvalidArgumentError(f"{where}: {kind} has no method {m!r} to monitor")
    model_id = name or kind
    settings = _Settings(
        model,
        model_id,
        version,
        inference_type or _inference_type(model),
        feature_names,
        rate,
        seed,
    )
    wrappers = [_Monitored(model, m, settings, model_id) for m in dict.fromkeys(methods)]
    for wrapper in wrappers:
        vars(model)[wrapper.method] = wrapper
    return model


def _wrappers(model: Any) -> list[_Monitored]:
    namespace = getattr(model, "__dict__", None)
    if not isinstance(namespace, dict):
        return []
    return [v for v in list(namespace.values()) if isinstance(v, _Monitored) and v.owner() is model]


def unmonitor(model: Any) -> bool:
    """Put back the methods :func:`monitor` replaced; False when ``model`` wasn't monitored."""
    wrappers = _wrappers(model)
    namespace = vars(model) if wrappers else {}
    for wrapper in wrappers:
        if wrapper.previous is _MISSING:
            del namespace[wrapper.method]
        else:
            namespace[wrapper.method] = wrapper.previous
    return bool(wrappers)
