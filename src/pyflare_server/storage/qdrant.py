"""The scaled mode's vector store: Qdrant, through ``qdrant-client``.

The spec's collections (§4.2), created when missing: ``inference_embeddings``
and ``reference_embeddings``, vectors of the configured size compared by cosine,
HNSW with m=16 and ef_construct=100, ``indexing_threshold`` 20000 for the
inference collection, and a payload index per field (keyword, integer,
datetime). An existing collection must have the same size and distance.

Qdrant ids are integers or UUIDs, so a point's id (any string) becomes a UUID5
of it and is kept in the payload as ``point_id``; datetime fields travel as
RFC 3339 strings (microseconds, UTC). Upserts go in batches of ``batch_size``
points and wait for Qdrant's acknowledgement. A server answers searches from
its HNSW index (approximate, tuned by ``hnsw_ef``); local mode
(``qdrant+local:///path``, used by the tests) scans exactly, and has no payload
indexes (creating them there is a no-op).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from pyflare.errors import InvalidArgumentError, StoreError
from pyflare.store.vectors import (
    TIME_FIELDS,
    VECTOR_COLLECTIONS,
    VectorBatch,
    VectorFilter,
    VectorHit,
    check_collection,
    check_delete,
    check_dim,
    check_filter,
    check_ids,
    check_limit,
    check_points,
    check_query_vector,
    check_query_vectors,
    time_bounds_us,
)
from pyflare_server.storage._qdrant_local import check_not_in_use
from pyflare_server.storage._qdrant_schema import (
    POINT_ID,
    collection_config,
    from_rfc3339,
    microseconds,
    point_uuid,
    rfc3339,
)
from pyflare_server.storage.urls import BackendURL, QdrantLocalURL, QdrantURL

__all__ = ["QdrantVectorStore", "collection_config"]

DEFAULT_BATCH_SIZE = 256
# Random sampling (SampleQuery) came in Qdrant 1.11.
MIN_SERVER_VERSION = (1, 11)
_LOCAL_INDEX_WARNING = "Payload indexes have no effect in the local Qdrant"
_T = TypeVar("_T")

logger = logging.getLogger(__name__)


class QdrantVectorStore:
    """:class:`~pyflare.store.base.VectorStore` on Qdrant (a server, or local mode)."""

    def __init__(
        self,
        client: QdrantClient,
        *,
        dim: int,
        where: str,
        local: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._dim = check_dim(dim)
        self._client = client
        self._where_text = where
        self._local = local
        self._batch_size = check_limit(batch_size, "batch_size")
        self._lock = threading.Lock()
        self._closed = False
        try:
            if not local:
                self._check_version()
            for name in VECTOR_COLLECTIONS:
                self._ensure_collection(name)
        except BaseException:
            self._closed = True
            client.close()
            raise

    @classmethod
    def open(
        cls,
        url: BackendURL,
        *,
        dim: int,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout_s: int = 10,
    ) -> QdrantVectorStore:
        """Connect to what a ``qdrant://`` / ``qdrants://`` / ``qdrant+local://`` URL names.

        Raises:
            StoreError: the server can't be reached, the local directory is in use
                by another client, or a collection exists with another vector size.
        """
        check_dim(dim)
        try:
            if isinstance(url, QdrantLocalURL):
                if url.path == ":memory:":
                    client = QdrantClient(location=":memory:")
                else:
                    check_not_in_use(url)
                    client = QdrantClient(path=url.path)
                return cls(client, dim=dim, where=str(url), local=True, batch_size=batch_size)
            if isinstance(url, QdrantURL):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    # The version is checked in __init__ (a clear error), not in
                    # qdrant-client's background thread (a warning).
                    client = QdrantClient(
                        url=url.http_url,
                        api_key=url.api_key,
                        timeout=timeout_s,
                        check_compatibility=False,
                    )
                for warning in caught:  # e.g. an API key sent over plain HTTP
                    logger.warning("Qdrant at %s: %s", url, warning.message)
                return cls(client, dim=dim, where=str(url), batch_size=batch_size)
        except (RuntimeError, OSError, ValueError) as exc:
            if isinstance(exc, InvalidArgumentError):
                raise
            raise StoreError(f"cannot open the Qdrant vector store {url}: {exc}") from exc
        raise InvalidArgumentError(f"{url} is not a Qdrant URL (qdrant://host:6333)")

    # -- setup -------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], _T]) -> _T:
        """Run a client call, translating its failures into ``StoreError``."""
        with self._lock:
            if self._closed:
                raise StoreError(f"the vector store {self._where_text} is closed")
            try:
                return call()
            except (UnexpectedResponse, ResponseHandlingException, RuntimeError, OSError) as exc:
                raise StoreError(f"Qdrant at {self._where_text}: cannot {what}: {exc}") from exc
            except ValueError as exc:  # local mode reports bad requests this way
                raise StoreError(f"Qdrant at {self._where_text}: cannot {what}: {exc}") from exc

    def _check_version(self) -> None:
        version = self._call("read the server version", lambda: self._client.info().version)
        parts = version.split(".")
        try:
            major, minor = int(parts[0]), int(parts[1])
        except (IndexError, ValueError):
            logger.warning("Qdrant at %s reports version %r", self._where_text, version)
            return
        if (major, minor) < MIN_SERVER_VERSION:
            wanted = ".".join(map(str, MIN_SERVER_VERSION))
            raise StoreError(
                f"Qdrant at {self._where_text} is version {version}; PyFlare needs {wanted} or "
                "later (the query API and random sampling)"
            )

    def _ensure_collection(self, name: str) -> None:
        config = collection_config(name, self._dim)
        if self._call(f"look up {name}", lambda: self._client.collection_exists(name)):
            self._check_existing(name)
            return
        self._call(
            f"create {name}",
            lambda: self._client.create_collection(
                name,
                vectors_config=config["vectors_config"],
                hnsw_config=config["hnsw_config"],
                optimizers_config=config["optimizers_config"],
            ),
        )
        for key, schema in config["payload_indexes"].items():
            with self._local_index_warning():
                self._call(
                    f"index {name}.{key}",
                    partial(
                        self._client.create_payload_index,
                        name,
                        key,
                        field_schema=schema,
                        wait=True,
                    ),
                )

    @contextmanager
    def _local_index_warning(self) -> Iterator[None]:
        # Local mode has no payload indexes and says so with a UserWarning; the
        # call is made anyway so the same code runs against a server.
        with warnings.catch_warnings():
            if self._local:
                warnings.filterwarnings("ignore", message=_LOCAL_INDEX_WARNING)
            yield

    def _check_existing(self, name: str) -> None:
        info = self._call(f"read {name}", lambda: self._client.get_collection(name))
        params = info.config.params.vectors
        if not isinstance(params, models.VectorParams):
            raise StoreError(
                f"Qdrant at {self._where_text}: {name} has named vectors; PyFlare needs one "
                "unnamed vector per point (drop the collection or use another Qdrant)"
            )
        if params.size != self._dim or params.distance != models.Distance.COSINE:
            raise StoreError(
                f"Qdrant at {self._where_text}: {name} holds {params.size}-dimensional "
                f"{params.distance.value} vectors, not {self._dim}-dimensional Cosine ones; "
                "configure that size, or drop the collection"
            )

    # -- the VectorStore methods ---------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: Any,
        payloads: Sequence[Mapping[str, Any]],
    ) -> int:
        batch = check_points(collection, ids, vectors, payloads, self._dim)
        datetimes = [k for k, kind in VECTOR_COLLECTIONS[collection].items() if kind == "datetime"]
        for start in range(0, len(batch.ids), self._batch_size):
            stop = start + self._batch_size
            chunk_ids = batch.ids[start:stop]
            chunk_payloads = []
            for point_id, payload in zip(chunk_ids, batch.payloads[start:stop], strict=True):
                stored = dict(payload)
                for key in datetimes:
                    if key in stored:
                        stored[key] = rfc3339(stored[key])
                stored[POINT_ID] = point_id
                chunk_payloads.append(stored)
            points = models.Batch(
                ids=[point_uuid(point_id) for point_id in chunk_ids],
                vectors=batch.vectors[start:stop].tolist(),
                payloads=chunk_payloads,
            )
            self._call(
                f"upsert into {collection}",
                partial(self._client.upsert, collection, points=points, wait=True),
            )
        return len(batch.ids)

    def search(
        self,
        collection: str,
        vector: Any,
        *,
        limit: int = 10,
        where: VectorFilter | None = None,
    ) -> list[VectorHit]:
        name = check_collection(collection)
        query = check_query_vector(vector, self._dim)
        check_limit(limit)
        condition = self._filter(name, where)
        answer = self._call(
            f"search {name}",
            lambda: self._client.query_points(
                name, query=query.tolist(), limit=limit, query_filter=condition, with_payload=True
            ),
        )
        return self._hits(name, answer.points)

    def search_batch(
        self,
        collection: str,
        vectors: Any,
        *,
        limit: int = 10,
        where: VectorFilter | None = None,
    ) -> list[list[VectorHit]]:
        name = check_collection(collection)
        queries = check_query_vectors(vectors, self._dim)
        check_limit(limit)
        condition = self._filter(name, where)
        requests = [
            models.QueryRequest(query=row, limit=limit, filter=condition, with_payload=True)
            for row in queries.tolist()
        ]
        answers = self._call(
            f"search {name}",
            lambda: self._client.query_batch_points(name, requests=requests),
        )
        return [self._hits(name, answer.points) for answer in answers]

    def sample(self, collection: str, n: int, *, where: VectorFilter | None = None) -> VectorBatch:
        name = check_collection(collection)
        check_limit(n, "n")
        condition = self._filter(name, where)
        answer = self._call(
            f"sample {name}",
            lambda: self._client.query_points(
                name,
                query=models.SampleQuery(sample=models.Sample.RANDOM),
                limit=n,
                query_filter=condition,
                with_payload=True,
                with_vectors=True,
            ),
        )
        return self._batch(name, answer.points)

    def get(self, collection: str, ids: Sequence[str]) -> VectorBatch:
        name = check_collection(collection)
        wanted = check_ids(ids)
        records = self._call(
            f"read {name}",
            lambda: self._client.retrieve(
                name,
                ids=[point_uuid(point_id) for point_id in dict.fromkeys(wanted)],
                with_payload=True,
                with_vectors=True,
            ),
        )
        found = self._batch(name, records)
        return found.in_order(wanted)

    def count(self, collection: str, *, where: VectorFilter | None = None) -> int:
        name = check_collection(collection)
        condition = self._filter(name, where)
        answer = self._call(
            f"count {name}",
            lambda: self._client.count(name, count_filter=condition, exact=True),
        )
        return int(answer.count)

    def delete(
        self,
        collection: str,
        *,
        ids: Sequence[str] | None = None,
        where: VectorFilter | None = None,
    ) -> int:
        name = check_collection(collection)
        check_delete(ids, where)
        selector: models.PointIdsList | models.FilterSelector
        if ids is not None:
            present = len(self.get(name, check_ids(ids)))
            uuids = [point_uuid(point_id) for point_id in dict.fromkeys(ids)]
            selector = models.PointIdsList(points=list(uuids))
        else:
            condition = self._filter(name, where) or models.Filter()
            present = self.count(name, where=where)
            selector = models.FilterSelector(filter=condition)
        if present:
            self._call(
                f"delete from {name}",
                lambda: self._client.delete(name, points_selector=selector, wait=True),
            )
        return present

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._client.close()

    def __enter__(self) -> QdrantVectorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"QdrantVectorStore({self._where_text!r}, dim={self._dim})"

    # -- helpers ---------------------------------------------------------------------

    def _filter(self, collection: str, where: VectorFilter | None) -> models.Filter | None:
        checked = check_filter(collection, where)
        must: list[models.Condition] = [
            models.FieldCondition(key=key, match=models.MatchValue(value=value))
            for key, value in sorted(checked.fields.items())
        ]
        since, until = time_bounds_us(checked)
        if since is not None or until is not None:
            must.append(
                models.FieldCondition(
                    key=TIME_FIELDS[collection],
                    range=models.DatetimeRange(
                        gte=None if since is None else microseconds(since),
                        lt=None if until is None else microseconds(until),
                    ),
                )
            )
        return models.Filter(must=must) if must else None

    def _payload(
        self, collection: str, raw: Mapping[str, Any] | None
    ) -> tuple[str, dict[str, Any]]:
        payload = dict(raw or {})
        point_id = str(payload.pop(POINT_ID, ""))
        for key, kind in VECTOR_COLLECTIONS[collection].items():
            if kind == "datetime" and isinstance(payload.get(key), str):
                payload[key] = from_rfc3339(payload[key])
        return point_id, payload

    def _hits(self, collection: str, points: Sequence[models.ScoredPoint]) -> list[VectorHit]:
        hits = []
        for point in points:
            point_id, payload = self._payload(collection, point.payload)
            hits.append(VectorHit(id=point_id, score=float(point.score), payload=payload))
        # Best first; ties by id, as the DuckDB store orders them.
        hits.sort(key=lambda hit: (-hit.score, hit.id))
        return hits

    def _batch(
        self, collection: str, points: Sequence[models.ScoredPoint | models.Record]
    ) -> VectorBatch:
        ids: list[str] = []
        payloads: list[dict[str, Any]] = []
        rows: list[Any] = []
        for point in points:
            point_id, payload = self._payload(collection, point.payload)
            ids.append(point_id)
            payloads.append(payload)
            rows.append(point.vector)
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), self._dim)
        return VectorBatch(ids=ids, vectors=vectors, payloads=payloads)
