"""Span rows (:data:`~pyflare.records.SPAN_SCHEMA`) gathered span by span, built in bulk.

Both OTLP encodings feed one :class:`Spans`, so a request gives the same rows
whichever way it was encoded. Per span only Python values are gathered;
attribute key sets are analysed once per distinct set (as :mod:`pyflare.records`
does for the SDK's spans) and the Arrow columns are built at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from operator import is_not
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pyflare import semconv as sc
from pyflare.mlfields import ML_COLUMNS, ML_KEYS, ml_lookups, ml_values
from pyflare.records import SPAN_SCHEMA, empty_batch
from pyflare_server.receiver._decoding import TRUNCATED, DecodeLimits, Rejections
from pyflare_server.receiver._values import (
    Attributes,
    Mask,
    attribute_map,
    flag,
    items_at,
    render,
    resource_entry,
)

__all__ = ["STATUS_NAMES", "Spans"]

STATUS_NAMES = ("unset", "ok", "error")
_KIND_NAMES = ("internal", "internal", "server", "client", "producer", "consumer")
_NO_ML: tuple[Any, ...] = (None,) * len(ML_COLUMNS)
# PyFlare's own content attributes are columns; the map doesn't repeat them.
_PROMOTED = frozenset({sc.INPUT_PREVIEW, sc.OUTPUT_PREVIEW, sc.INPUT_HASH})
# OpenInference span kind -> the OTel kind PyFlare's SDK gives such a span.
_OI_KINDS = {name: sc.SPAN_KINDS[kind] for name, (kind, _) in sc.OPENINFERENCE_KINDS.items()}


# What attributes() needs to know about a key tuple, worked out once per distinct
# tuple: whether the keys are distinct and free of pyflare.truncated (else the
# slow path), the keys stored in the map and their positions (None: all), the
# ML lookups (None: no ML key), the ML keys present and a getter of their values,
# and the position of openinference.span.kind (-1: none).
_Plan = tuple[
    bool,
    tuple[str, ...],
    Callable[[Sequence[Any]], tuple[Any, ...]] | None,
    tuple[str | None, ...] | None,
    tuple[str, ...],
    Callable[[Sequence[Any]], tuple[Any, ...]] | None,
    int,
]
_PLANS: dict[tuple[str, ...], _Plan] = {}
_MAX_PLANS = 4096


def _plan(names: tuple[str, ...]) -> _Plan:
    keep = tuple(i for i, name in enumerate(names) if name not in _PROMOTED)
    ml_positions = tuple(i for i, name in enumerate(names) if name in ML_KEYS)
    plan: _Plan = (
        len(set(names)) == len(names) and TRUNCATED not in names,
        tuple(names[i] for i in keep),
        None if len(keep) == len(names) else (items_at(keep) if keep else lambda values: ()),
        ml_lookups(names),
        tuple(names[i] for i in ml_positions),
        items_at(ml_positions) if ml_positions else None,
        names.index(sc.OI_SPAN_KIND) if sc.OI_SPAN_KIND in names else -1,
    )
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()  # key sets are few in practice; this only bounds memory
    _PLANS[names] = plan
    return plan


class Spans:
    """Columns of span rows, filled span by span and turned into one table.

    The decoders append each accepted span to ``rows`` (trace, span and parent ids
    as hex, start and end in ns, name, status name, status message, then what
    :meth:`attributes` returns: the ML columns and the kind), ``resource_rows``
    and ``events``.
    """

    def __init__(self, limits: DecodeLimits, mask: Mask | None, ingested_at_ns: int | None) -> None:
        self.limits = limits
        self.mask = mask
        self.ingested_at_ns = ingested_at_ns
        self.rejections = Rejections()
        self.rows: list[tuple[Any, ...]] = []
        self.attr_offsets = [0]
        self.attr_keys: list[str] = []
        self.attr_values: list[str] = []
        self.resources: list[tuple[list[str], list[str], str]] = []
        self.resource_rows: list[int] = []
        self.events: list[list[dict[str, Any]]] = []

    def add_resource(self, attributes: Attributes) -> int:
        """Keep a resource; returns its position for ``resource_rows``."""
        self.resources.append(resource_entry(attributes, self.limits))
        return len(self.resources) - 1

    def attributes(self, attributes: Attributes, foreign: bool, kind: int) -> tuple[Any, ...]:
        """Store a span's attribute map; returns its ML columns and its kind's name, last.

        ``foreign`` spans (not from PyFlare's SDK) are masked first; ``kind`` is
        the OTLP span kind number.
        """
        names, values, rendered, cut, dropped = attributes
        kind_name = _KIND_NAMES[kind] if 0 <= kind < 6 else "internal"
        keys = self.attr_keys
        if not names:
            if cut or dropped:
                keys.append(TRUNCATED)
                self.attr_values.append(flag(cut, dropped))
            self.attr_offsets.append(len(keys))
            return (*_NO_ML, kind_name)
        plan = _PLANS.get(names) or _plan(names)
        simple, map_keys, keep, lookups, ml_names, ml_items, oi_kind = plan
        mask = self.mask if foreign else None
        if not simple:
            return self._slow(attributes, kind, kind_name, lookups, mask)
        values_dict: dict[str, Any] | None = None
        if mask is not None:
            values_dict = dict(zip(names, values, strict=True))
            mask(values_dict)
            masked = tuple(values_dict.values())
            if any(map(is_not, values, masked)):
                texts = list(rendered)
                for index, (old, new) in enumerate(zip(values, masked, strict=True)):
                    if old is not new:
                        texts[index], was_cut = render(new, self.limits)
                        if was_cut:
                            cut.append(names[index])
                rendered = texts
                values = masked
        keys += map_keys
        self.attr_values += rendered if keep is None else keep(rendered)
        if cut or dropped:
            keys.append(TRUNCATED)
            self.attr_values.append(flag(cut, dropped))
        self.attr_offsets.append(len(keys))
        if oi_kind >= 0 and kind < 2:
            oi = values[oi_kind]
            if type(oi) is str:
                kind_name = _OI_KINDS.get(oi.upper(), kind_name)
        if lookups is None:
            return (*_NO_ML, kind_name)
        if values_dict is None:
            # Only the ML keys: ml_values() reads nothing else.
            values_dict = dict(zip(ml_names, ml_items(values), strict=True))  # type: ignore[misc]
        return (*ml_values(values_dict, lookups), kind_name)

    def _slow(
        self,
        attributes: Attributes,
        kind: int,
        kind_name: str,
        lookups: tuple[str | None, ...] | None,
        mask: Mask | None,
    ) -> tuple[Any, ...]:
        """attributes() for key tuples with repeated keys or a sender's pyflare.truncated."""
        values_dict, pairs = attribute_map(attributes, self.limits, mask)
        for key, text in pairs:
            if key not in _PROMOTED:
                self.attr_keys.append(key)
                self.attr_values.append(text)
        self.attr_offsets.append(len(self.attr_keys))
        oi = values_dict.get(sc.OI_SPAN_KIND)
        if kind < 2 and type(oi) is str:
            kind_name = _OI_KINDS.get(oi.upper(), kind_name)
        return (*(_NO_ML if lookups is None else ml_values(values_dict, lookups)), kind_name)

    def event(
        self, time_ns: int, name: str, attributes: Attributes, foreign: bool
    ) -> dict[str, Any]:
        """One entry of a span's events, its attributes masked when ``foreign``."""
        _, pairs = attribute_map(attributes, self.limits, self.mask if foreign else None)
        return {"time": time_ns, "name": name, "attributes": pairs}

    def table(self) -> pa.Table:
        rows = self.rows
        if not rows:
            return empty_batch()
        count = len(rows)
        # One conversion for every scalar column, then split.
        scalars = pa.array(rows, _ROW).flatten()
        starts, ends = scalars[3], scalars[4]
        now_ns = self.ingested_at_ns if self.ingested_at_ns is not None else time.time_ns()
        services, resources = self._resources()
        arrays = [
            *scalars[:3],
            starts.view(_TIMESTAMP),
            ends.view(_TIMESTAMP),
            pc.subtract(ends, starts),
            services,
            scalars[5],
            scalars[-1],
            *scalars[6:-1],
            _map_array(self.attr_offsets, self.attr_keys, self.attr_values),
            resources,
            (
                pa.array(self.events, _EVENTS)
                if any(self.events)
                else pa.ListArray.from_arrays(pa.array([0] * (count + 1), pa.int32()), _NO_EVENTS)
            ),
            pa.repeat(pa.scalar(now_ns // 1000, pa.timestamp("us")), count),
        ]
        return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)

    def _resources(self) -> tuple[pa.Array, pa.Array]:
        """The service_name and resource columns."""
        offsets = [0]
        keys: list[str] = []
        values: list[str] = []
        for resource_keys, resource_values, _ in self.resources:
            keys += resource_keys
            values += resource_values
            offsets.append(len(keys))
        take = pa.array(self.resource_rows, pa.int32())
        services = pa.array([service for _, _, service in self.resources], pa.string())
        return services.take(take), _map_array(offsets, keys, values).take(take)


_TIMESTAMP = pa.timestamp("ns")
# A row of Spans.rows: the scalar columns in the order the decoders gather them.
_ROW = pa.struct(
    [
        *(
            pa.field(name, pa.int64() if name.endswith("_time") else SPAN_SCHEMA.field(name).type)
            for name in (
                "trace_id",
                "span_id",
                "parent_span_id",
                "start_time",
                "end_time",
                "operation_name",
                "status_code",
                "status_message",
                *ML_COLUMNS,
                "span_kind",
            )
        )
    ]
)
_EVENTS = SPAN_SCHEMA.field("events").type
_NO_EVENTS = pa.array([], _EVENTS.value_type)


def _map_array(offsets: list[int], keys: list[str], values: list[str]) -> pa.Array:
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(keys, pa.string()), pa.array(values, pa.string())
    )
