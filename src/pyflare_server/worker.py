"""``pyflare worker``: Kafka → the processors → the store, as one consumer group.

Each round takes up to ``collector.kafka.consumer.max_batch_spans`` messages
(waiting at most ``max_wait_ms``), decodes them (:mod:`.pipeline._kafka_messages`),
runs the processor chain of the local pipeline (cost, then drift:
:func:`processors_for`) per signal, writes the store, and only then commits
the offsets of those messages: at-least-once. A store write that fails is
retried with exponential backoff (``retry_initial_s`` doubling up to
``retry_max_s``) and nothing is committed meanwhile; the store's writes are
idempotent, so a batch written twice (a retry after a write that did land, or
a worker killed before its commit) never shows twice in query results.

A message that can't be decoded, or whose rows make a processor fail, goes to
the dead-letter topic with the error in its headers (``pyflare.error``,
``pyflare.error.stage``, ``pyflare.source.topic/partition/offset``) and is
committed: the worker moves on. Offsets processed and not yet committed are
committed when partitions are revoked.

Self-metrics (:class:`WorkerTelemetry`) include ``pyflare_worker_consumer_lag``
per topic and partition, from librdkafka's statistics; ``pyflare worker``
serves them at ``/metrics`` on ``--metrics-port``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pyflare_server.pipeline._kafka_messages import Decoded, MessageReader, dead_letter_headers
from pyflare_server.pipeline._kafka_telemetry import WorkerTelemetry, lag_from_stats
from pyflare_server.pipeline._kafka_topics import KafkaError
from pyflare_server.pipeline.processors import Processor, run_processors
from pyflare_server.settings import ServerSettings

if TYPE_CHECKING:
    from pyflare.store.base import SpanStore

__all__ = ["Worker", "processors_for"]

logger = logging.getLogger(__name__)

_WRITERS = {"traces": "write", "metrics": "write_metrics", "logs": "write_logs"}


class _Stopped(Exception):
    """The worker was stopped while retrying; the round is left uncommitted."""


def processors_for(settings: ServerSettings, store: SpanStore) -> list[Processor]:
    """The local pipeline's processor chain: cost (when enabled), then drift (when set up)."""
    from pyflare_server.pipeline.cost import cost_stage
    from pyflare_server.pipeline.drift import drift_processor

    chain = (
        cost_stage(settings.collector.cost, store),
        drift_processor(settings.collector.drift, store),
    )
    return [processor for processor in chain if processor is not None]


def consumer_config(
    settings: ServerSettings, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """librdkafka settings of the workers' consumer (``extra`` wins)."""
    kafka = settings.collector.kafka
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(kafka.brokers),
        "group.id": kafka.consumer.group_id,
        "client.id": "pyflare-worker",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": kafka.consumer.session_timeout_ms,
        "statistics.interval.ms": 5000,
        "logger": logging.getLogger("pyflare_server.kafka.consumer"),
    }
    config.update(extra or {})
    return config


class Worker:
    """One member of the consumer group (see the module docstring)."""

    def __init__(
        self,
        settings: ServerSettings,
        store: SpanStore,
        *,
        processors: Sequence[Processor] | None = None,
        telemetry: WorkerTelemetry | None = None,
        consumer_extra: Mapping[str, Any] | None = None,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        from confluent_kafka import Consumer, Producer

        kafka = settings.collector.kafka
        if not kafka.brokers:
            from pyflare.errors import ConfigError

            raise ConfigError(
                "pyflare worker needs collector.kafka.brokers (host:port of one broker or more)"
            )
        self.settings = settings
        self.store = store
        self.processors = tuple(
            processors if processors is not None else processors_for(settings, store)
        )
        self.telemetry = telemetry if telemetry is not None else WorkerTelemetry()
        self.reader = MessageReader(settings)
        self.max_messages = kafka.consumer.max_batch_spans
        self.max_wait_s = kafka.consumer.max_wait_ms / 1000
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.dead_letter_topic = kafka.topics.dead_letter
        config = consumer_config(settings, consumer_extra)
        config["stats_cb"] = self._on_stats
        self._consumer: Any = Consumer(config)
        self._dead_letters = Producer(
            {
                "bootstrap.servers": config["bootstrap.servers"],
                "client.id": "pyflare-worker-dead-letters",
                "acks": "all",
                "enable.idempotence": True,
                "logger": config["logger"],
            }
        )
        self._pending: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._consumer.subscribe(list(self.reader.signals), on_revoke=self._on_revoke)

    # -- running -----------------------------------------------------------------

    def run(self) -> None:
        """Consume until :meth:`stop`; then commit what was stored and leave the group."""
        try:
            while not self._stop.is_set():
                self.run_once()
        except _Stopped:
            pass
        finally:
            self.close()

    def stop(self) -> None:
        """Finish the current round, then leave (safe from a signal handler or thread)."""
        self._stop.set()

    def run_once(self) -> int:
        """One round: consume, store, commit. Returns the messages consumed."""
        messages = self._consumer.consume(self.max_messages, self.max_wait_s)
        usable = []
        for message in messages:
            error = message.error()
            if error is None:
                usable.append(message)
            elif error.fatal():
                raise KafkaError(f"the Kafka consumer failed: {error}")
            else:
                logger.debug("consumer event: %s", error)
        if not usable:
            return 0
        self.telemetry.consumed.inc(len(usable))
        self._handle(usable)
        self._commit()
        return len(usable)

    def close(self) -> None:
        """Commit what was stored, leave the group and release the clients (idempotent)."""
        if self._consumer is None:
            return
        try:
            self._commit()
        finally:
            self._consumer.close()
            self._consumer = None
            self._dead_letters.flush(10)

    # -- one round -----------------------------------------------------------------

    def _handle(self, messages: list[Any]) -> None:
        decoded = self.reader.read_many(messages)
        poison = [d for d in decoded if d.batch is None or (d.error and not d.batch.num_rows)]
        for item in decoded:
            if item.rejected and item.batch is not None and item.batch.num_rows:
                self.telemetry.rejected.inc(item.rejected)
                logger.warning("stored a message's valid items only: %s", item.error)
        good = [d for d in decoded if d not in poison]
        by_signal: dict[str, list[Decoded]] = {}
        for item in good:
            assert item.signal is not None
            by_signal.setdefault(item.signal.value, []).append(item)
        for signal, items in by_signal.items():
            poison += self._store_signal(signal, items)
        if poison:
            self._dead_letter(poison)
        for message in messages:
            key = (message.topic(), message.partition())
            self._pending[key] = max(self._pending.get(key, 0), message.offset() + 1)

    def _store_signal(self, signal: str, items: list[Decoded]) -> list[Decoded]:
        """Process and store one signal's rows; returns the items a processor failed on."""
        tables = [item.batch for item in items if item.batch is not None and item.batch.num_rows]
        if not tables:
            return []
        try:
            table = run_processors(self.processors, signal, _concat(tables))  # type: ignore[arg-type]
            failed: list[Decoded] = []
        except Exception as exc:
            logger.warning("a processor failed (%s); trying each message alone", exc)
            table, failed = self._process_each(signal, items)
        if table is not None and table.num_rows:
            self._write(signal, table)
        return failed

    def _process_each(
        self, signal: str, items: list[Decoded]
    ) -> tuple[pa.Table | None, list[Decoded]]:
        kept: list[pa.Table] = []
        failed: list[Decoded] = []
        # Messages decoded together are processed one by one, to find the bad one.
        items = [self.reader.read(m) for item in items for m in item.all_messages()]
        for item in items:
            if item.batch is None or not item.batch.num_rows:
                continue
            try:
                kept.append(run_processors(self.processors, signal, item.batch))  # type: ignore[arg-type]
            except Exception as exc:
                item.error = f"processing failed: {type(exc).__name__}: {exc}"
                item.batch = None
                failed.append(item)
        return (_concat(kept) if kept else None), failed

    def _write(self, signal: str, table: pa.Table) -> None:
        """Write until it succeeds (backing off) or the worker is stopped (then raise)."""
        write = getattr(self.store, _WRITERS[signal])
        delay = self.retry_initial_s
        while True:
            started = time.perf_counter()
            try:
                write(table)
            except Exception as exc:
                self.telemetry.store_errors.inc()
                if self._stop.is_set():
                    raise _Stopped from exc
                logger.warning(
                    "storing %d %s rows failed (%s); retrying in %.1f s, nothing committed",
                    table.num_rows,
                    signal,
                    exc,
                    delay,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            self.telemetry.write_seconds.labels(signal).observe(time.perf_counter() - started)
            self.telemetry.stored.labels(signal).inc(table.num_rows)
            return

    def _dead_letter(self, items: list[Decoded]) -> None:
        """Send each to the dead-letter topic; retried with backoff until Kafka takes them."""
        delay = self.retry_initial_s
        while True:
            problem = self._send_dead_letters(items)
            if not problem:
                self.telemetry.dead_lettered.inc(len(items))
                return
            if self._stop.is_set():
                raise _Stopped(problem)
            logger.warning("%s; retrying in %.1f s, nothing committed", problem, delay)
            self._stop.wait(delay)
            delay = min(delay * 2, self.retry_max_s)

    def _send_dead_letters(self, items: list[Decoded]) -> str:
        """Produce and wait for the acknowledgements; "" when all were taken, else why not."""
        failures: list[str] = []

        def report(error: Any, message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        for item in items:
            message = item.message
            stage = "decode" if item.signal is None or "processing" not in item.error else "process"
            logger.warning(
                "dead-lettering %s[%d]@%d: %s",
                message.topic(),
                message.partition(),
                message.offset(),
                item.error,
            )
            self._dead_letters.produce(
                self.dead_letter_topic,
                message.value(),
                message.key(),
                headers=dead_letter_headers(message, item.error, stage),
                on_delivery=report,
            )
        left = self._dead_letters.flush(30)
        if left or failures:
            return (
                f"the dead-letter topic did not take {left or len(failures)} messages: "
                + "; ".join(failures[:3])
            )
        return ""

    # -- offsets ---------------------------------------------------------------------

    def _commit(self) -> None:
        if not self._pending or self._consumer is None:
            return
        from confluent_kafka import KafkaException, TopicPartition

        offsets = [TopicPartition(t, p, offset) for (t, p), offset in self._pending.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Partitions moved to another worker: it gets the messages again, and
            # the idempotent store absorbs the repeat.
            logger.warning("committing offsets failed (%s); they will be redelivered", exc)
        else:
            self.telemetry.commits.inc()
        self._pending.clear()

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._commit()

    def _on_stats(self, stats: str) -> None:
        for (topic, partition), lag in lag_from_stats(stats).items():
            self.telemetry.lag.labels(topic, str(partition)).set(lag)


def _concat(tables: list[pa.Table]) -> pa.Table:
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)
