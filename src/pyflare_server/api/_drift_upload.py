"""Reference uploads for the drift resource: the JSON body, checked, made into detector state.

The body of ``POST /api/v1/drift/{model_id}/reference`` is one JSON object of at
most :data:`MAX_BODY_BYTES` with exactly one data key: ``features`` (name ->
values), ``rows`` (objects of name -> value), ``predictions`` (labels, numbers
or LLM outputs) or ``embeddings`` (equal-length arrays of numbers), at most
:data:`MAX_ROWS` rows. ``drift_type`` defaults to the one the data key implies,
``dataset_version`` is an optional label and ``config`` the fields of the
matching :mod:`pyflare.drift` config (``FeatureDriftConfig`` and so on). Every
value is checked here, so a bad one is a 400 naming it, and nothing is coerced:
a string is never read as a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final

import orjson

from pyflare.errors import DriftError
from pyflare_server.api._http import ApiError
from pyflare_server.api._params import invalid
from pyflare_server.bodies import BodyError, read_body

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = [
    "BODY_TIMEOUT_S",
    "MAX_BODY_BYTES",
    "MAX_DIMENSIONS",
    "MAX_FEATURES",
    "MAX_ROWS",
    "DriftUpload",
    "parse_reference",
    "read_json",
]

MAX_BODY_BYTES: Final = 32 * 1024 * 1024
MAX_ROWS: Final = 100_000
MAX_FEATURES: Final = 1_000
MAX_DIMENSIONS: Final = 16_384
BODY_TIMEOUT_S: Final = 30.0

# Which data key an upload carries for each drift type it can set a reference for.
_DATA_KEYS: Final = {
    "features": "feature",
    "rows": "feature",
    "predictions": "prediction",
    "embeddings": "embedding",
}
_BODY_KEYS: Final = ("drift_type", "dataset_version", "config", *_DATA_KEYS)
_SCALARS: Final = (str, int, float, bool, type(None))
_FLOAT32_MAX: Final = 3.4028234663852886e38  # embeddings are compared as float32


@dataclass(frozen=True)
class DriftUpload:
    """A parsed reference upload: the detector state to store, and what was given."""

    drift_type: str
    state: bytes
    """The detector's ``state()``: its config and the reference sample."""
    n_samples: int
    """Rows given."""
    reference_size: int
    """Rows kept (a uniform sample of at most ``config.reference_sample_size``)."""
    dataset_version: str | None
    config: dict[str, Any]


_BODY_CODES = {
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def read_json(request: Request) -> Any:
    """The request body as JSON: within MAX_BODY_BYTES (413) and BODY_TIMEOUT_S (408)."""
    content_type = request.headers.get("content-type", "application/json")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise ApiError(
            415, "unsupported_media_type", f"send application/json, not {content_type!r}"
        )
    try:
        body = await read_body(request, max_bytes=MAX_BODY_BYTES, timeout_s=BODY_TIMEOUT_S)
    except BodyError as exc:
        raise ApiError(
            exc.status, _BODY_CODES.get(exc.status, "invalid_argument"), exc.message
        ) from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"the body is not valid JSON: {exc}") from None


def parse_reference(body: Any) -> DriftUpload:
    """The detector an upload's JSON asks for, with its reference set; 400s name the problem.

    ``drift_type`` defaults to the one the data key implies (``features`` and
    ``rows``: feature, ``predictions``: prediction, ``embeddings``: embedding).
    """
    if not isinstance(body, dict):
        raise invalid(f"the body must be a JSON object, not {_json_type(body)}")
    unknown = [key for key in body if key not in _BODY_KEYS]
    if unknown:
        raise invalid(f"unknown field {unknown[0]!r}; expected some of: {', '.join(_BODY_KEYS)}")
    given = [key for key in _DATA_KEYS if key in body]
    if len(given) != 1:
        found = f"got {', '.join(given)}" if given else "got none"
        raise invalid(f"give exactly one of features, rows, predictions, embeddings; {found}")
    (data_key,) = given
    drift_type = body.get("drift_type", _DATA_KEYS[data_key])
    if drift_type not in ("feature", "prediction", "embedding"):
        raise invalid(
            f"drift_type must be feature, prediction or embedding, got {drift_type!r} "
            "(concept drift is measured against outcomes, not an uploaded reference)"
        )
    if _DATA_KEYS[data_key] != drift_type:
        raise invalid(f"{data_key} are for drift_type {_DATA_KEYS[data_key]!r}, not {drift_type!r}")
    version = body.get("dataset_version")
    if version is not None and (not isinstance(version, str) or not version.strip()):
        raise invalid("dataset_version must be a non-empty string")
    config_values = body.get("config", {})
    if not isinstance(config_values, dict):
        raise invalid(f"config must be an object, not {_json_type(config_values)}")
    data, n_samples = _DATA_PARSERS[data_key](body[data_key])
    if drift_type == "prediction":
        kind = config_values.setdefault("kind", _prediction_kind(data))
        if kind == "regression" and not all(_number(v) for v in data):
            raise invalid("predictions must all be numbers for config.kind 'regression'")
    detector = _detector(drift_type, config_values)
    try:
        detector.set_reference(data)
    except DriftError as exc:
        raise invalid(f"{data_key}: {exc}") from None
    config = {f.name: getattr(detector.config, f.name) for f in fields(detector.config)}
    return DriftUpload(
        drift_type=drift_type,
        state=detector.state(),
        n_samples=n_samples,
        reference_size=detector.reference_size,
        dataset_version=version,
        config={k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
    )


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _sized(name: str, values: Any) -> list[Any]:
    if not isinstance(values, list):
        raise invalid(f"{name} must be an array, not {_json_type(values)}")
    if not values:
        raise invalid(f"{name} is empty; a reference needs data")
    if len(values) > MAX_ROWS:
        raise invalid(f"{name} has {len(values)} rows; at most {MAX_ROWS} (sample it first)")
    return values


def _column(name: str, values: Any) -> list[Any]:
    if not all(isinstance(v, _SCALARS) for v in values):
        bad = next(v for v in values if not isinstance(v, _SCALARS))
        raise invalid(
            f"feature {name!r} has {_json_type(bad)}; values are numbers, strings, booleans or null"
        )
    return list(values)


def _features(value: Any) -> tuple[dict[str, list[Any]], int]:
    if not isinstance(value, dict):
        raise invalid(f"features must be an object of name -> values, not {_json_type(value)}")
    if not value:
        raise invalid("features is empty; give at least one feature")
    if len(value) > MAX_FEATURES:
        raise invalid(f"features has {len(value)} features; at most {MAX_FEATURES}")
    columns = {name: _column(name, _sized(f"features[{name!r}]", v)) for name, v in value.items()}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise invalid(f"features have different lengths: {sorted(lengths)}; give one per row")
    return columns, lengths.pop()


def _rows(value: Any) -> tuple[dict[str, list[Any]], int]:
    rows = _sized("rows", value)
    first = rows[0]
    if not isinstance(first, dict) or not first:
        raise invalid("rows must be objects of feature -> value, the first one is not")
    if len(first) > MAX_FEATURES:
        raise invalid(f"rows have {len(first)} features; at most {MAX_FEATURES}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or row.keys() != first.keys():
            raise invalid(f"rows[{i}] must be an object with the same features as rows[0]")
    columns = {name: _column(name, [row[name] for row in rows]) for name in first}
    return columns, len(rows)


def _predictions(value: Any) -> tuple[list[Any], int]:
    outputs = _sized("predictions", value)
    for i, output in enumerate(outputs):
        if output is None or not isinstance(output, (*_SCALARS, dict)):
            raise invalid(
                f"predictions[{i}] is {_json_type(output)}; give a label, a number, "
                "or an LLM output (text or an object with text)"
            )
    return outputs, len(outputs)


def _embeddings(value: Any) -> tuple[list[list[float]], int]:
    vectors = _sized("embeddings", value)
    first = vectors[0]
    if not isinstance(first, list) or not first:
        raise invalid("embeddings must be arrays of numbers, the first one is not")
    if len(first) > MAX_DIMENSIONS:
        raise invalid(f"embeddings have {len(first)} dimensions; at most {MAX_DIMENSIONS}")
    for i, vector in enumerate(vectors):
        if not isinstance(vector, list) or len(vector) != len(first):
            raise invalid(f"embeddings[{i}] must be an array of {len(first)} numbers")
        if not all((type(x) is float or type(x) is int) and abs(x) <= _FLOAT32_MAX for x in vector):
            raise invalid(f"embeddings[{i}] has a value that is not a float32 number")
    return vectors, len(vectors)


_DATA_PARSERS: Final[dict[str, Callable[[Any], tuple[Any, int]]]] = {
    "features": _features,
    "rows": _rows,
    "predictions": _predictions,
    "embeddings": _embeddings,
}


def _prediction_kind(outputs: list[Any]) -> str:
    """Objects are LLM outputs, numbers regression values, anything else class labels."""
    if any(isinstance(v, dict) for v in outputs):
        return "llm"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in outputs):
        return "regression"
    return "classification"


# What each config field may be: a check and the words for the error.
_Check = tuple[Callable[[Any], bool], str]
_METHODS = ("auto", "ks", "chi2", "psi", "jensen_shannon", "wasserstein", "hellinger")
_CHECKS: Final[dict[str, _Check]] = {
    "test": (lambda v: v in _METHODS, f"one of {', '.join(_METHODS)}"),
    "metric": (
        lambda v: v in ("centroid_cosine", "mmd", "mmd_linear", "auto"),
        "one of centroid_cosine, mmd, mmd_linear, auto",
    ),
    "kind": (
        lambda v: v in ("classification", "regression", "llm"),
        "one of classification, regression, llm",
    ),
    "fdr": (lambda v: v in (None, "bh", "benjamini_hochberg"), "bh, benjamini_hochberg or null"),
    "significance_level": (
        lambda v: _number(v) and 0 < v < 1,
        "a number between 0 and 1 (exclusive)",
    ),
    "threshold": (lambda v: _number(v) and 0 < v < math.inf, "a positive number"),
    "min_sample_size": (lambda v: _whole(v, 1, MAX_ROWS), f"an integer from 1 to {MAX_ROWS}"),
    "reference_sample_size": (
        lambda v: _whole(v, 1, MAX_ROWS),
        f"an integer from 1 to {MAX_ROWS}",
    ),
    "permutations": (lambda v: _whole(v, 1, 10_000), "an integer from 1 to 10000"),
    "seed": (lambda v: _whole(v, 0, 2**63 - 1), "a non-negative integer"),
    "categorical": (
        lambda v: v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
        "an array of feature names or null",
    ),
}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _detector(drift_type: str, values: dict[str, Any]) -> Any:
    from pyflare import drift

    kinds: dict[str, tuple[type[Any], type[Any]]] = {
        "feature": (drift.FeatureDriftDetector, drift.FeatureDriftConfig),
        "prediction": (drift.PredictionDriftDetector, drift.PredictionDriftConfig),
        "embedding": (drift.EmbeddingDriftDetector, drift.EmbeddingDriftConfig),
    }
    detector_type, config_type = kinds[drift_type]
    allowed = [f.name for f in fields(config_type)]
    for name, value in values.items():
        if name not in allowed:
            raise invalid(
                f"unknown config field {name!r} for {drift_type} drift; "
                f"expected some of: {', '.join(allowed)}"
            )
        check, expected = _CHECKS[name]
        if not check(value):
            raise invalid(f"config.{name} must be {expected}, got {value!r}")
    if isinstance(values.get("categorical"), list):
        values = {**values, "categorical": tuple(values["categorical"])}
    try:
        return detector_type(config_type(**values))
    except DriftError as exc:
        raise invalid(f"config: {exc}") from None
