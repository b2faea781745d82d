"""The cost processor: prices a batch of spans and writes its cost rows, in bulk.

Shared by the SDK's local exporter and the server's pipeline. For every span with
a model that is an LLM or embedding call (or carries token counts) it:

- reads the provider, API host, cached and reasoning tokens and the attribution
  keys out of the attribute maps (Arrow kernels over the flat maps);
- counts tokens it can estimate (a call without usage whose preview was not cut)
  and flags them ``pyflare.tokens.estimated=true``;
- resolves a price once per distinct (model, provider, host) of the batch, then
  prices every row with numpy integer arithmetic (the same as
  :meth:`~pyflare.cost.prices.ModelPrice.cost`);
- keeps a cost the span was given (``pyflare.cost.micros``, price_source 'span');
- leaves an unpriced call's cost NULL, flags it ``pyflare.cost.unpriced=true``,
  counts it (:attr:`CostProcessor.unpriced_total`) and warns once per model.

A cost the processor computed goes in the ``cost_micros`` column only (no
attribute), so :meth:`CostProcessor.recompute` can tell it from a user-given one:
a span's cost is the user's when its attributes hold ``pyflare.cost.micros``
without ``pyflare.cost.source``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pyflare import semconv as sc
from pyflare.cost._arrow_maps import edit_rows, map_values
from pyflare.cost._pricing import price_rows
from pyflare.cost.attribution import Attribution
from pyflare.cost.prices import PriceBook
from pyflare.mlfields import PREVIEW_CHARS
from pyflare.records import COST_SCHEMA, SPAN_SCHEMA

__all__ = ["CostOutput", "CostProcessor"]

logger = logging.getLogger(__name__)

_PROVIDER_KEYS = sc.PROVIDER_KEYS
_CACHED_KEYS = sc.CACHED_INPUT_TOKEN_KEYS
_REASONING_KEYS = sc.REASONING_TOKEN_KEYS
_OWN_KEYS = (
    sc.COST_MICROS,
    sc.COST_SOURCE,
    sc.COST_PRICE_MODEL,
    sc.TOKENS_ESTIMATED,
    sc.COST_UNPRICED,
)
_MODEL_CALLS = ("llm", "embedding")
_FLAGS = (sc.COST_UNPRICED, sc.TOKENS_ESTIMATED)


@dataclass(frozen=True)
class CostOutput:
    """The priced spans (SPAN_SCHEMA) and their cost rows (COST_SCHEMA)."""

    spans: pa.Table
    costs: pa.Table


def _first(values: dict[str, pa.Array], keys: tuple[str, ...], length: int) -> pa.Array:
    found = [values[k] for k in keys if k in values]
    if not found:
        return pa.nulls(length, pa.string())
    return found[0] if len(found) == 1 else pc.coalesce(*found)


def _ints(text: pa.Array) -> pa.Array:
    """Token counts written as strings -> int64; anything not a whole number >= 0 -> null."""
    digits = pc.fill_null(pc.utf8_is_digit(text), False)
    digits = pc.and_(digits, pc.less_equal(pc.utf8_length(text), 18))
    return pc.if_else(digits, text, None).cast(pa.int64())


class CostProcessor:
    """Prices span batches. Thread-safe; keep one per pipeline (it counts and warns)."""

    def __init__(
        self, price_book: PriceBook | None = None, attribution: Attribution | None = None
    ) -> None:
        self._book = price_book
        self.attribution = attribution or Attribution()
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        #: Model calls left unpriced (NULL cost) since this processor was made.
        self.unpriced_total = 0

    @property
    def price_book(self) -> PriceBook:
        """The book in use (:meth:`PriceBook.default` unless one was given)."""
        return self._book if self._book is not None else PriceBook.default()

    def apply(self, batch: pa.Table) -> CostOutput:
        """Fill costs and tokens on ``batch`` (SPAN_SCHEMA) and build its cost rows."""
        return self._run(batch, recompute=False)

    def recompute(self, batch: pa.Table) -> CostOutput:
        """Like :meth:`apply`, repricing every cost except those users gave (price_source 'span')."""
        return self._run(batch, recompute=True)

    # --- the pass -------------------------------------------------------------

    def _run(self, batch: pa.Table, *, recompute: bool) -> CostOutput:
        if not isinstance(batch, pa.Table):
            raise TypeError(f"CostProcessor needs a pyarrow Table, got {type(batch).__name__}")
        missing = [name for name in SPAN_SCHEMA.names if name not in batch.schema.names]
        if missing:
            raise ValueError(f"span batch lacks column(s) {missing} of SPAN_SCHEMA")
        if batch.num_rows == 0:
            return CostOutput(batch, COST_SCHEMA.empty_table())
        inference = batch.column("inference_type")
        has_model = pc.fill_null(pc.not_equal(batch.column("model_id"), ""), False)
        is_call = pc.fill_null(pc.is_in(inference, value_set=pa.array(_MODEL_CALLS)), False)
        has_tokens = pc.or_(
            batch.column("input_tokens").is_valid(), batch.column("output_tokens").is_valid()
        )
        selected = pc.and_(
            has_model, pc.or_(is_call, pc.or_(has_tokens, batch.column("total_tokens").is_valid()))
        )
        rows = np.flatnonzero(
            selected.to_numpy(zero_copy_only=False)
            if isinstance(selected, pa.Array)
            else selected.combine_chunks().to_numpy(zero_copy_only=False)
        )
        if len(rows) == 0:
            return CostOutput(batch, COST_SCHEMA.empty_table())
        calls = batch.drop_columns(["events"]).take(pa.array(rows))
        in_child = map_values(calls.column("attributes"), [sc.USAGE_IN_CHILD]).get(
            sc.USAGE_IN_CHILD
        )
        if in_child is not None:
            # A framework span whose provider call has its own span: counted there.
            keep = pc.invert(pc.fill_null(pc.equal(in_child, "true"), False))
            rows = rows[keep.to_numpy(zero_copy_only=False)]
            if len(rows) == 0:
                return CostOutput(batch, COST_SCHEMA.empty_table())
            calls = calls.filter(keep)
        return self._price(batch, calls, rows, recompute=recompute)

    def _price(
        self, batch: pa.Table, calls: pa.Table, rows: np.ndarray, *, recompute: bool
    ) -> CostOutput:
        m = calls.num_rows
        attribution = self.attribution
        wanted = [*_PROVIDER_KEYS, sc.SERVER_ADDRESS, *_CACHED_KEYS, *_REASONING_KEYS, *_OWN_KEYS]
        attrs = map_values(calls.column("attributes"), [*wanted, *attribution.all_keys()])
        res = map_values(calls.column("resource"), attribution.all_keys())
        attr_get: Callable[[str], pa.Array | None] = lambda key: attrs.get(key)  # noqa: E731
        res_get: Callable[[str], pa.Array | None] = lambda key: res.get(key)  # noqa: E731

        model = calls.column("model_id").combine_chunks()
        inference = calls.column("inference_type").combine_chunks()
        provider = _first(attrs, _PROVIDER_KEYS, m)
        host = _first(attrs, (sc.SERVER_ADDRESS,), m)
        cached = _ints(_first(attrs, _CACHED_KEYS, m))
        reasoning = _ints(_first(attrs, _REASONING_KEYS, m))
        input_tokens = calls.column("input_tokens").combine_chunks()
        output_tokens = calls.column("output_tokens").combine_chunks()
        total_tokens = calls.column("total_tokens").combine_chunks()
        is_embedding = pc.fill_null(pc.equal(inference, "embedding"), False)
        # An embedding's tokens are all input; OpenInference may report only a total.
        input_tokens = pc.if_else(
            pc.and_(is_embedding, input_tokens.is_null()), total_tokens, input_tokens
        )
        for key in _OWN_KEYS:
            attrs.setdefault(key, pa.nulls(m, pa.string()))
        was_flagged = pc.fill_null(pc.equal(attrs[sc.TOKENS_ESTIMATED], "true"), False)
        input_tokens, output_tokens, estimated_now = self._estimate(
            calls, model, input_tokens, output_tokens, is_embedding
        )
        estimated = pc.or_(was_flagged, pa.array(estimated_now))
        filled_total = pc.if_else(
            pc.and_(total_tokens.is_null(), pa.array(estimated_now)),
            pc.add(input_tokens, pc.fill_null(output_tokens, 0)),
            total_tokens,
        )

        priced = price_rows(
            self.price_book,
            model=model,
            provider=provider,
            host=host,
            at_ns=calls.column("start_time").combine_chunks().cast(pa.int64()),
            input_tokens=input_tokens,
            output_tokens=pc.if_else(is_embedding, pc.fill_null(output_tokens, 0), output_tokens),
            cached_tokens=cached,
        )

        given_cost = calls.column("cost_micros").combine_chunks()
        source_attr = attrs[sc.COST_SOURCE]
        user_given = pc.and_(attrs[sc.COST_MICROS].is_valid(), source_attr.is_null())
        user_given = pc.fill_null(user_given, False)
        keep = (
            user_given
            if recompute
            else pc.and_(given_cost.is_valid(), attrs[sc.COST_MICROS].is_valid())
        )
        keep = pc.and_(pc.fill_null(keep, False), given_cost.is_valid())
        total = pc.if_else(keep, given_cost, priced.total)
        matches = pc.fill_null(pc.equal(priced.total, given_cost), False)
        components_ok = pc.or_(pc.invert(keep), matches)
        price_source = pc.if_else(
            keep,
            pc.if_else(user_given, pa.scalar("span"), pc.fill_null(source_attr, "span")),
            priced.source,
        )
        price_model = pc.if_else(
            pc.and_(keep, user_given),
            pa.scalar(None, pa.string()),
            pc.coalesce(pc.if_else(keep, attrs[sc.COST_PRICE_MODEL], None), priced.price_model),
        )
        unpriced = total.is_null()
        self._count_unpriced(model, unpriced, priced.known)

        spans = self._spans(
            batch,
            calls,
            rows,
            total,
            input_tokens,
            output_tokens,
            filled_total,
            estimated_now,
            unpriced,
            attrs,
        )
        columns = {
            "trace_id": calls.column("trace_id"),
            "span_id": calls.column("span_id"),
            "timestamp": calls.column("start_time"),
            "service_name": calls.column("service_name"),
            "model_id": model,
            "model_version": calls.column("model_version"),
            "provider": priced.provider,
            "price_model": price_model,
            "price_source": price_source,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": filled_total,
            "cached_input_tokens": cached,
            "reasoning_tokens": reasoning,
            "tokens_estimated": estimated,
            "input_cost_micros": pc.if_else(components_ok, priced.input, None),
            "output_cost_micros": pc.if_else(components_ok, priced.output, None),
            "total_cost_micros": total,
            **attribution.arrow_columns(attr_get, res_get, m),
        }
        costs = pa.Table.from_arrays(
            [
                pa.array(columns[f.name], f.type)
                if not isinstance(columns[f.name], pa.Array | pa.ChunkedArray)
                else columns[f.name].cast(f.type)
                for f in COST_SCHEMA
            ],
            schema=COST_SCHEMA,
        )
        return CostOutput(spans, costs)

    def _estimate(
        self,
        calls: pa.Table,
        model: pa.Array,
        input_tokens: pa.Array,
        output_tokens: pa.Array,
        is_embedding: pa.Array,
    ) -> tuple[pa.Array, pa.Array, np.ndarray]:
        """Tokens counted from previews that were not cut, for calls that reported none."""
        from pyflare.cost.tokens import count_tokens

        estimated = np.zeros(calls.num_rows, dtype=bool)
        results = []
        for column, tokens, skip in (
            ("input_preview", input_tokens, None),
            ("output_preview", output_tokens, is_embedding),
        ):
            preview = calls.column(column).combine_chunks()
            usable = pc.and_(tokens.is_null(), pc.less(pc.utf8_length(preview), PREVIEW_CHARS))
            if skip is not None:
                usable = pc.and_(usable, pc.invert(skip))
            where = np.flatnonzero(pc.fill_null(usable, False).to_numpy(zero_copy_only=False))
            if len(where) == 0:
                results.append(tokens)
                continue
            texts = preview.take(pa.array(where)).to_pylist()
            models = model.take(pa.array(where)).to_pylist()
            counts = np.array(
                [count_tokens(t, m).n for t, m in zip(texts, models, strict=True)], dtype=np.int64
            )
            values = pc.fill_null(tokens, 0).to_numpy(zero_copy_only=False).astype(np.int64)
            valid = tokens.is_valid().to_numpy(zero_copy_only=False)
            values[where] = counts
            valid[where] = True
            results.append(pa.array(values, pa.int64(), mask=~valid))
            estimated[where] = True
        return results[0], results[1], estimated

    def _count_unpriced(self, model: pa.Array, unpriced: pa.Array, known: pa.Array) -> None:
        count = (
            unpriced.true_count
            if hasattr(unpriced, "true_count")
            else int(pc.sum(unpriced).as_py() or 0)
        )
        count = int(pc.sum(pc.cast(unpriced, pa.int64())).as_py() or 0)
        if count == 0:
            return
        unknown = pc.unique(model.filter(pc.and_(unpriced, pc.invert(known)))).to_pylist()
        no_tokens = pc.unique(model.filter(pc.and_(unpriced, known))).to_pylist()
        with self._lock:
            self.unpriced_total += count
            fresh = [m for m in unknown if f"price:{m}" not in self._warned]
            fresh_tokens = [m for m in no_tokens if f"tokens:{m}" not in self._warned]
            self._warned.update(f"price:{m}" for m in fresh)
            self._warned.update(f"tokens:{m}" for m in fresh_tokens)
        for name in fresh:
            logger.warning(
                "no price for model %r: its calls' cost is left empty (not $0) and flagged "
                "pyflare.cost.unpriced=true; add it to your price file to price it",
                name,
            )
        for name in fresh_tokens:  # often failed calls: worth knowing, not a warning
            logger.info(
                "calls to model %r carry no token counts: their cost is left empty and "
                "flagged pyflare.cost.unpriced=true",
                name,
            )

    @staticmethod
    def _spans(
        batch: pa.Table,
        calls: pa.Table,
        rows: np.ndarray,
        total: pa.Array,
        input_tokens: pa.Array,
        output_tokens: pa.Array,
        filled_total: pa.Array,
        estimated_now: np.ndarray,
        unpriced: pa.Array,
        attrs: dict[str, pa.Array],
    ) -> pa.Table:
        n = batch.num_rows

        def put(name: str, values: pa.Array) -> pa.Table:
            column = batch.column(name).combine_chunks()
            if len(rows) == n:
                return values.cast(column.type)
            positions = np.full(n, -1, dtype=np.int64)
            positions[rows] = np.arange(len(rows))
            taken = values.cast(column.type).take(pa.array(np.maximum(positions, 0)))
            return pc.if_else(pa.array(positions >= 0), taken, column)

        flagged_unpriced = pc.fill_null(pc.equal(attrs[sc.COST_UNPRICED], "true"), False)
        change = pc.or_(pc.xor(flagged_unpriced, unpriced), pa.array(estimated_now)).to_numpy(
            zero_copy_only=False
        )
        edit = np.flatnonzero(change)
        attributes = batch.column("attributes")
        if len(edit):
            add = {
                sc.COST_UNPRICED: pc.if_else(unpriced, "true", None).take(pa.array(edit)),
                sc.TOKENS_ESTIMATED: pc.if_else(
                    pc.or_(
                        pa.array(estimated_now),
                        pc.fill_null(pc.equal(attrs[sc.TOKENS_ESTIMATED], "true"), False),
                    ),
                    "true",
                    None,
                ).take(pa.array(edit)),
            }
            attributes = edit_rows(attributes, rows[edit], _FLAGS, add)
        updated = batch
        for name, values in (
            ("cost_micros", total),
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
            ("total_tokens", filled_total),
        ):
            updated = updated.set_column(
                updated.schema.get_field_index(name), SPAN_SCHEMA.field(name), put(name, values)
            )
        return updated.set_column(
            updated.schema.get_field_index("attributes"),
            SPAN_SCHEMA.field("attributes"),
            attributes,
        )
