"""Kafka messages into rows, for ``pyflare worker``; what can't be read goes to dead letters.

A message from a PyFlare receiver (header ``pyflare.stage: received``) holds
rows that were masked, sampled and enriched already: it is decoded as it is,
with room for the attributes the encoder put back. Any other message (a
standard OpenTelemetry Collector's) is raw OTLP and gets what a receiver does:
PII masking while decoding, then the sampler (traces) and the enricher.
``_ingested_at`` is the message's timestamp.

Decoding has a fixed cost per call and a message holds one trace, so
:meth:`MessageReader.read_many` decodes the messages of a signal together:
serialized OTLP requests concatenated are one valid request (protobuf merges
repeated fields). Only when that fails, or rejects items, is each message
decoded on its own, which finds the one to dead-letter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pyflare_server.pipeline.enricher import Enricher
from pyflare_server.pipeline.kafka import STAGE_HEADER, STAGE_RECEIVED
from pyflare_server.pipeline.sampler import Sampler
from pyflare_server.receiver.decode import (
    DecodeError,
    DecodeLimits,
    Encoding,
    Signal,
    decode,
)
from pyflare_server.settings import ServerSettings

__all__ = [
    "ERROR_HEADER",
    "Decoded",
    "MessageReader",
    "dead_letter_headers",
]

#: Headers a dead-lettered message gets, besides its own.
ERROR_HEADER = "pyflare.error"
_STAGE_ERROR_HEADER = "pyflare.error.stage"
_SOURCE_HEADERS = ("pyflare.source.topic", "pyflare.source.partition", "pyflare.source.offset")
_MAX_ERROR_CHARS = 2000


@dataclass
class Decoded:
    """The rows of one message, or why it could not be read."""

    message: Any
    signal: Signal | None
    batch: pa.Table | None
    error: str = ""
    rejected: int = 0
    messages: list[Any] | None = None
    """Every message decoded into ``batch`` (None: just ``message``)."""

    def all_messages(self) -> list[Any]:
        return self.messages if self.messages is not None else [self.message]


class MessageReader:
    """Decodes consumed messages of PyFlare's topics into rows of their signal."""

    def __init__(self, settings: ServerSettings) -> None:
        kafka = settings.collector.kafka
        self.signals = {
            kafka.topics.traces: Signal.TRACES,
            kafka.topics.metrics: Signal.METRICS,
            kafka.topics.logs: Signal.LOGS,
        }
        self.limits = DecodeLimits()
        # The encoder adds back the promoted content attributes: a span at the
        # attribute limit must not lose entries on its second decode.
        self._received_limits = DecodeLimits(max_attributes=self.limits.max_attributes + 8)
        masker = settings.collector.pii.span_masker()
        self._mask: Callable[[dict[str, Any]], None] | None = (
            masker.mask_in_place if masker is not None else None
        )
        self.sampler = Sampler(settings.collector.sampling)
        self.enricher = Enricher(settings.collector.enricher)

    def read_many(self, messages: list[Any]) -> list[Decoded]:
        """The messages as rows: one :class:`Decoded` per signal and origin when they decode together."""
        groups: dict[tuple[Signal | None, bool], list[Any]] = {}
        for message in messages:
            signal = self.signals.get(message.topic())
            received = _header(message, STAGE_HEADER) == STAGE_RECEIVED
            if signal is None or message.value() is None:
                signal = None
            groups.setdefault((signal, received), []).append(message)
        out: list[Decoded] = []
        for (signal, received), group in groups.items():
            joined = None
            if signal is not None and len(group) > 1:
                joined = self._decode(
                    signal, b"".join(m.value() for m in group), received, group[0]
                )
            if joined is not None and joined.batch is not None and not joined.error:
                joined.messages = group
                out.append(joined)
            else:
                out += [self.read(message) for message in group]
        return out

    def read(self, message: Any) -> Decoded:
        """One consumed message as rows (``error`` set, no rows, when it can't be read)."""
        signal = self.signals.get(message.topic())
        if signal is None:
            return Decoded(message, None, None, f"no PyFlare signal is sent on {message.topic()}")
        value = message.value()
        if value is None:
            return Decoded(message, signal, None, "the message has no value (a tombstone)")
        received = _header(message, STAGE_HEADER) == STAGE_RECEIVED
        return self._decode(signal, value, received, message)

    def _decode(self, signal: Signal, value: bytes, received: bool, message: Any) -> Decoded:
        _, stamp = message.timestamp()
        ingested_ns = stamp * 1_000_000 if stamp and stamp > 0 else time.time_ns()
        try:
            decoded = decode(
                signal,
                value,
                Encoding.PROTOBUF,
                limits=self._received_limits if received else self.limits,
                mask_attributes=None if received else self._mask,
                ingested_at_ns=ingested_ns,
            )
        except DecodeError as exc:
            return Decoded(message, signal, None, str(exc))
        except Exception as exc:  # a decoder bug must not stop the worker
            return Decoded(message, signal, None, f"decoding failed: {type(exc).__name__}: {exc}")
        batch = decoded.batch
        if not received and batch.num_rows:
            if signal is Signal.TRACES:
                batch, _ = self.sampler.sample(batch)
            batch = self.enricher.enrich(signal, batch)
        return Decoded(message, signal, batch, decoded.error_message, decoded.rejected)


def _header(message: Any, name: str) -> bytes | None:
    for key, value in message.headers() or ():
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def dead_letter_headers(
    message: Any, error: str, stage: str
) -> list[tuple[str, str | bytes | None]]:
    """The message's own headers plus why and where it failed."""
    headers: list[tuple[str, str | bytes | None]] = list(message.headers() or ())
    values: Sequence[str] = (message.topic(), str(message.partition()), str(message.offset()))
    headers += [
        (ERROR_HEADER, error[:_MAX_ERROR_CHARS].encode("utf-8", "replace")),
        (_STAGE_ERROR_HEADER, stage.encode()),
        *((key, value.encode()) for key, value in zip(_SOURCE_HEADERS, values, strict=True)),
    ]
    return headers
