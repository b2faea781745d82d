"""KafkaQueue and the topics against a real broker (tansu)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from _kafka_broker import Broker, consume_all, free_port
from _kafka_otlp_requests import logs, metrics, traces
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from pyflare.errors import InvalidArgumentError
from pyflare_server.pipeline._kafka_topics import KafkaError, ensure_topics
from pyflare_server.pipeline.kafka import STAGE_HEADER, STAGE_RECEIVED, KafkaQueue
from pyflare_server.pipeline.queue import PipelineError, SpanQueue
from pyflare_server.receiver.decode import Encoding, Signal, decode
from pyflare_server.settings import KafkaSettings, KafkaTopics


def kafka_settings(bootstrap: str, **topics: object) -> KafkaSettings:
    return KafkaSettings(
        brokers=(bootstrap,),
        topics=KafkaTopics(partitions=3, replication_factor=1, **topics),  # type: ignore[arg-type]
    )


def test_topics_are_created_with_their_settings_then_checked(broker: Broker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topics = kafka_settings(broker.bootstrap).topics
    created = ensure_topics(admin, topics)
    assert sorted(created) == sorted(
        [
            "pyflare.traces",
            "pyflare.metrics",
            "pyflare.logs",
            "pyflare.alerts",
            "pyflare.embeddings",
            "pyflare.dead-letter",
        ]
    )
    found = admin.list_topics(timeout=10).topics
    assert all(len(found[name].partitions) == 3 for name in created)
    resource = ConfigResource("topic", "pyflare.alerts")
    config = admin.describe_configs([resource])[resource].result(10)
    assert config["cleanup.policy"].value == "compact"
    assert ensure_topics(admin, topics) == []  # all there: nothing to create


def test_an_alerts_topic_that_is_not_compacted_is_refused_by_name(broker: Broker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    future = admin.create_topics([NewTopic("my.alerts", 1, 1, config={"cleanup.policy": "delete"})])
    future["my.alerts"].result(10)
    with pytest.raises(KafkaError, match=r"'my.alerts' has cleanup.policy=delete.*compact"):
        ensure_topics(admin, kafka_settings(broker.bootstrap, alerts="my.alerts").topics)


def test_unreachable_brokers_are_a_clear_error() -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{free_port()}"})
    with pytest.raises(KafkaError, match="could not list Kafka's topics"):
        ensure_topics(admin, KafkaTopics(), timeout_s=1)


def test_queue_needs_brokers() -> None:
    with pytest.raises(InvalidArgumentError, match=r"collector\.kafka\.brokers"):
        KafkaQueue(KafkaSettings())


async def test_put_returns_after_the_broker_took_one_message_per_trace(broker: Broker) -> None:
    queue = KafkaQueue(kafka_settings(broker.bootstrap))
    assert isinstance(queue, SpanQueue)
    request, ids = traces(5, 3)
    batch = decode(Signal.TRACES, request.SerializeToString(), Encoding.PROTOBUF).batch
    await queue.start()
    try:
        await queue.put(Signal.TRACES, batch)
        await queue.put(
            Signal.METRICS,
            decode(Signal.METRICS, metrics().SerializeToString(), Encoding.PROTOBUF).batch,
        )
        await queue.put(
            Signal.LOGS, decode(Signal.LOGS, logs().SerializeToString(), Encoding.PROTOBUF).batch
        )
        await queue.put(Signal.TRACES, batch.slice(0, 0))  # nothing to send
        assert queue.depth() == 0
    finally:
        await queue.close()
    found = consume_all(broker.bootstrap, "pyflare.traces", 5)
    assert sorted(m.key() for m in found) == sorted(i.encode() for i in ids)
    for message in found:
        assert dict(message.headers())[STAGE_HEADER] == STAGE_RECEIVED
        spans = TracesData.FromString(message.value()).resource_spans[0].scope_spans[0].spans
        assert {s.trace_id.hex() for s in spans} == {message.key().decode()}
    assert len(consume_all(broker.bootstrap, "pyflare.metrics", 1)) == 1
    assert len(consume_all(broker.bootstrap, "pyflare.logs", 1)) == 1


async def test_unreachable_brokers_fail_the_put_so_the_receiver_answers_503() -> None:
    queue = KafkaQueue(
        kafka_settings(f"127.0.0.1:{free_port()}"), delivery_timeout_s=1, create_topics=False
    )
    request, _ = traces(1, 1)
    batch = decode(Signal.TRACES, request.SerializeToString(), Encoding.PROTOBUF).batch
    with pytest.raises(PipelineError, match="Kafka did not acknowledge the batch"):
        await queue.put(Signal.TRACES, batch)
    assert queue.depth() == 0
    await queue.close()


async def test_bad_signals_and_puts_after_close_are_refused(broker: Broker) -> None:
    queue = KafkaQueue(kafka_settings(broker.bootstrap), create_topics=False)
    with pytest.raises(InvalidArgumentError, match="unknown signal 'profiles'"):
        await queue.put("profiles", pa.table({"x": [1]}))  # type: ignore[arg-type]
    await queue.close()
    await queue.close()  # idempotent
    with pytest.raises(PipelineError, match="shutting down"):
        await queue.put(Signal.TRACES, pa.table({"x": [1]}))
