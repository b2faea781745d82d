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
    treated as roots, so every span appears exactly once.
    """
    known = set(span_ids)
    children: dict[str | None, list[int]] = {}
    for index, parent in enumerate(parent_ids):
        key = parent if parent in known else None
        children.setdefault(key, []).append(index)
    for siblings in children.values():
        siblings.sort(key=lambda i: (starts[i], span_ids[i]))
    order: list[int] = []
    depths: list[int] = []
    stack = [(i, 0) for i in reversed(children.get(None, []))]
    seen: set[int] = set()
    while stack:
        index, depth = stack.pop()
        if index in seen:  # a cycle in bad data must not loop forever
            continue
        seen.add(index)
        order.append(index)
        depths.append(depth)
        for child in reversed(children.get(span_ids[index], [])):
            stack.append((child, depth + 1))
    # Members of a parent cycle have no root; append them so nothing is lost.
    for index in range(len(span_ids)):
        if index not in seen:
            order.append(index)
            depths.append(0)
    return order, depths


def tree_order(table: pa.Table) -> pa.Table:
    """Reorder canonical rows of one trace into tree order and add ``depth``."""
    span_ids = table.column("span_id").to_pylist()
    parent_ids = table.column("parent_span_id").to_pylist()
    starts = table.column("start_time").cast(pa.int64()).to_pylist()
    order, depths = _order(span_ids, parent_ids, starts)
    ordered = table.take(pa.array(order, pa.int64()))
    return ordered.append_column("depth", pa.array(depths, pa.int32()))
