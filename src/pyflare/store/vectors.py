"""What every vector store shares: the collections, their payloads, and the checks on input.

Two collections, as in the spec (§4.2), each point a vector of the store's
``dim`` plus a payload:

- ``inference_embeddings``: embeddings seen in production. Payload fields
  trace_id, model_id, timestamp, embedding_type, input_hash.
- ``reference_embeddings``: a model's reference set for embedding drift.
  Payload fields model_id, dataset_version, created_at, sample_index.

Field types: ``keyword`` fields are strings, ``integer`` fields ints,
``datetime`` fields UTC nanoseconds since the epoch, kept to the microsecond
(Qdrant's precision: a value comes back truncated to a multiple of 1000).
``model_id`` is required; other fields may be absent (None). Extra payload keys
with string values are kept too, but only the fields above can be filtered on.

Vectors are compared by cosine similarity and stored unit-length (cosine needs
only the direction; Qdrant normalises on insert too), so a vector read back is
the one written divided by its norm. Point ids are any non-empty strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyflare.errors import InvalidArgumentError

__all__ = [
    "INFERENCE_EMBEDDINGS",
    "REFERENCE_EMBEDDINGS",
    "VECTOR_COLLECTIONS",
    "VectorBatch",
    "VectorFilter",
    "VectorHit",
    "check_collection",
    "check_delete",
    "check_dim",
    "check_filter",
    "check_ids",
    "check_limit",
    "check_points",
    "check_query_vector",
    "check_query_vectors",
    "reference_points",
    "time_bounds_us",
]

INFERENCE_EMBEDDINGS = "inference_embeddings"
REFERENCE_EMBEDDINGS = "reference_embeddings"

#: Payload fields per collection and their types (keyword, integer, datetime).
VECTOR_COLLECTIONS: Mapping[str, Mapping[str, str]] = {
    INFERENCE_EMBEDDINGS: {
        "trace_id": "keyword",
        "model_id": "keyword",
        "timestamp": "datetime",
        "embedding_type": "keyword",
        "input_hash": "keyword",
    },
    REFERENCE_EMBEDDINGS: {
        "model_id": "keyword",
        "dataset_version": "keyword",
        "created_at": "datetime",
        "sample_index": "integer",
    },
}
#: The field each collection's time filters (``since_ns``/``until_ns``) apply to.
TIME_FIELDS: Mapping[str, str] = {
    INFERENCE_EMBEDDINGS: "timestamp",
    REFERENCE_EMBEDDINGS: "created_at",
}
MAX_DIM = 65_536
MAX_LIMIT = 10_000
_INT64 = 2**63


@dataclass(frozen=True)
class VectorFilter:
    """Points whose payload ``fields`` equal the given values and whose time is in a range.

    ``fields`` keys are payload fields of the collection (strings for keyword
    fields, ints for integer ones); the time range ``[since_ns, until_ns)``
    applies to its datetime field (timestamp or created_at).
    """

    fields: Mapping[str, str | int] = field(default_factory=dict)
    since_ns: int | None = None
    until_ns: int | None = None


@dataclass(frozen=True)
class VectorHit:
    """One search result: a point's id, its cosine similarity to the query, its payload."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class VectorBatch:
    """Points as columns: ids, an (n, dim) float32 matrix of unit vectors, payloads."""

    ids: list[str]
    vectors: np.ndarray[Any, np.dtype[np.float32]]
    payloads: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.ids)

    def in_order(self, ids: Sequence[str]) -> VectorBatch:
        """These points in the order of ``ids`` (each once); ids not here are left out."""
        position = {point_id: row for row, point_id in enumerate(self.ids)}
        rows = [position[point_id] for point_id in dict.fromkeys(ids) if point_id in position]
        return VectorBatch(
            ids=[self.ids[row] for row in rows],
            vectors=self.vectors[rows],
            payloads=[self.payloads[row] for row in rows],
        )


def check_dim(dim: object) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or not 0 < dim <= MAX_DIM:
        raise InvalidArgumentError(
            f"dim={dim!r}: the vector size must be an integer from 1 to {MAX_DIM} "
            "(1536 for OpenAI's text-embedding-3-small, 384 for all-MiniLM-L6-v2)"
        )
    return dim


def check_collection(collection: object) -> str:
    if collection not in VECTOR_COLLECTIONS:
        names = ", ".join(VECTOR_COLLECTIONS)
        raise InvalidArgumentError(f"unknown vector collection {collection!r}; expected {names}")
    return str(collection)


def check_limit(limit: object, what: str = "limit") -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_LIMIT:
        raise InvalidArgumentError(f"{what}={limit!r}: expected an integer from 1 to {MAX_LIMIT}")
    return limit


def _matrix(vectors: object, dim: int, what: str) -> np.ndarray[Any, np.dtype[np.float32]]:
    try:
        matrix = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"{what} must be a rectangular array of numbers: {exc}"
        ) from None
    if matrix.ndim == 1 and matrix.size == 0:
        matrix = matrix.reshape(0, dim)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise InvalidArgumentError(
            f"{what} must have shape (n, {dim}) for this store's {dim}-dimensional vectors; "
            f"got shape {matrix.shape}"
        )
    if not np.isfinite(matrix).all():
        row = int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])
        raise InvalidArgumentError(f"{what}: row {row} has NaN or infinite values")
    norms = np.linalg.norm(matrix, axis=1)
    if (norms == 0).any():
        row = int(np.flatnonzero(norms == 0)[0])
        raise InvalidArgumentError(
            f"{what}: row {row} is all zeros; a zero vector has no direction to compare"
        )
    unit: np.ndarray[Any, np.dtype[np.float32]] = (matrix / norms[:, None]).astype(np.float32)
    return unit


def check_query_vector(vector: object, dim: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """One query vector as a unit vector of ``dim`` float32s."""
    try:
        array = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"the query vector must be a list of numbers: {exc}") from None
    if array.ndim != 1:
        raise InvalidArgumentError(
            f"the query vector must be one vector of {dim} numbers, got shape {array.shape} "
            "(search_batch takes several)"
        )
    unit: np.ndarray[Any, np.dtype[np.float32]] = _matrix(array[None, :], dim, "the query vector")[
        0
    ]
    return unit


def check_query_vectors(vectors: object, dim: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Query vectors as an (n, dim) matrix of unit vectors (at least one)."""
    matrix = _matrix(vectors, dim, "the query vectors")
    if not len(matrix):
        raise InvalidArgumentError("search_batch needs at least one query vector")
    return matrix


def time_bounds_us(where: VectorFilter) -> tuple[int | None, int | None]:
    """``[since, until)`` in whole microseconds, exact for times kept to the microsecond.

    A stored time ``t`` (a multiple of 1000 ns) is at or after ``since_ns`` exactly
    when ``t / 1000 >= ceil(since_ns / 1000)``, and likewise before ``until_ns``.
    """
    since = None if where.since_ns is None else -(-where.since_ns // 1000)
    until = None if where.until_ns is None else -(-where.until_ns // 1000)
    return since, until


def _time_ns(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
        raise InvalidArgumentError(
            f"payload field {name}={value!r}: expected UTC nanoseconds since the epoch (an int)"
        )
    return value - value % 1000


def _payload(raw: object, collection: str, row: int) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidArgumentError(f"payload {row} must be a mapping, not {type(raw).__name__}")
    fields = VECTOR_COLLECTIONS[collection]
    payload: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key or key == "point_id":
            raise InvalidArgumentError(
                f"payload {row}: key {key!r} is not allowed (a non-empty string other than point_id)"
            )
        kind = fields.get(key, "extra")
        if value is None:
            continue
        if kind == "datetime":
            payload[key] = _time_ns(value, key)
        elif kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= _INT64:
                raise InvalidArgumentError(f"payload {row}: {key}={value!r} must be an int64")
            payload[key] = value
        elif not isinstance(value, str):
            what = "a string" if kind == "keyword" else "a string (extra keys hold text)"
            raise InvalidArgumentError(f"payload {row}: {key}={value!r} must be {what}")
        else:
            payload[key] = value
    if not payload.get("model_id"):
        raise InvalidArgumentError(f"payload {row} has no model_id; every point names its model")
    return payload


def check_ids(ids: object) -> list[str]:
    """Point ids: a sequence of non-empty strings."""
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise InvalidArgumentError("ids must be a sequence of strings (a list, not one string)")
    for row, point_id in enumerate(ids):
        if not isinstance(point_id, str) or not point_id:
            raise InvalidArgumentError(f"id {row} ({point_id!r}) must be a non-empty string")
    return list(ids)


def check_delete(ids: Sequence[str] | None, where: VectorFilter | None) -> None:
    """``delete`` takes exactly one of ids and where."""
    if (ids is None) == (where is None):
        raise InvalidArgumentError("delete takes ids or where (VectorFilter() for all), not both")


def check_points(
    collection: object,
    ids: Sequence[str],
    vectors: object,
    payloads: Sequence[Mapping[str, Any]],
    dim: int,
) -> VectorBatch:
    """Checked points with unit vectors; a repeated id keeps its last row.

    Raises:
        InvalidArgumentError: an unknown collection, lengths that differ, an empty
            or non-string id, vectors of another size, NaN/inf or all-zero
            vectors, a payload field of the wrong type, or no model_id.
    """
    name = check_collection(collection)
    checked_ids = check_ids(ids)
    matrix = _matrix(vectors, dim, "vectors")
    if isinstance(payloads, Mapping) or not isinstance(payloads, Sequence):
        raise InvalidArgumentError("payloads must be a sequence of mappings, one per point")
    if not len(ids) == len(matrix) == len(payloads):
        raise InvalidArgumentError(
            f"{len(ids)} ids, {len(matrix)} vectors and {len(payloads)} payloads: "
            "give one of each per point"
        )
    last = {point_id: row for row, point_id in enumerate(checked_ids)}
    rows = list(last.values())
    return VectorBatch(
        ids=list(last),
        vectors=matrix[rows],
        payloads=[_payload(payloads[row], name, row) for row in rows],
    )


def check_filter(collection: str, where: VectorFilter | None) -> VectorFilter:
    """The filter, checked against the collection's fields (an empty one when None)."""
    if where is None:
        return VectorFilter()
    if not isinstance(where, VectorFilter):
        raise InvalidArgumentError(f"where must be a VectorFilter, not {type(where).__name__}")
    fields = VECTOR_COLLECTIONS[collection]
    for key, value in where.fields.items():
        kind = fields.get(key)
        if kind is None or kind == "datetime":
            usable = ", ".join(k for k, t in fields.items() if t != "datetime")
            raise InvalidArgumentError(
                f"cannot filter {collection} on {key!r}: use one of {usable} "
                "(and since_ns/until_ns for time)"
            )
        expected = int if kind == "integer" else str
        if isinstance(value, bool) or not isinstance(value, expected):
            raise InvalidArgumentError(
                f"filter {key}={value!r} must be {'an int' if kind == 'integer' else 'a string'}"
            )
    for name in ("since_ns", "until_ns"):
        bound = getattr(where, name)
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
            raise InvalidArgumentError(f"{name}={bound!r}: expected UTC nanoseconds (an int)")
    return where


def reference_points(
    model_id: str,
    vectors: object,
    *,
    dim: int,
    dataset_version: str,
    created_at_ns: int,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Ids and payloads for a model's reference set: one point per row, ``sample_index`` = row.

    Ids are ``model_id/dataset_version/row``, so uploading the same version
    again replaces it point for point.
    """
    if not isinstance(model_id, str) or not model_id:
        raise InvalidArgumentError(f"model_id={model_id!r}: expected a non-empty string")
    if not isinstance(dataset_version, str) or not dataset_version:
        raise InvalidArgumentError(
            f"dataset_version={dataset_version!r}: expected a non-empty string"
        )
    rows = len(_matrix(vectors, dim, "vectors"))
    ids = [f"{model_id}/{dataset_version}/{row}" for row in range(rows)]
    payloads: list[dict[str, Any]] = [
        {
            "model_id": model_id,
            "dataset_version": dataset_version,
            "created_at": created_at_ns,
            "sample_index": row,
        }
        for row in range(rows)
    ]
    return ids, payloads
