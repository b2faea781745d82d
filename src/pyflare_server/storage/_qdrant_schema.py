"""How PyFlare's vector collections look in Qdrant: creation settings, ids, payload times."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from qdrant_client import models

from pyflare.store.vectors import (
    INFERENCE_EMBEDDINGS,
    VECTOR_COLLECTIONS,
    check_collection,
    check_dim,
)

__all__ = [
    "POINT_ID",
    "collection_config",
    "from_rfc3339",
    "microseconds",
    "point_uuid",
    "rfc3339",
]

HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
INDEXING_THRESHOLD = 20_000
POINT_ID = "point_id"
# Point ids are UUID5s of the user's ids in this namespace.
_ID_NAMESPACE = uuid.UUID("5d0c2f0e-7c1a-5b57-9a55-70797f6c6172")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SCHEMA_TYPES = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "datetime": models.PayloadSchemaType.DATETIME,
}


def collection_config(collection: str, dim: int) -> dict[str, Any]:
    """The arguments the collection is created with, and its payload indexes.

    Keys: vectors_config, hnsw_config, optimizers_config (``create_collection``
    keyword arguments) and payload_indexes (field → schema type).
    """
    name = check_collection(collection)
    return {
        "vectors_config": models.VectorParams(size=check_dim(dim), distance=models.Distance.COSINE),
        "hnsw_config": models.HnswConfigDiff(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT),
        "optimizers_config": (
            models.OptimizersConfigDiff(indexing_threshold=INDEXING_THRESHOLD)
            if name == INFERENCE_EMBEDDINGS
            else None
        ),
        "payload_indexes": {
            key: _SCHEMA_TYPES[kind] for key, kind in VECTOR_COLLECTIONS[name].items()
        },
    }


def point_uuid(point_id: str) -> str:
    """The Qdrant id of a point id."""
    return str(uuid.uuid5(_ID_NAMESPACE, point_id))


def rfc3339(ns: int) -> str:
    return (_EPOCH + dt.timedelta(microseconds=ns // 1000)).isoformat().replace("+00:00", "Z")


def from_rfc3339(text: str) -> int:
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def microseconds(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)
