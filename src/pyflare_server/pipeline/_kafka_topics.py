"""PyFlare's Kafka topics: created when missing, checked when they exist.

The spec's topics: ``pyflare.traces`` (keyed by trace id), ``pyflare.metrics``,
``pyflare.logs``, ``pyflare.alerts`` (compacted: the latest state of each
alert), ``pyflare.embeddings`` (zstd: vectors compress well) and a dead-letter
topic for messages the workers could not process. Each is created with
``collector.kafka.topics.partitions`` and ``replication_factor``; a topic that
exists already is kept as it is, but one whose cleanup policy or compression
contradicts what PyFlare relies on is an error, and a different partition count
is logged (adding partitions is the operator's call: it moves keys).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyflare.errors import PyFlareError
from pyflare_server.settings import KafkaTopics

__all__ = ["KafkaError", "TopicSpec", "ensure_topics", "topic_specs"]

logger = logging.getLogger(__name__)


class KafkaError(PyFlareError):
    """Kafka could not be reached, or its topics are not what PyFlare needs."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


def topic_specs(topics: KafkaTopics) -> list[TopicSpec]:
    """The topics PyFlare uses, with the settings each is created with."""
    plain: dict[str, str] = {}
    configs = {
        topics.traces: plain,
        topics.metrics: plain,
        topics.logs: plain,
        topics.alerts: {"cleanup.policy": "compact"},
        topics.embeddings: {"compression.type": "zstd"},
        topics.dead_letter: plain,
    }
    return [
        TopicSpec(name, topics.partitions, topics.replication_factor, config)
        for name, config in configs.items()
    ]


def ensure_topics(admin: Any, topics: KafkaTopics, *, timeout_s: float = 10.0) -> list[str]:
    """Create the missing topics and check the others; returns the names created.

    ``admin`` is a ``confluent_kafka.admin.AdminClient``.

    Raises:
        KafkaError: the brokers can't be reached in ``timeout_s``, a topic
            can't be created, or an existing topic's configuration contradicts
            PyFlare's (the message names the topic and the setting).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        ConfigResource,
        NewTopic,
    )

    specs = topic_specs(topics)
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise KafkaError(f"could not list Kafka's topics: {exc.args[0]}") from exc
    missing = [spec for spec in specs if spec.name not in existing]
    created: list[str] = []
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=spec.replication_factor,
                    config=dict(spec.config),
                )
                for spec in missing
            ],
            request_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result(timeout_s)
            except KafkaException as exc:
                error = exc.args[0]
                if getattr(error, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                    continue  # another receiver or worker made it meanwhile
                raise KafkaError(f"could not create the Kafka topic {name!r}: {error}") from exc
            created.append(name)
            logger.info("created the Kafka topic %s", name)
    problems: list[str] = []
    for spec in specs:
        if spec.name in created or spec.name not in existing:
            continue
        partitions = len(existing[spec.name].partitions)
        if partitions != spec.partitions:
            logger.warning(
                "the Kafka topic %s has %d partitions; collector.kafka.topics.partitions says %d",
                spec.name,
                partitions,
                spec.partitions,
            )
        if spec.config:
            resource = ConfigResource("topic", spec.name)
            try:
                found = admin.describe_configs([resource])[resource].result(timeout_s)
            except KafkaException as exc:
                raise KafkaError(
                    f"could not read the configuration of the Kafka topic {spec.name!r}: "
                    f"{exc.args[0]}"
                ) from exc
            for key, want in spec.config.items():
                entry = found.get(key)
                have = None if entry is None else entry.value
                if have is not None and have != want:
                    problems.append(f"{spec.name!r} has {key}={have}, PyFlare needs {want}")
    if problems:
        raise KafkaError(
            "Kafka topics configured differently from what PyFlare needs: "
            + "; ".join(problems)
            + " (change the topic's configuration, or name other topics in collector.kafka.topics)"
        )
    return created
