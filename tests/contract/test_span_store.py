"""The SpanStore contract: every implementation passes this suite unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from _readable_spans import MS, T0, make_span
from pyflare.errors import QueryError, StoreError
from pyflare.records import SPAN_SCHEMA, from_readable_spans, to_pylist
from pyflare.store.base import SpanStore, TraceQuery

INGESTED_NS = 1_767_225_700_000_000_000

StoreFactory = Callable[[], SpanStore]


def batch(*spans: ReadableSpan) -> pa.Table:
    return from_readable_spans(spans, ingested_at_ns=INGESTED_NS)


def tid(trace: int) -> str:
    return f"{trace:032x}"


def sid(span: int) -> str:
    return f"{span:016x}"


def count_rows(store: SpanStore) -> int:
    return int(store.sql("SELECT count(*) AS n FROM traces").column("n")[0].as_py())


def summaries(store: SpanStore, **filters: Any) -> list[dict[str, Any]]:
    return store.traces(TraceQuery(**filters)).to_pylist()


def trace_ids(store: SpanStore, **filters: Any) -> list[str]:
    return [row["trace_id"] for row in summaries(store, **filters)]


def sorted_rows(table: pa.Table) -> pa.Table:
    return table.sort_by([("trace_id", "ascending"), ("span_id", "ascending")])


# -- writing -------------------------------------------------------------------


def test_write_returns_the_number_of_new_rows(store: SpanStore) -> None:
    assert store.write(batch(make_span(1, 1), make_span(1, 2, parent=1), make_span(2, 3))) == 3
    assert store.write(from_readable_spans([])) == 0
    assert count_rows(store) == 3


def test_every_column_of_the_canonical_row_round_trips(store: SpanStore) -> None:
    preview = "Résumé 🔥 こんにちは " * 40  # over 1000 chars: stored cut to 1000
    spans = [
        make_span(
            0xABCDEF0123456789ABCDEF0123456789,
            0x0123456789ABCDEF,
            name="répondre 🔥",
            start=T0 + 7,
            duration=123_456_789,
            service="rag-api ☃",
            kind=SpanKind.CLIENT,
            status=StatusCode.ERROR,
            message="boom: ☠ failed",
            attributes={
                "pyflare.model.id": "gpt-4o-mini",
                "pyflare.model.version": "2024-07-18",
                "pyflare.inference.type": "llm",
                "pyflare.input.preview": preview,
                "pyflare.output.preview": "réponse ✅",
                "pyflare.input.hash": "5ce08fa6e6d75c1dda7a3ce4cbbed770",
                "pyflare.usage.input_tokens": 1200,
                "pyflare.usage.output_tokens": 34,
                "pyflare.cost.micros": 987_654_321,
                "emoji 🔑": "value 🎉",
                "flag": True,
                "ratio": 0.25,
                "tags": ("a", "b"),
            },
            events=[
                Event("retry", {"attempt": 2, "reason": "429 ⏳"}, timestamp=T0 + 999),
                Event("no attributes", {}, timestamp=T0 + 1_000_001),
            ],
            resource={"deployment.environment.name": "prod", "host.name": "h-1"},
        ),
        make_span(
            0xABCDEF0123456789ABCDEF0123456789,
            0x1111111111111111,
            parent=0x0123456789ABCDEF,
            name="",
            start=T0 + 9,
            duration=0,
            service="",
            kind=SpanKind.CONSUMER,
            status=StatusCode.OK,
        ),
        make_span(
            3,
            0xFFFFFFFFFFFFFFFF,
            name="many attributes",
            kind=SpanKind.PRODUCER,
            attributes={f"key.{i:04d}": f"value {i} " + "x" * (i % 50) for i in range(600)},
        ),
        make_span(4, 5, kind=SpanKind.SERVER),
    ]
    written = batch(*spans)
    assert store.write(written) == 4

    stored = pa.concat_tables(
        [
            store.spans(tid(0xABCDEF0123456789ABCDEF0123456789)),
            store.spans(tid(3)),
            store.spans(tid(4)),
        ]
    )
    assert stored.column_names == [*SPAN_SCHEMA.names, "depth"]
    assert sorted_rows(stored.drop_columns(["depth"])).equals(sorted_rows(written))

    rows = {row["span_id"]: row for row in to_pylist(stored.drop_columns(["depth"]))}
    root = rows["0123456789abcdef"]
    assert root["trace_id"] == "abcdef0123456789abcdef0123456789"
    assert root["parent_span_id"] is None
    assert root["operation_name"] == "répondre 🔥"
    assert root["service_name"] == "rag-api ☃"
    assert (root["span_kind"], root["status_code"]) == ("client", "error")
    assert root["status_message"] == "boom: ☠ failed"
    assert root["model_id"] == "gpt-4o-mini"
    assert root["model_version"] == "2024-07-18"
    assert root["inference_type"] == "llm"
    assert root["input_preview"] == preview[:1000]
    assert root["output_preview"] == "réponse ✅"
    assert root["input_hash"] == "5ce08fa6e6d75c1dda7a3ce4cbbed770"
    assert (root["input_tokens"], root["output_tokens"], root["total_tokens"]) == (1200, 34, 1234)
    assert root["cost_micros"] == 987_654_321
    assert root["attributes"]["emoji 🔑"] == "value 🎉"
    assert root["attributes"]["flag"] == "true"
    assert root["attributes"]["tags"] == '["a","b"]'
    assert "pyflare.input.preview" not in root["attributes"]
    assert root["resource"] == {
        "service.name": "rag-api ☃",
        "deployment.environment.name": "prod",
        "host.name": "h-1",
    }
    assert [(e["name"], e["attributes"]) for e in root["events"]] == [
        ("retry", {"attempt": "2", "reason": "429 ⏳"}),
        ("no attributes", {}),
    ]

    child = rows["1111111111111111"]
    assert child["parent_span_id"] == "0123456789abcdef"
    assert (child["operation_name"], child["service_name"]) == ("", "")
    assert (child["span_kind"], child["status_code"]) == ("consumer", "ok")
    assert child["status_message"] is None
    assert child["attributes"] == {}
    assert child["events"] == []
    for column in ("model_id", "inference_type", "input_preview", "input_hash"):
        assert child[column] is None
    for column in ("input_tokens", "output_tokens", "total_tokens", "cost_micros"):
        assert child[column] is None, f"{column} must stay NULL, never 0"

    assert len(rows["ffffffffffffffff"]["attributes"]) == 600
    assert rows["0000000000000005"]["span_kind"] == "server"

    # Nanoseconds exactly, for span and event times alike.
    by_id = stored.drop_columns(["depth"]).to_pydict()
    position = by_id["span_id"].index("0123456789abcdef")
    assert stored.column("start_time").cast(pa.int64())[position].as_py() == T0 + 7
    assert stored.column("end_time").cast(pa.int64())[position].as_py() == T0 + 7 + 123_456_789
    assert stored.column("duration_ns")[position].as_py() == 123_456_789
    event_times = pc.list_flatten(stored.column("events")).combine_chunks().field("time")
    assert sorted(event_times.cast(pa.int64()).to_pylist()) == [T0 + 999, T0 + 1_000_001]


def test_zero_tokens_and_zero_cost_stay_zero(store: SpanStore) -> None:
    store.write(
        batch(
            make_span(
                1,
                1,
                attributes={
                    "gen_ai.usage.input_tokens": 0,
                    "gen_ai.usage.output_tokens": 0,
                    "pyflare.cost.micros": 0,
                },
            )
        )
    )
    (row,) = to_pylist(store.spans(tid(1)).drop_columns(["depth"]))
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (0, 0, 0)
    assert row["cost_micros"] == 0


def test_the_same_batch_twice_is_stored_once(store: SpanStore) -> None:
    spans = batch(make_span(1, 1), make_span(1, 2, parent=1, start=T0 + MS), make_span(2, 3))
    assert store.write(spans) == 3
    assert store.write(spans) == 0
    assert count_rows(store) == 3
    assert store.spans(tid(1)).num_rows == 2
    assert store.count_traces(TraceQuery()) == 2
    assert {row["trace_id"]: row["span_count"] for row in summaries(store)} == {
        tid(1): 2,
        tid(2): 1,
    }


def test_overlapping_batches_add_only_the_new_spans(store: SpanStore) -> None:
    a, b, c = (make_span(1, n, start=T0 + n * MS) for n in (1, 2, 3))
    assert store.write(batch(a, b)) == 2
    assert store.write(batch(b, c)) == 1
    assert store.write(batch(c, a)) == 0
    assert count_rows(store) == 3
    assert store.spans(tid(1)).column("span_id").to_pylist() == [sid(1), sid(2), sid(3)]


def test_duplicates_within_one_batch_are_stored_once(store: SpanStore) -> None:
    span = make_span(1, 1)
    assert store.write(batch(span, make_span(1, 2, parent=1), span, span)) == 2
    assert count_rows(store) == 2
    (summary,) = summaries(store)
    assert summary["span_count"] == 2


def test_a_redelivered_span_in_a_batch_of_much_later_spans_is_skipped(store: SpanStore) -> None:
    early = make_span(1, 1, start=T0)
    store.write(batch(early))
    later = [make_span(2, n, start=T0 + 3_600_000 * MS + n) for n in range(2, 50)]
    assert store.write(batch(*later, early)) == 48
    assert count_rows(store) == 49


def test_the_same_span_id_in_two_traces_is_two_spans(store: SpanStore) -> None:
    assert store.write(batch(make_span(1, 7), make_span(2, 7))) == 2
    assert store.write(batch(make_span(1, 7), make_span(2, 7))) == 0
    assert count_rows(store) == 2


# -- traces(): summaries ---------------------------------------------------------


def _rag_traces(store: SpanStore) -> None:
    """Three traces: an erroring LLM call, a healthy retrieval, an orphan fragment."""
    store.write(
        batch(
            # Trace 1 (oldest): api/handle, a child errors, tokens partly unknown.
            make_span(1, 1, name="handle", service="api", start=T0, duration=100 * MS),
            make_span(
                1,
                2,
                parent=1,
                name="chat",
                service="llm-gateway",
                start=T0 + 10 * MS,
                duration=50 * MS,
                status=StatusCode.ERROR,
                message="rate limited",
                attributes={
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 100,
                    "gen_ai.usage.output_tokens": 20,
                    "pyflare.cost.micros": 1500,
                    "pyflare.input.preview": "What is the Capital of France?",
                    "user.id": "alice",
                },
            ),
            make_span(
                1,
                3,
                parent=1,
                name="chat retry",
                service="llm-gateway",
                start=T0 + 70 * MS,
                duration=80 * MS,  # ends after the root: the trace lasts 150 ms
                status=StatusCode.OK,
                attributes={"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 7},
            ),
            # Trace 2: worker/retrieve, all ok, no tokens at all.
            make_span(
                2,
                4,
                name="retrieve",
                service="worker",
                start=T0 + 1_000 * MS,
                duration=30 * MS,
                status=StatusCode.OK,
                attributes={"user.id": "bob"},
            ),
            make_span(
                2,
                5,
                parent=4,
                name="embed",
                service="embedder",
                start=T0 + 1_005 * MS,
                duration=5 * MS,
                attributes={
                    "llm.model_name": "text-embedding-3-small",
                    "openinference.span.kind": "EMBEDDING",
                    "output.value": "VECTORS ready",
                },
            ),
            # Trace 3 (newest): the root never arrived; two orphans.
            make_span(3, 7, parent=6, name="late", service="cron", start=T0 + 2_010 * MS),
            make_span(3, 8, parent=6, name="early", service="batch", start=T0 + 2_000 * MS),
        )
    )


def test_trace_summaries(store: SpanStore) -> None:
    _rag_traces(store)
    rows = summaries(store)
    assert [row["trace_id"] for row in rows] == [tid(3), tid(2), tid(1)]  # newest first
    first = rows[2]
    assert first["service_name"] == "api"  # the root's, not the erroring child's
    assert first["operation_name"] == "handle"
    assert first["status_code"] == "error"
    assert (first["span_count"], first["error_count"]) == (3, 1)
    assert first["model_id"] == "gpt-4o"
    assert (first["input_tokens"], first["output_tokens"]) == (107, 20)  # NULLs are skipped
    assert first["total_tokens"] == 120  # only the first chat span knows its total
    assert first["cost_micros"] == 1500
    assert first["duration_ns"] == 150 * MS
    assert pa.scalar(first["start_time"], pa.timestamp("ns")).cast(pa.int64()).as_py() == T0
    end = pa.scalar(first["end_time"], pa.timestamp("ns")).cast(pa.int64()).as_py()
    assert end == T0 + 150 * MS

    second = rows[1]
    assert (second["service_name"], second["operation_name"]) == ("worker", "retrieve")
    assert second["status_code"] == "ok"
    assert (second["span_count"], second["error_count"]) == (2, 0)
    assert second["model_id"] == "text-embedding-3-small"
    for column in ("input_tokens", "output_tokens", "total_tokens", "cost_micros"):
        assert second[column] is None, f"{column}: no span knows it, so the sum is NULL"

    orphans = rows[0]
    assert (orphans["service_name"], orphans["operation_name"]) == ("batch", "early")
    assert orphans["status_code"] == "unset"
    assert orphans["span_count"] == 2


def test_summary_columns(store: SpanStore) -> None:
    _rag_traces(store)
    table = store.traces(TraceQuery())
    assert table.column_names[:1] == ["trace_id"]
    assert set(table.column_names) >= {
        "trace_id",
        "start_time",
        "end_time",
        "duration_ns",
        "service_name",
        "operation_name",
        "status_code",
        "span_count",
        "error_count",
        "model_id",
        "input_preview",
        "output_preview",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost_micros",
    }


def test_limit_offset_and_count(store: SpanStore) -> None:
    store.write(batch(*(make_span(n, n, start=T0 + n * MS) for n in range(1, 26))))
    assert store.count_traces(TraceQuery()) == 25
    assert trace_ids(store, limit=3) == [tid(25), tid(24), tid(23)]
    assert trace_ids(store, limit=3, offset=3) == [tid(22), tid(21), tid(20)]
    assert trace_ids(store, limit=10, offset=24) == [tid(1)]
    assert trace_ids(store, offset=25) == []
    assert store.count_traces(TraceQuery(limit=1, offset=5)) == 25


def test_an_empty_store_has_no_traces(store: SpanStore) -> None:
    assert store.traces(TraceQuery()).num_rows == 0
    assert store.count_traces(TraceQuery()) == 0


# -- traces(): filters -----------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param({"service": "api"}, [1], id="service of the root"),
        pytest.param({"service": "llm-gateway"}, [], id="service of a child only"),
        pytest.param({"service": "batch"}, [3], id="service of an orphan-only trace"),
        pytest.param({"model_id": "gpt-4o"}, [1], id="model on a child"),
        pytest.param({"model_id": "text-embedding-3-small"}, [2], id="openinference model"),
        pytest.param({"model_id": "gpt-4"}, [], id="model exact match"),
        pytest.param({"status": "error"}, [1], id="status error"),
        pytest.param({"status": "ok"}, [2], id="status ok"),
        pytest.param({"status": "unset"}, [3], id="status unset"),
        pytest.param({"min_duration_ns": 150 * MS}, [1], id="min duration inclusive"),
        pytest.param({"min_duration_ns": 20 * MS}, [2, 1], id="min duration"),
        pytest.param({"attributes": {"user.id": "alice"}}, [1], id="attribute on a child"),
        pytest.param({"attributes": {"user.id": "bob"}}, [2], id="attribute on the root"),
        pytest.param({"attributes": {"user.id": "carol"}}, [], id="attribute no match"),
        pytest.param(
            {"attributes": {"user.id": "alice", "gen_ai.request.model": "gpt-4o"}},
            [1],
            id="two attributes",
        ),
        pytest.param({"text": "capital of FRANCE"}, [1], id="text in input, any case"),
        pytest.param({"text": "vectors"}, [2], id="text in output"),
        pytest.param({"text": "berlin"}, [], id="text no match"),
        pytest.param({"service": "api", "status": "ok"}, [], id="filters combine"),
    ],
)
def test_trace_filters(store: SpanStore, filters: dict[str, Any], expected: list[int]) -> None:
    _rag_traces(store)
    want = [tid(n) for n in sorted(expected, reverse=True)]
    assert trace_ids(store, **filters) == want
    assert store.count_traces(TraceQuery(**filters)) == len(expected)


def test_time_filters_apply_to_the_trace_start(store: SpanStore) -> None:
    store.write(
        batch(
            # Trace 1 starts before the window and has a child inside it.
            make_span(1, 1, start=T0, duration=500 * MS),
            make_span(1, 2, parent=1, start=T0 + 200 * MS),
            # Trace 2 starts inside the window and has a child after it.
            make_span(2, 3, start=T0 + 150 * MS, duration=400 * MS),
            make_span(2, 4, parent=3, start=T0 + 350 * MS),
            # Trace 3 starts after the window.
            make_span(3, 5, start=T0 + 400 * MS),
        )
    )
    since, until = T0 + 100 * MS, T0 + 300 * MS
    (row,) = summaries(store, since_ns=since, until_ns=until)
    assert row["trace_id"] == tid(2)
    assert row["span_count"] == 2  # the child after `until` still counts
    assert store.count_traces(TraceQuery(since_ns=since, until_ns=until)) == 1
    assert trace_ids(store, since_ns=since) == [tid(3), tid(2)]
    assert trace_ids(store, until_ns=until) == [tid(2), tid(1)]
    assert trace_ids(store, since_ns=T0 + 150 * MS, until_ns=T0 + 150 * MS + 1) == [tid(2)]
    assert trace_ids(store, until_ns=T0 + 150 * MS) == [tid(1)]  # until is exclusive


# -- spans() ---------------------------------------------------------------------


def test_spans_come_in_tree_order_with_depth(store: SpanStore) -> None:
    store.write(
        batch(
            make_span(1, 0x30, parent=0x10, name="b", start=T0 + 30),
            make_span(1, 0x20, parent=0x10, name="a", start=T0 + 20),
            make_span(1, 0x40, parent=0x20, name="a.1", start=T0 + 40),
            make_span(1, 0x10, name="root", start=T0),
            make_span(1, 0x50, parent=0x99, name="orphan", start=T0 + 10),
            make_span(2, 0x60, name="other trace"),
        )
    )
    table = store.spans(tid(1))
    assert table.column("operation_name").to_pylist() == ["root", "a", "a.1", "b", "orphan"]
    assert table.column("depth").to_pylist() == [0, 1, 2, 1, 0]
    assert store.spans(tid(1).upper()).num_rows == 5


def test_spans_of_an_unknown_trace_is_empty(store: SpanStore) -> None:
    store.write(batch(make_span(1, 1)))
    table = store.spans(tid(99))
    assert table.num_rows == 0
    assert table.column_names == [*SPAN_SCHEMA.names, "depth"]


# -- sql() -----------------------------------------------------------------------


def test_sql_runs_a_select_with_parameters(store: SpanStore) -> None:
    _rag_traces(store)
    table = store.sql(
        "SELECT service_name, count(*) AS n FROM traces WHERE service_name = ? GROUP BY 1",
        ["llm-gateway"],
    )
    assert table.to_pylist() == [{"service_name": "llm-gateway", "n": 2}]
    limited = store.sql("SELECT span_id FROM traces", max_rows=3)
    assert limited.num_rows == 3


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE traces",
        "DELETE FROM traces",
        "INSERT INTO traces SELECT * FROM traces",
        "UPDATE traces SET service_name = 'x'",
        "ATTACH 'other.duckdb' AS other",
        "COPY traces TO 'out.csv'",
        "SELECT * FROM read_csv('spans.csv')",
        "SELECT * FROM 'spans.csv'",
        "SELECT * FROM traces; DROP TABLE traces",
        "CREATE TABLE stolen AS SELECT * FROM traces",
        "SELECT * FROM pyflare_schema",
    ],
)
def test_sql_is_read_only(store: SpanStore, statement: str) -> None:
    _rag_traces(store)
    with pytest.raises(QueryError):
        store.sql(statement)
    assert count_rows(store) == 7
    assert store.count_traces(TraceQuery()) == 3


def test_a_failing_select_is_a_query_error(store: SpanStore) -> None:
    with pytest.raises(QueryError):
        store.sql("SELECT no_such_column FROM traces")


# -- bad input and lifecycle -------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(pa.table({"trace_id": ["a"], "span_id": ["b"]}), id="missing columns"),
        pytest.param(
            batch(make_span(1, 1)).set_column(
                3, "start_time", pa.array(["yesterday"], pa.string())
            ),
            id="wrong column type",
        ),
        pytest.param({"trace_id": ["a"]}, id="not a table"),
        pytest.param(
            batch(make_span(1, 1)).set_column(
                3, "start_time", pa.array([None], pa.timestamp("ns"))
            ),
            id="null in a required column",
        ),
    ],
)
def test_a_batch_with_the_wrong_schema_is_a_store_error(store: SpanStore, bad: Any) -> None:
    with pytest.raises(StoreError):
        store.write(bad)
    assert store.write(batch(make_span(1, 1))) == 1
    assert count_rows(store) == 1


def test_a_closed_store_raises_store_error(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.write(batch(make_span(1, 1)))
    store.close()
    store.close()  # closing twice is fine
    calls = [
        lambda: store.write(batch(make_span(2, 2))),
        lambda: store.write(from_readable_spans([])),
        lambda: store.traces(TraceQuery()),
        lambda: store.count_traces(TraceQuery()),
        lambda: store.spans(tid(1)),
        lambda: store.sql("SELECT count(*) FROM traces"),
    ]
    for call in calls:
        with pytest.raises(StoreError):
            call()


def test_stores_are_independent(store_factory: StoreFactory) -> None:
    first, second = store_factory(), store_factory()
    first.write(batch(make_span(1, 1)))
    assert count_rows(first) == 1
    assert count_rows(second) == 0


def test_the_store_satisfies_the_protocol(store: SpanStore) -> None:
    assert isinstance(store, SpanStore)


def test_a_traces_model_is_its_llm_model(store: SpanStore) -> None:
    store.write(
        batch(
            make_span(7, 1, name="answer"),
            make_span(
                7,
                2,
                parent=1,
                start=T0 + 1,
                attributes={
                    "pyflare.model.id": "embed-small",
                    "pyflare.inference.type": "embedding",
                },
            ),
            make_span(
                7,
                3,
                parent=1,
                start=T0 + 2,
                attributes={"gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": "chat"},
            ),
            make_span(8, 4, attributes={"pyflare.model.id": "fraud-v3"}),
        )
    )
    models = {row["trace_id"]: row["model_id"] for row in summaries(store)}
    assert models == {tid(7): "gpt-4o", tid(8): "fraud-v3"}


def test_a_traces_previews_are_its_roots(store: SpanStore) -> None:
    store.write(
        batch(
            make_span(
                9,
                1,
                name="answer",
                attributes={"pyflare.input.preview": "question?", "pyflare.output.preview": "42"},
            ),
            make_span(9, 2, parent=1, start=T0 + 1, attributes={"input.value": "prompt"}),
            # Capture off on the root: the earliest span that recorded content speaks for it.
            make_span(10, 3, name="plain"),
            make_span(10, 4, parent=3, start=T0 + 1, attributes={"input.value": "inner prompt"}),
        )
    )
    previews = {
        row["trace_id"]: (row["input_preview"], row["output_preview"]) for row in summaries(store)
    }
    assert previews == {tid(9): ("question?", "42"), tid(10): ("inner prompt", None)}


@pytest.mark.parametrize(
    "resources",
    [
        # one process: the same resource on every row
        [{"host.name": "h-1"}] * 3,
        # several: each row keeps its own
        [{"host.name": "h-1"}, {"host.name": "h-2"}, {"host.name": "h-1"}],
        # same keys, one value differs
        [
            {"host.name": "h-1", "k": "v"},
            {"host.name": "h-1", "k": "v"},
            {"host.name": "h-1", "k": "w"},
        ],
        # different sizes
        [{"host.name": "h-1"}, {"host.name": "h-1", "extra": "x"}, {}],
    ],
    ids=["shared", "two-hosts", "one-value-differs", "different-sizes"],
)
def test_each_row_keeps_its_resource(store: SpanStore, resources: list[dict[str, str]]) -> None:
    spans = [
        make_span(11, index + 1, start=T0 + index, service="svc", resource=resource)
        for index, resource in enumerate(resources)
    ]
    store.write(batch(*spans))
    rows = store.spans(tid(11)).to_pylist()
    stored = {row["span_id"]: dict(row["resource"]) for row in rows}
    assert stored == {
        sid(index + 1): {"service.name": "svc", **resource}
        for index, resource in enumerate(resources)
    }
