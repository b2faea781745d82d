from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest
from rich.console import Console

from pyflare.errors import InvalidArgumentError
from pyflare.views import TraceView, format_cost, format_duration, traces_table

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
T0 = pd.Timestamp("2025-03-01 12:00:00")
MS = 1_000_000


def span(
    span_id: str,
    *,
    parent: str | None = None,
    depth: int = 0,
    start_ms: float = 0.0,
    duration_ms: float = 100.0,
    name: str | None = None,
    kind: str | None = None,
    status: str = "ok",
    message: str | None = None,
    model: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cost_micros: int | None = None,
    input_preview: str | None = None,
    output_preview: str | None = None,
    attributes: Any = None,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One canonical span row (DESIGN.md §3) plus depth."""
    start = T0 + pd.Timedelta(int(start_ms * MS), "ns")
    duration_ns = int(duration_ms * MS)
    attrs = attributes if attributes is not None else {}
    if kind is not None and isinstance(attrs, dict):
        attrs = {"pyflare.span.kind": kind, **attrs}
    total = None
    if input_tokens is not None or output_tokens is not None:
        total = (input_tokens or 0) + (output_tokens or 0)
    return {
        "trace_id": TRACE_ID,
        "span_id": span_id,
        "parent_span_id": parent,
        "start_time": start,
        "end_time": start + pd.Timedelta(duration_ns, "ns"),
        "duration_ns": duration_ns,
        "service_name": "rag-api",
        "operation_name": name or span_id,
        "span_kind": "client" if model else "internal",
        "status_code": status,
        "status_message": message,
        "model_id": model,
        "model_version": None,
        "inference_type": "llm" if model else None,
        "input_preview": input_preview,
        "output_preview": output_preview,
        "input_hash": None,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": total,
        "cost_micros": cost_micros,
        "attributes": attrs,
        "resource": [("service.name", "rag-api")],
        "events": events or [],
        "depth": depth,
    }


def frame(*rows: dict[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=list(span("x").keys()))
    for column in ("input_tokens", "output_tokens", "total_tokens", "cost_micros"):
        df[column] = df[column].astype("Int64")
    df["start_time"] = df["start_time"].astype("datetime64[ns]")
    df["end_time"] = df["end_time"].astype("datetime64[ns]")
    return df


def realistic() -> pd.DataFrame:
    return frame(
        span(
            "a1",
            name="support_agent.run",
            kind="agent",
            duration_ms=1240,
            input_preview="How do I rotate my API key?",
            output_preview="Go to Settings → API keys and click Rotate.",
        ),
        span(
            "r1",
            parent="a1",
            depth=1,
            start_ms=10,
            duration_ms=180,
            name="vector_search",
            kind="retriever",
            input_preview="rotate API key",
        ),
        span(
            "e1",
            parent="r1",
            depth=2,
            start_ms=12,
            duration_ms=35,
            name="embed_query",
            kind="embedding",
            model="text-embedding-3-small",
            input_tokens=6,
            cost_micros=1,
        ),
        span(
            "l1",
            parent="a1",
            depth=1,
            start_ms=200,
            duration_ms=820,
            name="chat gpt-4o",
            kind="llm",
            model="gpt-4o-2024-08-06",
            input_tokens=1520,
            output_tokens=212,
            cost_micros=5920,
            input_preview="You are a helpful support agent. <context>…</context>",
            output_preview="Go to Settings → API keys and click Rotate.",
        ),
        span(
            "t1",
            parent="a1",
            depth=1,
            start_ms=1030,
            duration_ms=190,
            name="lookup_account",
            kind="tool",
            status="error",
            message="TimeoutError: account service did not answer in 150 ms",
            events=[
                {
                    "time": T0,
                    "name": "exception",
                    "attributes": {"exception.message": "timed out"},
                }
            ],
        ),
    )


def render_text(view: Any, width: int = 120) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(view)
    return console.export_text()


# --- format_* ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "expected"),
    [
        (None, "—"),
        (0, "0 ns"),
        (850, "850 ns"),
        (8_500, "8.50 µs"),
        (850_000, "850 µs"),
        (999_700, "1.00 ms"),
        (12_300_000, "12.3 ms"),
        (1_240_000_000, "1.24 s"),
        (59_990_000_000, "1m 00s"),
        (123_000_000_000, "2m 03s"),
        (3_720_000_000_000, "1h 02m"),
        (-5_000_000, "-5.00 ms"),
    ],
)
def test_format_duration(ns: int | None, expected: str) -> None:
    assert format_duration(ns) == expected


@pytest.mark.parametrize(
    ("micros", "expected"),
    [
        (None, "—"),
        (0, "$0.00"),
        (1, "$0.000001"),
        (1_234, "$0.001234"),
        (500_000, "$0.50"),
        (999_999, "$0.999999"),
        (1_000_000, "$1.00"),
        (12_345_678, "$12.35"),
        (1_234_567_890, "$1,234.57"),
        (-500_000, "-$0.50"),
    ],
)
def test_format_cost(micros: int | None, expected: str) -> None:
    assert format_cost(micros) == expected


# --- properties ---------------------------------------------------------------


def test_summary_properties() -> None:
    view = TraceView(realistic())
    assert view.trace_id == TRACE_ID
    assert view.span_count == 5
    assert view.error_count == 1
    assert view.duration_ns == 1240 * MS
    assert view.total_tokens == 6 + 1520 + 212
    assert view.cost_micros == 5921
    assert view.spans is not None
    assert repr(view) == (
        f"<TraceView {TRACE_ID[:16]} 1.24 s, 5 spans, 1 error, 1,738 tokens, cost $0.005921>"
    )


def test_unpriced_trace_shows_dash_not_zero() -> None:
    view = TraceView(frame(span("a", model="m", input_tokens=3)))
    assert view.cost_micros is None
    page = view._repr_html_()
    assert "cost —" in page
    assert "$0" not in page
    assert "$0" not in render_text(view)


def test_rejects_several_traces() -> None:
    df = frame(span("a"), span("b"))
    df.loc[1, "trace_id"] = "f" * 32
    with pytest.raises(InvalidArgumentError, match="one trace"):
        TraceView(df)


# --- HTML ---------------------------------------------------------------------


def bar_lefts(page: str) -> list[float]:
    return [float(m) for m in re.findall(r'class="pf-bar[^"]*" style="left:([\d.]+)%', page)]


def bar_widths(page: str) -> list[float]:
    return [float(m) for m in re.findall(r'class="pf-bar[^"]*" style="[^"]*width:([\d.]+)%', page)]


def test_bar_geometry() -> None:
    view = TraceView(
        frame(
            span("root", duration_ms=100),
            span("child", parent="root", depth=1, start_ms=50, duration_ms=25),
        )
    )
    page = view._repr_html_()
    assert bar_lefts(page) == pytest.approx([0.0, 50.0])
    assert bar_widths(page) == pytest.approx([100.0, 25.0])
    # The child is indented under the root.
    assert "padding-left:22px" in page


def test_zero_duration_spans_still_render() -> None:
    page = TraceView(frame(span("a", duration_ms=0), span("b", duration_ms=0)))._repr_html_()
    assert bar_widths(page) == [0.0, 0.0]
    assert "min-width:2px" in page
    assert "0 ns" in page


def test_span_at_the_very_end_is_anchored_right() -> None:
    page = TraceView(
        frame(span("root", duration_ms=100), span("late", start_ms=100, duration_ms=0))
    )._repr_html_()
    assert 'style="right:0;width:0.00%"' in page


def test_everything_is_escaped() -> None:
    evil = "<script>alert('x')</script>"
    view = TraceView(
        frame(
            span(
                "a",
                name=evil,
                kind=evil,
                status="error",
                message=evil,
                model=evil,
                input_preview=evil,
                output_preview='" onmouseover="alert(1)',
                attributes={evil: evil},
                events=[{"time": T0, "name": evil, "attributes": {}}],
            )
        )
    )
    view._trace_id = evil  # the id is user data too
    page = view._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert '" onmouseover' not in page
    # rich never interprets names as markup either.
    assert "[bold]" in render_text(TraceView(frame(span("a", name="[bold]x"))))


def test_error_rows_are_marked() -> None:
    page = TraceView(realistic())._repr_html_()
    rows = re.findall(r"<tr[^>]*>", page)
    error_rows = [r for r in rows if 'class="pf-err"' in r]
    assert len(error_rows) == 1
    assert "TimeoutError: account service did not answer" in error_rows[0]
    assert "pf-bad" in page  # the header's error count is highlighted


def test_tooltips_carry_previews_and_messages() -> None:
    page = TraceView(realistic())._repr_html_()
    assert "input: How do I rotate my API key?" in page
    assert "event: exception: timed out" in page
    assert "model: gpt-4o-2024-08-06" in page


def test_optional_columns_only_when_present() -> None:
    plain = TraceView(frame(span("a"), span("b", parent="a", depth=1)))._repr_html_()
    assert "<th>Model</th>" not in plain
    assert "Tokens</th>" not in plain
    assert "Cost</th>" not in plain
    rich_page = TraceView(realistic())._repr_html_()
    assert "<th>Model</th>" in rich_page
    assert "Tokens</th>" in rich_page
    assert "Cost</th>" in rich_page


def test_long_names_are_truncated() -> None:
    page = TraceView(frame(span("a", name="x" * 500, input_preview="y" * 5000)))._repr_html_()
    assert "x" * 500 not in page
    assert "x" * 79 + "…" in page
    assert "y" * 400 not in page


def test_empty_trace() -> None:
    view = TraceView(frame())
    assert view.trace_id is None
    assert view.span_count == 0
    assert view.duration_ns == 0
    assert view.total_tokens is None
    assert view.cost_micros is None
    assert "0 spans" in view._repr_html_()
    assert "0 spans" in render_text(view)
    assert "(empty)" in repr(view)


def test_orphan_spans() -> None:
    view = TraceView(
        frame(
            span("root", duration_ms=100),
            span("lost", parent="not-in-trace", start_ms=20, duration_ms=10),
            span("lost-child", parent="lost", depth=1, start_ms=22, duration_ms=5),
        )
    )
    page = view._repr_html_()
    assert page.count("(orphan)") == 1
    assert "parent span not in this trace" in page
    text = render_text(view)
    assert "└── lost [internal]  10.0 ms  (orphan)" in text
    assert "    └── lost-child [internal]  5.00 ms" in text
    assert "(orphan)" in text


def test_attributes_as_pyarrow_style_pairs() -> None:
    row = span("a", attributes=[("pyflare.span.kind", "retriever"), ("db.system", "qdrant")])
    page = TraceView(frame(row))._repr_html_()
    assert "pf-k-retriever" in page
    assert "db.system = qdrant" in page


def test_frame_read_back_from_arrow() -> None:
    import pyarrow as pa  # a dependency: never skipped

    df = realistic().drop(columns="events")
    table = pa.Table.from_pandas(df.drop(columns="attributes"), preserve_index=False)
    pairs = [list(d.items()) for d in df["attributes"]]
    table = table.append_column("attributes", pa.array(pairs, pa.map_(pa.string(), pa.string())))
    view = TraceView(table.to_pandas())
    assert view.cost_micros == 5921
    assert "pf-k-retriever" in view._repr_html_()


def test_cost_blank_where_nothing_was_priced() -> None:
    page = TraceView(realistic())._repr_html_()
    agent_row = next(r for r in page.split("<tr") if "support_agent.run" in r and "pf-badge" in r)
    assert agent_row.endswith('<td class="pf-num"></td></tr>')


def test_kind_falls_back_to_span_kind() -> None:
    page = TraceView(frame(span("a")))._repr_html_()
    assert ">internal</span>" in page


def test_depth_computed_when_column_missing() -> None:
    df = frame(span("a"), span("b", parent="a"), span("c", parent="b")).drop(columns="depth")
    page = TraceView(df)._repr_html_()
    assert "padding-left:36px" in page


def test_two_thousand_spans_are_bounded() -> None:
    rows = [span("root", duration_ms=2000, kind="agent")]
    rows += [
        span(
            f"s{i}",
            parent="root",
            depth=1,
            start_ms=i,
            duration_ms=1,
            kind="tool",
            status="error" if i == 1998 else "ok",
            input_preview="p" * 1000,
        )
        for i in range(1999)
    ]
    view = TraceView(frame(*rows))
    assert view.span_count == 2000
    page = view._repr_html_()
    assert len(page) < 1_000_000
    assert "… 1,500 more spans (1 with errors)" in page
    text = render_text(view)
    assert "… 1,500 more spans" in text
    assert len(text.splitlines()) < 1100
    small = TraceView(frame(*rows), max_spans=10)._repr_html_()
    assert "… 1,990 more spans" in small


# --- rich ----------------------------------------------------------------------


def test_rich_tree() -> None:
    text = render_text(TraceView(realistic()))
    lines = text.splitlines()
    assert lines[0].startswith(f"Trace {TRACE_ID[:16]}")
    assert "1.24 s" in lines[0]
    assert "1 error" in lines[0]
    assert "support_agent.run [agent]  1.24 s" in text
    assert "chat gpt-4o [llm]  820 ms  gpt-4o-2024-08-06  1,732 tok  $0.00592" in text
    assert "✗ TimeoutError: account service did not answer in 150 ms" in text
    assert "in: How do I rotate my API key?" in text
    # Tree guides show nesting: embed_query sits under vector_search.
    embed = next(line for line in lines if "embed_query" in line)
    search = next(line for line in lines if "vector_search" in line)
    assert embed.index("embed_query") > search.index("vector_search")


# --- traces_table -------------------------------------------------------------


def test_traces_table() -> None:
    df = pd.DataFrame(
        {
            "trace_id": [TRACE_ID, "a" * 32],
            "start_time": [T0, T0 + pd.Timedelta(5, "s")],
            "service_name": ["rag-api", "batch"],
            "operation_name": ["support_agent.run", "nightly_eval"],
            "span_count": [5, 12],
            "duration_ns": [1_240_000_000, 125_000_000_000],
            "status_code": ["unset", "error"],
            "error_count": [0, 2],
            "total_tokens": pd.array([1738, None], dtype="Int64"),
            "cost_micros": pd.array([5921, None], dtype="Int64"),
            "model_id": ["gpt-4o", None],
        }
    )
    text = render_text(traces_table(df), width=160)
    assert "4bf92f35" in text
    assert TRACE_ID not in text
    assert "2025-03-01 12:00" in text  # not today: the date is shown
    assert "rag-api" in text and "batch" in text  # two services: a service column
    assert "support_agent.run" in text
    assert "1.24 s" in text
    assert "2m 05s" in text
    assert "✓ ok" in text
    assert "✗ 2 errors" in text
    assert "1,738" in text
    assert "$0.005921" in text
    assert "$0" not in text.replace("$0.005921", "")
    assert "gpt-4o" in text


def test_traces_table_today_and_one_service() -> None:
    now = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")
    df = pd.DataFrame(
        {
            "trace_id": [TRACE_ID, "b" * 32],
            "start_time": [now, now],
            "service_name": ["rag-api", "rag-api"],
            "operation_name": ["answer", "answer"],
            "span_count": [3, 4],
            "duration_ns": [1_000_000, 2_000_000],
            "status_code": ["ok", "ok"],
            "error_count": [0, 0],
            "total_tokens": pd.array([10, 20], dtype="Int64"),
            "cost_micros": pd.array([None, None], dtype="Int64"),
            "model_id": ["gpt-4o", "gpt-4o"],
        }
    )
    text = render_text(traces_table(df), width=80)
    assert "2 traces of rag-api (times UTC)" in text
    assert now.strftime("%H:%M:%S") in text
    assert now.strftime("%Y-%m-%d") not in text  # today's traces show the time alone
    assert "service" not in text.splitlines()[2]  # no service column for one service
    # Everything fits 80 columns: ids whole, every column there.
    assert "4bf92f35" in text and "bbbbbbbb" in text
    for header in ("trace", "start", "operation", "model", "spans", "duration", "tokens", "cost"):
        assert header in text


def test_traces_table_empty() -> None:
    text = render_text(traces_table(pd.DataFrame()))
    assert "0 traces" in text
