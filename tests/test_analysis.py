"""The notebook API: argument checks, time filters and DataFrame types."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pyflare
from pyflare.store.duckdb import DuckDBSpanStore
from pyflare.testing import TestClock, capture_spans

HOUR_NS = 3600 * 1_000_000_000


@pyflare.trace(name="ask", kind="llm", model_id="gpt-4o-mini")
def ask(question: str) -> str:
    pyflare.record_usage(input_tokens=30, output_tokens=12)
    return "an answer"


@pyflare.trace(name="lookup", kind="retriever", attributes={"index": "docs"})
def lookup(question: str) -> list[str]:
    return ["doc"]


@pyflare.trace(name="chain", kind="chain")
def chain(question: str) -> str:
    lookup(question)
    return ask(question)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store with an old trace (3 h ago, no tokens) and a recent one (10 min ago)."""
    path = tmp_path_factory.mktemp("analysis") / "a.duckdb"
    now = time.time_ns()
    with DuckDBSpanStore(path) as db:
        with capture_spans(clock=TestClock(start_ns=now - 3 * HOUR_NS), sequential_ids=False) as c:
            lookup("an old question about refunds")
        db.write(c.batch())
        old = c.rows()[0]["trace_id"]
        with capture_spans(clock=TestClock(start_ns=now - HOUR_NS // 6), sequential_ids=False) as c:
            chain("a new question")
        db.write(c.batch())
        new = c.rows()[0]["trace_id"]
    return {"url": f"duckdb:///{path}", "path": path, "old": old, "new": new, "now": now}


def ids(frame: pd.DataFrame) -> set[str]:
    return set(frame["trace_id"])


def test_since_and_until_take_durations_iso_datetimes_and_ns(store: dict[str, Any]) -> None:
    url, old, new, now = store["url"], store["old"], store["new"], store["now"]
    two_hours_ago = dt.datetime.fromtimestamp((now - 2 * HOUR_NS) / 1e9, tz=dt.UTC)
    assert ids(pyflare.traces(store=url)) == {old, new}
    assert ids(pyflare.traces(since="1h", store=url)) == {new}
    assert ids(pyflare.traces(since="4h", store=url)) == {old, new}
    assert ids(pyflare.traces(until="1h", store=url)) == {old}
    assert ids(pyflare.traces(since=two_hours_ago.isoformat(), store=url)) == {new}
    assert ids(pyflare.traces(since=two_hours_ago, store=url)) == {new}
    naive_utc = two_hours_ago.replace(tzinfo=None)  # naive means UTC
    assert ids(pyflare.traces(since=naive_utc, store=url)) == {new}
    assert ids(pyflare.traces(since=now - 2 * HOUR_NS, store=url)) == {new}
    in_paris = two_hours_ago.astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert ids(pyflare.traces(since=in_paris.isoformat(), store=url)) == {new}


def test_filters(store: dict[str, Any]) -> None:
    url, old, new = store["url"], store["old"], store["new"]
    assert ids(pyflare.traces(model_id="gpt-4o-mini", store=url)) == {new}
    assert ids(pyflare.traces(text="REFUNDS", store=url)) == {old}
    assert ids(pyflare.traces(attributes={"index": "docs"}, store=url)) == {old, new}
    assert ids(pyflare.traces(service="pyflare-test", store=url)) == {old, new}
    assert ids(pyflare.traces(service="other", store=url)) == set()
    assert ids(pyflare.traces(min_duration="2ms", store=url)) == {new}
    assert ids(pyflare.traces(min_duration=2_000_000, store=url)) == {new}
    assert len(pyflare.traces(limit=1, store=url)) == 1
    assert ids(pyflare.traces(limit=1, offset=1, store=url)) == {old}  # newest first


def test_dataframe_types(store: dict[str, Any]) -> None:
    url, old, new = store["url"], store["old"], store["new"]
    listed = pyflare.traces(store=url).set_index("trace_id")
    for column in ("input_tokens", "output_tokens", "total_tokens", "span_count", "duration_ns"):
        assert listed[column].dtype == "Int64", column
    assert listed.loc[new, "total_tokens"] == 42
    assert listed.loc[old, "total_tokens"] is pd.NA  # unknown, not 0
    assert listed.loc[new, "span_count"] == 3
    assert listed["start_time"].dtype == "datetime64[ns]"
    assert listed["service_name"].dtype == "string"

    spans = pyflare.spans(new, store=url)
    assert list(spans["operation_name"]) == ["chain", "lookup", "ask"]  # tree order
    assert list(spans["depth"]) == [0, 1, 1]
    assert spans["input_tokens"].dtype == "Int64"
    assert spans["input_tokens"].isna().tolist() == [True, True, False]
    attributes = spans["attributes"].tolist()
    assert all(isinstance(a, dict) for a in attributes)
    assert attributes[1]["index"] == "docs"
    assert isinstance(spans["resource"][0], dict)
    assert spans["events"].map(len).tolist() == [0, 0, 0]

    # DuckDB sums BIGINT to HUGEINT: still integers here, not Decimal objects.
    summed = pyflare.sql(
        "SELECT sum(total_tokens) AS tokens, sum(cost_micros) AS cost FROM traces", store=url
    )
    assert summed["tokens"].dtype == "Int64"
    assert summed["tokens"][0] == 42
    assert summed["cost"][0] is pd.NA

    view = pyflare.get_trace(new.upper(), store=url)
    assert view.span_count == 3


def test_store_forms(
    store: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path: Path = store["path"]
    assert len(pyflare.traces(store=str(path))) == 2  # a bare path is fine
    monkeypatch.chdir(path.parent)
    assert len(pyflare.traces(store="duckdb:///./a.duckdb")) == 2
    monkeypatch.setenv("PYFLARE_STORE", "a.duckdb")
    assert len(pyflare.traces()) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "failed"}, "status='failed' is not valid; expected one of ok, error, unset"),
        ({"limit": 0}, "limit must be an integer from 1 to 10000, got 0"),
        ({"limit": 10_001}, "limit must be an integer from 1 to 10000, got 10001"),
        ({"limit": "5"}, "limit must be an integer from 1 to 10000, got '5'"),
        ({"limit": True}, "limit must be an integer"),
        ({"offset": -1}, "offset must be a non-negative integer"),
        ({"since": "yesterday"}, "since='yesterday' is neither a duration"),
        ({"until": "2026-13-45"}, "until='2026-13-45' is neither a duration"),
        ({"since": 1.5}, "since must be a duration string, an ISO 8601 string"),
        ({"since": True}, "since must be a time"),
        ({"min_duration": "fast"}, "min_duration='fast' is not a duration"),
        ({"min_duration": 1.5}, "min_duration must be like '500ms' or nanoseconds"),
        ({"attributes": {"k": 1}}, "attributes must be a mapping of strings to strings"),
        ({"store": 5}, "store must be a string"),
        ({"store": "postgres://db/x"}, "store='postgres://db/x' is not valid"),
        ({"store": "none"}, "store='none' names no store"),
    ],
    ids=lambda v: "-".join(f"{k}={v!r}" for k, v in v.items()) if isinstance(v, dict) else None,
)
def test_bad_traces_arguments(kwargs: dict[str, Any], message: str, tmp_path: Path) -> None:
    kwargs.setdefault("store", f"duckdb:///{tmp_path / 'never-opened.duckdb'}")
    with pytest.raises(pyflare.InvalidArgumentError) as caught:
        pyflare.traces(**kwargs)
    assert message in str(caught.value)
    assert not (tmp_path / "never-opened.duckdb").exists()


@pytest.mark.parametrize("trace_id", ["xyz", "abc12", "g" * 32, "0" * 33, 123, None])
def test_bad_trace_ids(trace_id: Any, store: dict[str, Any]) -> None:
    with pytest.raises(pyflare.InvalidArgumentError, match="trace_id must be 32 hex characters"):
        pyflare.spans(trace_id, store=store["url"])


def test_a_unique_prefix_names_a_trace(store: dict[str, Any], tmp_path: Path) -> None:
    url, new = store["url"], store["new"]
    full = pyflare.spans(new, store=url)
    by_prefix = pyflare.spans(new[:8].upper(), store=url)
    assert list(by_prefix["span_id"]) == list(full["span_id"])
    assert pyflare.get_trace(new[:6], store=url).trace_id == new
    unknown = next(p for p in ("000000", "ffffff", "123456") if not new.startswith(p))
    with pytest.raises(pyflare.InvalidArgumentError, match=f"no trace id starts with '{unknown}'"):
        pyflare.spans(unknown, store=url)


def test_an_ambiguous_prefix_says_so(tmp_path: Path) -> None:
    path = tmp_path / "twins.duckdb"
    with DuckDBSpanStore(path) as db:
        with capture_spans() as c:  # sequential ids: 000…001 and 000…002
            lookup("one")
            lookup("two")
        db.write(c.batch())
    with pytest.raises(pyflare.InvalidArgumentError, match="'000000' is ambiguous"):
        pyflare.spans("000000", store=f"duckdb:///{path}")


def test_sql_needs_a_string(store: dict[str, Any]) -> None:
    with pytest.raises(pyflare.InvalidArgumentError, match="sql\\(\\) needs the query as a string"):
        pyflare.sql(b"SELECT 1", store=store["url"])  # type: ignore[arg-type]


def test_missing_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYFLARE_STORE", raising=False)
    monkeypatch.delenv("PYFLARE_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    with pytest.raises(pyflare.StoreError, match=r"there is no PyFlare store at \.pyflare/pyflare"):
        pyflare.traces()
    with pytest.raises(pyflare.StoreError, match=r"there is no PyFlare store at elsewhere\.duckdb"):
        pyflare.spans("0" * 32, store="elsewhere.duckdb")
    assert list(tmp_path.iterdir()) == []  # reading never creates a store
    monkeypatch.setenv("PYFLARE_ENDPOINT", "http://collector:4318")
    with pytest.raises(pyflare.StoreError, match="no local store is configured"):
        pyflare.traces()
