"""Tree order for the spans of one trace."""

from __future__ import annotations

import random
import time

import pyarrow as pa

from pyflare.store.tree import tree_order


def table(*spans: tuple[str, str | None, int]) -> pa.Table:
    """Rows of (span_id, parent_span_id, start_time) plus a payload column."""
    return pa.table(
        {
            "span_id": pa.array([s for s, _, _ in spans], pa.string()),
            "parent_span_id": pa.array([p for _, p, _ in spans], pa.string()),
            "start_time": pa.array([t for _, _, t in spans], pa.timestamp("ns")),
            "payload": pa.array([f"row of {s}" for s, _, _ in spans], pa.string()),
        }
    )


def ordered(result: pa.Table) -> list[tuple[str, int]]:
    return list(
        zip(result.column("span_id").to_pylist(), result.column("depth").to_pylist(), strict=True)
    )


def test_parents_come_before_children_and_siblings_by_start_time() -> None:
    result = tree_order(
        table(
            ("c2", "root", 30),
            ("g1", "c1", 25),
            ("c1", "root", 20),
            ("root", None, 10),
            ("c3", "root", 30),  # same start as c2: span id breaks the tie
        )
    )
    assert ordered(result) == [("root", 0), ("c1", 1), ("g1", 2), ("c2", 1), ("c3", 1)]
    assert result.column("payload").to_pylist()[0] == "row of root"  # rows move whole
    assert result.schema.field("depth").type == pa.int32()


def test_spans_whose_parent_is_missing_are_roots() -> None:
    result = tree_order(
        table(
            ("late-orphan", "gone", 50),
            ("root", None, 10),
            ("child", "root", 20),
            ("orphan", "gone", 5),
            ("orphan-child", "orphan", 6),
        )
    )
    assert ordered(result) == [
        ("orphan", 0),
        ("orphan-child", 1),
        ("root", 0),
        ("child", 1),
        ("late-orphan", 0),
    ]


def test_a_parent_cycle_in_bad_data_ends_and_keeps_every_span() -> None:
    result = tree_order(
        table(
            ("root", None, 1),
            ("a", "b", 10),
            ("b", "a", 20),
            ("a-child", "a", 30),
            ("self", "self", 40),
        )
    )
    assert ordered(result) == [("root", 0), ("a", 0), ("b", 1), ("a-child", 1), ("self", 0)]


def test_a_span_id_repeated_in_bad_data_appears_once_per_row() -> None:
    result = tree_order(table(("root", None, 1), ("dup", "root", 2), ("dup", "root", 3)))
    assert sorted(result.column("span_id").to_pylist()) == ["dup", "dup", "root"]


def test_an_empty_trace() -> None:
    result = tree_order(table())
    assert result.num_rows == 0
    assert result.column_names == ["span_id", "parent_span_id", "start_time", "payload", "depth"]


def test_two_thousand_spans_deep_and_wide() -> None:
    rng = random.Random(7)
    chain = [(f"d{i:04d}", None if i == 0 else f"d{i - 1:04d}", i) for i in range(1000)]
    wide = [
        (f"w{i:04d}", rng.choice(["d0000", "d0500"] if i == 0 else ["d0500", "w0000"]), 5000 + i)
        for i in range(1000)
    ]
    spans = chain + wide
    rng.shuffle(spans)
    started = time.perf_counter()
    result = tree_order(table(*spans))
    assert time.perf_counter() - started < 2.0  # guards against quadratic blow-ups only
    rows = ordered(result)
    assert len(rows) == 2000
    assert len({span for span, _ in rows}) == 2000
    depth_of = dict(rows)
    assert depth_of["d0999"] == 999
    position = {span: i for i, (span, _) in enumerate(rows)}
    parents = {span: parent for span, parent, _ in spans}
    for span, parent in parents.items():
        if parent is not None:
            assert position[parent] < position[span]
            assert depth_of[span] == depth_of[parent] + 1
