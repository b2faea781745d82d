"""Tree order for the spans of one trace (shared by every store)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

__all__ = ["tree_order"]


def _order(
    span_ids: Sequence[str], parent_ids: Sequence[str | None], starts: Sequence[int]
) -> tuple[list[int], list[int]]:
    """Depth-first order (parent before children, siblings by start time).

    Spans whose parent is not in the trace (lost, or not yet arrived) are
    treated as roots, so every span appears exactly once. In bad data where
    parents form a cycle, no span of the cycle is a root: the earliest one
    becomes a root after the others, so its subtree keeps its shape.
    """

    def by_start(index: int) -> tuple[int, str]:
        return starts[index], span_ids[index]

    known = set(span_ids)
    children: dict[str | None, list[int]] = {}
    for index, parent in enumerate(parent_ids):
        key = parent if parent in known else None
        children.setdefault(key, []).append(index)
    for siblings in children.values():
        siblings.sort(key=by_start)
    order: list[int] = []
    depths: list[int] = []
    seen = [False] * len(span_ids)

    def walk(roots: list[int]) -> None:
        stack = [(index, 0) for index in reversed(roots)]
        while stack:
            index, depth = stack.pop()
            if seen[index]:  # a cycle, or a span id repeated in bad data
                continue
            seen[index] = True
            order.append(index)
            depths.append(depth)
            for child in reversed(children.get(span_ids[index], ())):
                if not seen[child]:
                    stack.append((child, depth + 1))

    walk(children.get(None, []))
    if len(order) < len(span_ids):
        for index in sorted(range(len(span_ids)), key=by_start):
            if not seen[index]:
                walk([index])
    return order, depths


def tree_order(table: pa.Table) -> pa.Table:
    """Reorder canonical rows of one trace into tree order and add ``depth``."""
    span_ids = table.column("span_id").to_pylist()
    parent_ids = table.column("parent_span_id").to_pylist()
    starts = table.column("start_time").cast(pa.int64()).to_pylist()
    order, depths = _order(span_ids, parent_ids, starts)
    ordered = table.take(pa.array(order, pa.int64()))
    return ordered.append_column("depth", pa.array(depths, pa.int32()))
