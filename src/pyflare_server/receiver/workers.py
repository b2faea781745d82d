"""Decoding in worker processes, so the server's own interpreter stays free.

Decoding OTLP is pure Python work, and so is much of a DuckDB insert from Arrow
(its Arrow scan holds the GIL): in one process they take turns on one core.
With ``decode_workers`` > 0 the receivers hand each body to a worker process,
which decodes it (ML fields, PII masking, limits) and sends the rows back as
Arrow IPC; the server process is left with HTTP, gRPC and the store.

Workers are started with ``forkserver`` (never ``fork``: the server has
threads by then). A worker that dies is replaced and the request in hand is
answered 503, so the client retries; nothing already stored is affected.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pyarrow as pa

from pyflare.errors import PyFlareError
from pyflare.records import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from pyflare_server.pipeline.enricher import Enricher
from pyflare_server.receiver.decode import Decoded, DecodeLimits, Encoding, Signal, decode
from pyflare_server.settings import EnricherSettings, PiiSettings

__all__ = ["DecodePool", "WorkerError"]

logger = logging.getLogger(__name__)


class WorkerError(PyFlareError):
    """A decode worker died while handling a request (the client should retry)."""


# Set in each worker by _init_worker.
_WORKER: dict[str, Any] = {}


def _init_worker(limits: DecodeLimits, pii: PiiSettings, enricher: EnricherSettings) -> None:
    masker = pii.span_masker()
    _WORKER["limits"] = limits
    _WORKER["mask"] = masker.mask_in_place if masker is not None else None
    _WORKER["enricher"] = Enricher(enricher)


# Each signal's rows have a fixed schema, so only the record batch travels back
# (reading a whole IPC stream parses the nested schema again every time).
_SCHEMAS = {Signal.TRACES: SPAN_SCHEMA, Signal.METRICS: METRIC_SCHEMA, Signal.LOGS: LOG_SCHEMA}


def _decode_in_worker(
    signal: Signal, body: bytes, encoding: Encoding
) -> tuple[bytes | None, int, str]:
    decoded = decode(
        signal, body, encoding, limits=_WORKER["limits"], mask_attributes=_WORKER["mask"]
    )
    batch = _WORKER["enricher"].enrich(signal, decoded.batch)
    data = None
    if batch.num_rows:
        schema = _SCHEMAS[signal]
        if batch.schema != schema:
            batch = batch.cast(schema)
        data = batch.combine_chunks().to_batches()[0].serialize()
    return (None if data is None else data.to_pybytes()), decoded.rejected, decoded.error_message


def _ready() -> int:
    return os.getpid()


class DecodePool:
    """``workers`` processes that decode OTLP bodies."""

    def __init__(
        self,
        workers: int,
        limits: DecodeLimits,
        pii: PiiSettings,
        enricher: EnricherSettings,
    ) -> None:
        """Rows come back decoded, masked and enriched (the enricher's work is per row too)."""
        if workers < 1:
            raise ValueError(f"a decode pool needs at least one worker, got {workers}")
        self.workers = workers
        self._limits = limits
        self._pii = pii
        self._enricher = enricher
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_init_worker,
            initargs=(self._limits, self._pii, self._enricher),
        )

    async def start(self) -> None:
        """Start every worker now rather than on the first request."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._pool, _ready) for _ in range(self.workers))
        )

    async def decode(self, signal: Signal, body: bytes, encoding: Encoding) -> Decoded:
        loop = asyncio.get_running_loop()
        pool = self._pool
        try:
            data, rejected, message = await loop.run_in_executor(
                pool, _decode_in_worker, signal, body, encoding
            )
        except BrokenProcessPool:
            if self._pool is pool:
                logger.error("a PyFlare decode worker died; starting a new pool")
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            raise WorkerError(
                "the decode worker handling this request stopped; retry the request"
            ) from None
        schema = _SCHEMAS[signal]
        batch = (
            schema.empty_table()
            if data is None
            else pa.Table.from_batches([pa.ipc.read_record_batch(pa.py_buffer(data), schema)])
        )
        return Decoded(signal=signal, batch=batch, rejected=rejected, error_message=message)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
