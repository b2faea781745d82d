"""Live-stream notifications made from rows the store writer just stored.

* ``trace`` (topic ``traces``): one per root span stored, that is per finished
  trace, since a root ends last. ``model_id`` is the root's model, else the first
  model among the trace's spans in the same write; the channel keys are every model
  among them, so ``traces:gpt-4o`` hears of an agent whose root has no model but
  whose child called gpt-4o in that write. ``status`` is ``error`` when the root or
  one of those spans failed. Child spans stored in an earlier write don't count.
* ``cost`` (topic ``costs``): one per priced span (``cost_micros`` set), keyed by
  its model.
* ``drift`` (topic ``drift``): one per drift result the drift processor stored,
  keyed by its model; a drifted result is also an ``alert`` (topic ``alerts``) in
  the spec's AlertNotification shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pyflare._time import iso_ns

__all__ = ["Notification", "drift_notifications", "trace_notifications"]


@dataclass(frozen=True)
class Notification:
    """One thing to tell the subscribers of ``topic`` (all of them, or those of ``keys``)."""

    topic: str
    keys: tuple[str, ...]
    payload: dict[str, Any]


def _rows(table: pa.Table, names: list[str]) -> list[dict[str, Any]]:
    columns = {
        name: (
            table.column(name).cast(pa.int64())
            if pa.types.is_timestamp(table.schema.field(name).type)
            else table.column(name)
        ).to_pylist()
        for name in names
    }
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def trace_notifications(
    table: pa.Table, *, traces: bool = True, costs: bool = True
) -> list[Notification]:
    """The ``trace`` and ``cost`` notifications for stored spans ``table``."""
    out: list[Notification] = []
    if traces:
        out += _traces(table)
    if costs:
        out += _costs(table)
    return out


def _traces(table: pa.Table) -> list[Notification]:
    parent = table.column("parent_span_id")
    roots = table.filter(pc.or_kleene(pc.is_null(parent), pc.equal(parent, "")))
    if not roots.num_rows:
        return []
    members = table.filter(pc.is_in(table.column("trace_id"), value_set=roots.column("trace_id")))
    members = members.append_column(
        "failed", pc.equal(members.column("status_code"), "error").fill_null(False)
    )
    summary = members.group_by("trace_id").aggregate([("model_id", "distinct"), ("failed", "any")])
    by_trace = {
        row["trace_id"]: (row["model_id_distinct"], row["failed_any"])
        for row in summary.to_pylist()
    }
    out: list[Notification] = []
    names = ["trace_id", "model_id", "start_time", "duration_ns", "service_name", "operation_name"]
    for root in _rows(roots, names):
        models, failed = by_trace[root["trace_id"]]
        seen = [m for m in models if m]
        model = root["model_id"] or (seen[0] if seen else None)
        keys = tuple(dict.fromkeys([model, *seen])) if model else ()
        out.append(
            Notification(
                "traces",
                keys,
                {
                    "trace_id": root["trace_id"],
                    "model_id": model,
                    "status": "error" if failed else "ok",
                    "duration_ms": root["duration_ns"] / 1e6,
                    "timestamp": iso_ns(root["start_time"]),
                    "service_name": root["service_name"],
                    "operation_name": root["operation_name"],
                },
            )
        )
    return out


def _costs(table: pa.Table) -> list[Notification]:
    priced = table.filter(pc.is_valid(table.column("cost_micros")))
    names = [
        "trace_id",
        "span_id",
        "model_id",
        "service_name",
        "start_time",
        "cost_micros",
        "input_tokens",
        "output_tokens",
    ]
    out: list[Notification] = []
    for span in _rows(priced, names):
        model = span["model_id"]
        out.append(
            Notification(
                "costs",
                (model,) if model else (),
                {
                    "trace_id": span["trace_id"],
                    "span_id": span["span_id"],
                    "model_id": model,
                    "service_name": span["service_name"],
                    "cost_micros": span["cost_micros"],
                    "cost_usd": span["cost_micros"] / 1e6,
                    "input_tokens": span["input_tokens"],
                    "output_tokens": span["output_tokens"],
                    "timestamp": iso_ns(span["start_time"]),
                },
            )
        )
    return out


def drift_notifications(rows: list[dict[str, Any]]) -> list[Notification]:
    """The ``drift`` and ``alert`` notifications for drift result rows just stored."""
    from pyflare_server.api.drift import alert_payload

    out: list[Notification] = []
    for row in rows:
        model = str(row["model_id"])
        out.append(
            Notification(
                "drift",
                (model,),
                {
                    "model_id": model,
                    "drift_type": row["drift_type"],
                    "score": row["score"],
                    "threshold": row["threshold"],
                    "is_drifted": row["is_drifted"],
                    "method": row.get("method"),
                    "window_end": iso_ns(int(row["window_end"])),
                    "timestamp": iso_ns(int(row["computed_at"])),
                },
            )
        )
        alert = alert_payload(model, row)
        if alert is not None:
            out.append(
                Notification(
                    "alerts",
                    (model,),
                    {
                        "alert_id": f"drift:{model}:{row['drift_type']}:{int(row['window_end'])}",
                        "severity": alert["severity"],
                        "title": alert["title"],
                        "model_id": model,
                        "timestamp": alert["triggered_at"],
                        "alert_type": "drift",
                        "description": alert["description"],
                    },
                )
            )
    return out
