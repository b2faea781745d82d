"""The DuckDB store's trace index: a trace whose spans arrive in several writes lists right."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.trace import StatusCode
from tests._readable_spans import MS, T0, make_span

from pyflare.records import from_readable_spans
from pyflare.store.base import TraceQuery
from pyflare.store.duckdb import DuckDBSpanStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBSpanStore]:
    with DuckDBSpanStore(tmp_path / "index.duckdb") as opened:
        yield opened


def write(store: DuckDBSpanStore, *spans: object) -> None:
    store.write(from_readable_spans(list(spans)))  # type: ignore[arg-type]


def ids(store: DuckDBSpanStore, **filters: object) -> list[str]:
    query = TraceQuery(**filters)  # type: ignore[arg-type]
    listed = store.traces(query).column("trace_id").to_pylist()
    assert store.count_traces(query) == len(listed)
    return listed


def test_children_first_then_the_root(store: DuckDBSpanStore) -> None:
    trace = f"{1:032x}"
    # A child calls the model and fails; it is stored before its root arrives.
    write(
        store,
        make_span(
            1,
            2,
            parent=1,
            service="llm-gateway",
            start=T0 + 5 * MS,
            status=StatusCode.ERROR,
            attributes={"pyflare.model.id": "gpt-4o"},
        ),
    )
    assert ids(store, service="llm-gateway") == [trace]  # the earliest span, until the root
    write(store, make_span(1, 1, service="shop", start=T0, duration=50 * MS))
    assert ids(store, service="shop") == [trace]
    assert ids(store, service="llm-gateway") == []
    assert ids(store, model_id="gpt-4o") == [trace]
    assert ids(store, status="error") == [trace]
    assert ids(store, since_ns=T0, until_ns=T0 + 1) == [trace]  # starts at the root now
    assert ids(store, since_ns=T0 + 1) == []
    assert ids(store, min_duration_ns=50 * MS) == [trace]
    [summary] = store.traces(TraceQuery()).to_pylist()
    assert (summary["span_count"], summary["service_name"], summary["status_code"]) == (
        2,
        "shop",
        "error",
    )


def test_writing_spans_again_changes_nothing(store: DuckDBSpanStore) -> None:
    spans = [
        make_span(3, 1, service="a", start=T0),
        make_span(3, 2, parent=1, start=T0 + MS, attributes={"pyflare.model.id": "m"}),
    ]
    write(store, *spans)
    before = store.traces(TraceQuery()).to_pylist()
    write(store, *spans)
    write(store, spans[1])
    assert store.traces(TraceQuery()).to_pylist() == before
    assert ids(store, model_id="m") == [f"{3:032x}"]


def test_a_later_span_with_another_model_adds_it(store: DuckDBSpanStore) -> None:
    write(store, make_span(4, 1, start=T0, attributes={"pyflare.model.id": "embedder"}))
    write(store, make_span(4, 2, parent=1, start=T0 + MS, attributes={"pyflare.model.id": "chat"}))
    write(store, make_span(4, 3, parent=1, start=T0 + 2 * MS))
    trace = f"{4:032x}"
    assert ids(store, model_id="embedder") == ids(store, model_id="chat") == [trace]
    assert ids(store, model_id="other") == []
