"""The scaled mode's queue: receivers produce OTLP protobuf to Kafka, workers consume it.

:class:`KafkaQueue` is the :class:`~pyflare_server.pipeline.queue.SpanQueue` of
a receiver when ``collector.kafka.brokers`` is set. ``put`` encodes the rows as
the OpenTelemetry Collector's Kafka exporter would with
``partition_traces_by_id`` (see :mod:`._kafka_otlp`: one message per trace,
keyed by the trace id in hex; metrics and logs one message per resource),
produces them to the signal's topic and returns once the brokers acknowledged
every message (``acks=all``, idempotent producer, lz4, ``linger.ms`` ~5), so
the receiver's 200 still means durable. ``pyflare worker``
(:mod:`pyflare_server.worker`) runs the processors and writes the store.

Messages from PyFlare's receivers carry the header ``pyflare.stage: received``
(their rows were masked, sampled and enriched already); a worker treats
messages without it, from standard Collectors, as raw OTLP.

Failures a receiver maps (nothing taken is ever dropped silently):

- the producer's local buffer is full: :class:`QueueFull` (HTTP 429 +
  Retry-After); messages of the batch already handed over may still arrive,
  and the client's retry makes duplicates the idempotent store absorbs.
- a message not acknowledged within ``delivery_timeout_s`` (brokers down or
  unreachable, topic missing): :class:`PipelineError` (HTTP 503 + Retry-After).
- after a failed put or a fatal producer error (a broker lost the idempotent
  producer's state, say) the next put starts a new producer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pyflare.errors import InvalidArgumentError
from pyflare_server.pipeline._kafka_otlp import (
    Message,
    encode_logs,
    encode_metrics,
    encode_spans,
)
from pyflare_server.pipeline._kafka_topics import KafkaError, ensure_topics
from pyflare_server.pipeline.queue import PipelineError, QueueFull
from pyflare_server.settings import KafkaSettings
from pyflare_server.telemetry import SIGNALS, ServerTelemetry

if TYPE_CHECKING:
    import pyarrow as pa

    from pyflare_server.receiver.decode import Signal

__all__ = ["STAGE_HEADER", "STAGE_RECEIVED", "KafkaError", "KafkaQueue", "producer_config"]

logger = logging.getLogger(__name__)

#: The header marking messages whose rows a PyFlare receiver prepared already.
STAGE_HEADER = "pyflare.stage"
STAGE_RECEIVED = b"received"

# Batches this large are encoded off the event loop.
_ENCODE_INLINE_ROWS = 256
_TOPIC_RETRY_S = 5.0
_ENCODERS: dict[str, Callable[[pa.Table], list[Message]]] = {
    "traces": encode_spans,
    "metrics": encode_metrics,
    "logs": encode_logs,
}


def producer_config(
    kafka: KafkaSettings, *, delivery_timeout_s: float, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """librdkafka settings of the receivers' producer (``extra`` wins)."""
    producer = kafka.producer
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(kafka.brokers),
        "client.id": "pyflare-receiver",
        "acks": producer.acks,
        "enable.idempotence": producer.acks == "all",
        "compression.type": producer.compression,
        "linger.ms": producer.linger_ms,
        "batch.size": producer.batch_size,
        "message.timeout.ms": max(1, int(delivery_timeout_s * 1000)),
        # librdkafka's own log lines go through logging, not stderr.
        "logger": logging.getLogger("pyflare_server.kafka.producer"),
    }
    config.update(extra or {})
    return config


class _Delivery:
    """The outcome of one put: resolved when every message is acknowledged or one fails."""

    __slots__ = ("error", "future", "left", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, messages: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.left = messages
        self.error: str | None = None

    def report(self, error: Any, message: Any) -> None:
        """librdkafka's delivery callback (in the poll thread)."""
        if error is not None and self.error is None:
            self.error = str(error)
            self.loop.call_soon_threadsafe(self._settle)
            return
        self.left -= 1
        if self.left == 0:
            self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if self.future.done():
            return
        if self.error is not None:
            self.future.set_exception(
                PipelineError(f"Kafka did not acknowledge the batch: {self.error}")
            )
        else:
            self.future.set_result(None)


class KafkaQueue:
    """:class:`~pyflare_server.pipeline.queue.SpanQueue` onto Kafka topics.

    ``client_config`` adds or overrides librdkafka settings; ``create_topics``
    makes the topics at start (retried in the background while the brokers
    are unreachable: the receiver starts anyway and answers 503 meanwhile).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        telemetry: ServerTelemetry | None = None,
        delivery_timeout_s: float = 10.0,
        create_topics: bool = True,
        client_config: Mapping[str, Any] | None = None,
    ) -> None:
        if not kafka.brokers:
            raise InvalidArgumentError(
                "KafkaQueue needs collector.kafka.brokers (host:port of one broker or more)"
            )
        self.kafka = kafka
        self.telemetry = telemetry if telemetry is not None else ServerTelemetry()
        self.delivery_timeout_s = delivery_timeout_s
        self._config = producer_config(
            kafka, delivery_timeout_s=delivery_timeout_s, extra=client_config
        )
        self._create_topics = create_topics
        self._topics = {
            "traces": kafka.topics.traces,
            "metrics": kafka.topics.metrics,
            "logs": kafka.topics.logs,
        }
        self._producer: Any = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._topics_task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._closing = False
        self._fatal: str | None = None

    # -- the SpanQueue protocol ----------------------------------------------

    async def put(self, signal: Signal, batch: pa.Table) -> None:
        if signal not in _ENCODERS:
            raise InvalidArgumentError(f"unknown signal {signal!r}; expected one of {SIGNALS}")
        if self._closing:
            raise PipelineError("the pipeline is shutting down and takes no more data")
        rows = batch.num_rows
        if rows == 0:
            return
        if self._fatal is not None:
            await self._replace_producer()
        await self.start()
        encode = _ENCODERS[signal]
        if rows > _ENCODE_INLINE_ROWS:
            messages = await asyncio.to_thread(encode, batch)
        else:
            messages = encode(batch)
        self._in_flight += rows
        self.telemetry.queue_depth.set(self._in_flight)
        try:
            await self._produce(self._topics[signal], messages)
        finally:
            self._in_flight -= rows
            self.telemetry.queue_depth.set(self._in_flight)

    def depth(self) -> int:
        return self._in_flight

    async def start(self) -> None:
        """Create the producer and its poll thread; set up the topics (idempotent)."""
        if self._producer is not None:
            return
        from confluent_kafka import Producer

        self._producer = Producer({**self._config, "error_cb": self._on_error})
        self._stop = threading.Event()
        self._poller = threading.Thread(
            target=self._poll, name="pyflare-kafka-producer", daemon=True
        )
        self._poller.start()
        if self._create_topics and self._topics_task is None:
            self._topics_task = asyncio.get_running_loop().create_task(
                self._setup_topics(), name="pyflare-kafka-topics"
            )

    async def close(self) -> None:
        """Take nothing more; wait for what was produced to be acknowledged (or time out)."""
        self._closing = True
        if self._topics_task is not None:
            self._topics_task.cancel()
            self._topics_task = None
        producer = self._producer
        if producer is None:
            return
        left = await asyncio.to_thread(producer.flush, self.delivery_timeout_s)
        if left:
            logger.warning("%d Kafka messages unacknowledged at shutdown", left)
        self._stop.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
        self._producer = None

    # -- producing -------------------------------------------------------------

    async def _produce(self, topic: str, messages: list[Message]) -> None:
        delivery = _Delivery(asyncio.get_running_loop(), len(messages))
        produce = self._producer.produce
        headers = [(STAGE_HEADER, STAGE_RECEIVED)]
        for key, value in messages:
            try:
                produce(topic, value, key, headers=headers, on_delivery=delivery.report)
            except BufferError:
                raise QueueFull(
                    "the Kafka producer's buffer is full (the brokers are slow or down); "
                    "retry shortly",
                    retry_after_s=1.0,
                ) from None
            except Exception as exc:  # KafkaException: a message too large, bad topic…
                raise PipelineError(f"Kafka refused a message for {topic}: {exc}") from exc
        # The poll thread serves the callbacks; wake librdkafka's sender now.
        self._producer.poll(0)
        try:
            await delivery.future
        except PipelineError as exc:
            # After an outage an idempotent producer may be stuck on state the
            # brokers lost: the next put starts afresh.
            self._fatal = str(exc)
            raise

    def _poll(self) -> None:
        producer = self._producer
        stop = self._stop
        while not stop.is_set():
            try:
                producer.poll(0.05)
            except Exception as exc:  # a fatal error surfaces here too
                self._fatal = str(exc)
                stop.wait(0.05)

    def _on_error(self, error: Any) -> None:
        if error.fatal():
            logger.error("the Kafka producer failed and will be replaced: %s", error)
            self._fatal = str(error)

    async def _replace_producer(self) -> None:
        """Drop a producer in a fatal state (its waiting puts fail) and start a new one."""
        old, poller, stop = self._producer, self._poller, self._stop
        self._producer = None
        self._fatal = None
        if old is not None:

            def release() -> None:
                try:
                    old.purge()
                    old.flush(1)
                except Exception as exc:
                    logger.debug("releasing the failed producer: %s", exc)
                stop.set()
                if poller is not None:
                    poller.join()

            await asyncio.to_thread(release)
        await self.start()

    async def _setup_topics(self) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self._config["bootstrap.servers"]})
        while True:
            try:
                await asyncio.to_thread(ensure_topics, admin, self.kafka.topics)
                return
            except KafkaError as exc:
                logger.warning(
                    "Kafka topics not ready (%s); retrying in %.0f s", exc, _TOPIC_RETRY_S
                )
            await asyncio.sleep(_TOPIC_RETRY_S)
