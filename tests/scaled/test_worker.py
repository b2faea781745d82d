"""pyflare worker in process: receiver → Kafka → worker → DuckDB, dead letters, store failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from _kafka_broker import Broker, consume_all
from _kafka_otlp_requests import traces
from _kafka_worker import running_worker, scaled_settings, span_count, wait_for
from confluent_kafka import Producer
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from starlette.testclient import TestClient

from pyflare.errors import ConfigError
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare_server.app import create_app
from pyflare_server.pipeline._kafka_telemetry import lag_from_stats
from pyflare_server.pipeline.kafka import KafkaQueue
from pyflare_server.settings import ServerSettings
from pyflare_server.worker import Worker

PROTOBUF = {"Content-Type": "application/x-protobuf"}
PRICED = {
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.provider.name": "openai",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 500,
}


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    errors: list[Any] = []
    for key, value in messages:
        producer.produce(topic, value, key, on_delivery=lambda e, m: errors.append(e))
    assert producer.flush(30) == 0
    assert errors == [None] * len(messages)


def test_spans_posted_to_a_receiver_are_processed_and_stored_once(
    broker: Broker, tmp_path: Path
) -> None:
    settings = scaled_settings(broker.bootstrap, tmp_path / "s.duckdb")
    store = DuckDBSpanStore(str(tmp_path / "s.duckdb"))
    request, ids = traces(3, 2, attributes=PRICED)
    body = request.SerializeToString()
    # With collector.kafka.brokers set, the receiver's queue is Kafka.
    app = create_app(settings, store=store)
    assert isinstance(app.state.core.pipeline.queue, KafkaQueue)
    with TestClient(app) as client:
        for _ in range(2):  # a client's retry: the same spans twice
            response = client.post("/v1/traces", content=body, headers=PROTOBUF)
            assert response.status_code == 200, response.text
    with running_worker(settings, store) as worker:
        wait_for(lambda: worker.telemetry.value("pyflare_worker_commits_total") >= 1, "a commit")
        wait_for(
            lambda: worker.telemetry.value("pyflare_worker_consumed_messages_total") >= 6,
            "6 messages",
        )
    assert span_count(store) == 6  # 12 delivered, each span once
    for trace_id in ids:
        spans = store.spans(trace_id)
        assert spans.num_rows == 2
        assert spans.column("cost_micros").to_pylist() == [7500, 7500]  # the cost stage ran
    store.close()


def test_messages_of_a_standard_collector_are_read_masked_and_enriched(
    broker: Broker, tmp_path: Path
) -> None:
    settings = scaled_settings(broker.bootstrap, tmp_path / "s.duckdb")
    store = DuckDBSpanStore(str(tmp_path / "s.duckdb"))
    request, ids = traces(2, 2, attributes={"input.value": "mail me at jo@example.com"})
    messages = []
    for index, trace_id in enumerate(ids):
        one = TracesData()
        resource_spans = one.resource_spans.add()
        resource_spans.CopyFrom(request.resource_spans[0])
        spans = resource_spans.scope_spans[0].spans
        keep = [s for s in spans if s.trace_id.hex() == trace_id]
        del spans[:]
        spans.extend(keep)
        # Today's exporter keys by the hex id; older ones by the 16 raw bytes.
        key = trace_id.encode() if index == 0 else bytes.fromhex(trace_id)
        messages.append((key, one.SerializeToString()))
    produce(broker.bootstrap, "pyflare.traces", messages)
    with running_worker(settings, store):
        wait_for(lambda: span_count(store) == 4, "4 spans")
    rows = store.sql("SELECT input_preview, resource FROM traces").to_pylist()
    assert all("jo@example.com" not in row["input_preview"] for row in rows)
    assert all(any(k == "pyflare.collector.host" for k, _ in row["resource"]) for row in rows)
    store.close()


def test_a_poison_message_is_dead_lettered_with_its_error_and_the_worker_goes_on(
    broker: Broker, tmp_path: Path
) -> None:
    settings = scaled_settings(broker.bootstrap, tmp_path / "s.duckdb")
    store = DuckDBSpanStore(str(tmp_path / "s.duckdb"))
    good, _ = traces(1, 2)
    produce(broker.bootstrap, "pyflare.traces", [(b"poison", b"\xff\x00 not protobuf")])
    with running_worker(settings, store) as worker:
        wait_for(
            lambda: worker.telemetry.value("pyflare_worker_dead_lettered_messages_total") == 1,
            "a dead letter",
        )
        produce(broker.bootstrap, "pyflare.traces", [(None, good.SerializeToString())])
        wait_for(lambda: span_count(store) == 2, "the next message's spans")
    (letter,) = consume_all(broker.bootstrap, "pyflare.dead-letter", 1)
    headers = dict(letter.headers())
    assert letter.key() == b"poison" and letter.value() == b"\xff\x00 not protobuf"
    assert b"not a protobuf ExportTraceServiceRequest" in headers["pyflare.error"]
    assert headers["pyflare.error.stage"] == b"decode"
    assert headers["pyflare.source.topic"] == b"pyflare.traces"
    assert headers["pyflare.source.offset"] == b"0"
    store.close()


class FlakyStore:
    """The real DuckDB store whose first ``failures`` span writes fail (a store outage)."""

    def __init__(self, store: DuckDBSpanStore, failures: int, worker: list[Worker]) -> None:
        self.store = store
        self.failures = failures
        self.worker = worker
        self.commits_seen: list[float] = []

    def write(self, batch: pa.Table) -> int:
        if self.failures:
            self.failures -= 1
            self.commits_seen.append(self.worker[0].telemetry.value("pyflare_worker_commits_total"))
            raise OSError("the store is unreachable")
        return self.store.write(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_failing_store_write_is_retried_with_backoff_and_nothing_is_committed_meanwhile(
    broker: Broker, tmp_path: Path
) -> None:
    settings = scaled_settings(broker.bootstrap, tmp_path / "s.duckdb")
    store = DuckDBSpanStore(str(tmp_path / "s.duckdb"))
    request, _ = traces(2, 2)
    produce(broker.bootstrap, "pyflare.traces", [(None, request.SerializeToString())])
    holder: list[Worker] = []
    flaky = FlakyStore(store, 3, holder)
    with running_worker(settings, flaky, processors=[], retry_initial_s=0.01) as worker:
        holder.append(worker)
        wait_for(lambda: span_count(store) == 4, "the spans after the outage")
        wait_for(lambda: worker.telemetry.value("pyflare_worker_commits_total") == 1, "a commit")
        assert worker.telemetry.value("pyflare_worker_store_errors_total") == 3
    assert flaky.commits_seen == [0, 0, 0]
    store.close()


def test_a_worker_without_brokers_is_a_config_error(tmp_path: Path) -> None:
    store = DuckDBSpanStore(str(tmp_path / "s.duckdb"))
    with pytest.raises(ConfigError, match=r"collector\.kafka\.brokers"):
        Worker(ServerSettings(), store)
    store.close()


def test_consumer_lag_is_read_from_librdkafka_statistics() -> None:
    stats = (
        '{"topics": {"pyflare.traces": {"partitions": {'
        '"0": {"consumer_lag": 7}, "1": {"consumer_lag": -1}, "-1": {"consumer_lag": 3}}}}}'
    )
    assert lag_from_stats(stats) == {("pyflare.traces", 0): 7}
    assert lag_from_stats("not json") == {}
    assert lag_from_stats("[1, 2]") == {}
