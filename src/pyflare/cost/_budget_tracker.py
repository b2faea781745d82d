"""The budget tracker: budgets' running spend per window, fed finished spans, asked before calls.

:mod:`pyflare.cost.budgets` is the public face (``pyflare.budget()``, ``enforce()``);
this module holds the state and the arithmetic. One lock guards every budget's
window; callbacks run after it is released, in the thread that ended the span.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pyflare import semconv as sc
from pyflare._runtime import STATE, after_fork_in_child, warn_once
from pyflare.cost._budget_rules import (
    DIMENSION_KEYS,
    Budget,
    format_usd,
    iso_utc,
    window_bounds,
)
from pyflare.errors import BudgetExceeded
from pyflare.mlfields import ML_KEYS, ml_fields, stringify
from pyflare.tracing.context import current_context

if TYPE_CHECKING:
    from pyflare.cost.prices import CallCost, PriceBook

__all__ = ["BudgetEvent", "BudgetTracker", "RuleState"]

logger = logging.getLogger(__name__)

_PROVIDER_KEYS = sc.PROVIDER_KEYS
_CACHED_KEYS = sc.CACHED_INPUT_TOKEN_KEYS
_REASONING_KEYS = sc.REASONING_TOKEN_KEYS
_RESOURCE_ENVIRONMENT_KEYS = (sc.ENVIRONMENT, "deployment.environment")
_MODEL_NAMES_CACHE_SIZE = 1024


@dataclass(frozen=True)
class BudgetEvent:
    """A budget reached its warning threshold or its limit; what callbacks receive."""

    kind: Literal["warning", "exceeded"]
    budget: Budget
    #: Spent in the window so far, this call included.
    spent_micros: int
    window_start_ns: int
    window_end_ns: int
    #: The call that crossed the threshold.
    model_id: str | None
    trace_id: str
    span_id: str

    @property
    def limit_micros(self) -> int:
        return self.budget.limit_micros

    @property
    def message(self) -> str:
        reached = "exceeded" if self.kind == "exceeded" else "reached its warning threshold"
        return (
            f"PyFlare budget {self.budget.name!r} {reached}: spent "
            f"{format_usd(self.spent_micros)} of {format_usd(self.limit_micros)} this "
            f"{self.budget.window} (resets {iso_utc(self.window_end_ns)})"
        )


class RuleState:
    """One budget's running state in the current window (guarded by the tracker's lock)."""

    __slots__ = (
        "active",
        "budget",
        "end",
        "exceeded",
        "on_exceeded",
        "on_warning",
        "spent",
        "start",
        "unpriced",
        "warn_micros",
        "warned",
    )

    def __init__(
        self,
        budget: Budget,
        on_warning: Callable[[BudgetEvent], object] | None,
        on_exceeded: Callable[[BudgetEvent], object] | None,
    ) -> None:
        self.budget = budget
        self.on_warning = on_warning
        self.on_exceeded = on_exceeded
        self.warn_micros = budget.warn_micros
        self.start = self.end = 0
        self.spent = self.unpriced = 0
        self.warned = self.exceeded = False
        self.active = True

    def roll(self, now_ns: int) -> None:
        """Start a fresh window when ``now_ns`` is outside the current one."""
        if not self.start <= now_ns < self.end:
            self.start, self.end = window_bounds(self.budget.window, now_ns)
            self.spent = self.unpriced = 0
            self.warned = self.exceeded = False


class BudgetTracker:
    """Budgets of this process: fed finished spans, asked before calls. Thread-safe."""

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rules: tuple[RuleState, ...] = ()
        #: The hard budgets; empty means enforce() has nothing to check.
        self.hard: tuple[RuleState, ...] = ()
        self.price_book: PriceBook | None = None
        self._model_names: dict[str, frozenset[str]] = {}
        self._resource_environment: str | None = None
        after_fork_in_child(self, "_after_fork")

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def use_price_book(self, book: PriceBook | None) -> None:
        """Price spans with ``book`` from now on (None: ``PriceBook.default()``)."""
        self.price_book = book
        self._model_names = {}

    def now(self) -> int:
        return (self._clock or STATE.clock)()

    # --- budgets -------------------------------------------------------------
    def add(
        self,
        budget: Budget,
        *,
        on_warning: Callable[[BudgetEvent], object] | None = None,
        on_exceeded: Callable[[BudgetEvent], object] | None = None,
    ) -> RuleState:
        rule = RuleState(budget, on_warning, on_exceeded)
        with self._lock:
            self._set_rules((*self._rules, rule))
        return rule

    def remove(self, rule: RuleState) -> None:
        with self._lock:
            rule.active = False
            self._set_rules(tuple(r for r in self._rules if r is not rule))

    def clear(self) -> None:
        with self._lock:
            for rule in self._rules:
                rule.active = False
            self._set_rules(())

    def _set_rules(self, rules: tuple[RuleState, ...]) -> None:
        self._rules = rules
        self.hard = tuple(r for r in rules if r.budget.hard)
        observe = self.observe
        if rules:
            STATE.budget_observer = observe
        elif STATE.budget_observer == observe:
            STATE.budget_observer = None

    def window_state(self, rule: RuleState) -> tuple[int, int]:
        """(spent, unpriced) of ``rule`` in the window holding now."""
        now = self.now()
        with self._lock:
            if rule.start <= now < rule.end:
                return rule.spent, rule.unpriced
            return 0, 0

    # --- finished spans ------------------------------------------------------
    def observe(self, span: Any) -> None:
        """Add a finished span's cost to the budgets it matches (PyFlare's budget observer)."""
        rules = self._rules
        attributes: Mapping[str, Any] | None = span.attributes
        if not rules or not attributes or ML_KEYS.isdisjoint(attributes):
            return
        fields = ml_fields(attributes)
        cost: int | None = fields["cost_micros"]
        model: str | None = fields["model_id"]
        price_model = _first_text(attributes, (sc.COST_PRICE_MODEL,))
        if cost is None:
            if model is None or (
                fields["input_tokens"] is None and fields["output_tokens"] is None
            ):
                return
            call = self._price(model, attributes, fields, span.start_time)
            if call is not None:
                cost, price_model = call.total_micros, call.price.model_id
        environment = self._span_environment(attributes, span.resource)
        matching = [
            rule
            for rule in rules
            if _matches(rule.budget, attributes.get, model, price_model, environment)
        ]
        if not matching:
            return
        now = self.now()
        fired: list[tuple[Callable[[BudgetEvent], object] | None, BudgetEvent]] = []
        with self._lock:
            for rule in matching:
                if not rule.active:
                    continue
                rule.roll(now)
                if cost is None:
                    rule.unpriced += 1
                    continue
                rule.spent += cost
                if (
                    not rule.warned
                    and rule.warn_micros is not None
                    and rule.spent >= rule.warn_micros
                ):
                    rule.warned = True
                    fired.append((rule.on_warning, _event("warning", rule, model, span)))
                if not rule.exceeded and rule.spent >= rule.budget.limit_micros:
                    rule.exceeded = rule.warned = True
                    fired.append((rule.on_exceeded, _event("exceeded", rule, model, span)))
        for callback, event in fired:
            _notify(callback, event)

    def _price(
        self, model: str, attributes: Mapping[str, Any], fields: Mapping[str, Any], at_ns: int
    ) -> CallCost | None:
        provider = _first_text(attributes, _PROVIDER_KEYS)
        input_tokens = fields["input_tokens"] or 0
        output_tokens = fields["output_tokens"] or 0
        try:
            call = self._book().cost(
                model,
                provider=provider,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cached_input_tokens=min(_count(attributes, _CACHED_KEYS), input_tokens),
                reasoning_tokens=min(_count(attributes, _REASONING_KEYS), output_tokens),
                at_ns=at_ns,
                base_url=_first_text(attributes, (sc.SERVER_ADDRESS,)),
            )
        except Exception as exc:  # a pricing failure must not lose the host's span
            warn_once(
                f"budget-price-failed:{model}",
                "PyFlare could not price model %r for budgets (%r); its calls count as unpriced",
                model,
                exc,
            )
            return None
        if call is None:
            warn_once(
                f"budget-unpriced:{model}",
                "PyFlare has no price for model %r: budgets count its calls as unpriced, not $0 "
                "(add the price in a price file to include them)",
                model,
            )
        return call

    def _book(self) -> PriceBook:
        book = self.price_book
        if book is None:
            from pyflare.cost.prices import PriceBook

            return PriceBook.default()
        return book

    def _span_environment(self, attributes: Mapping[str, Any], resource: Any) -> str | None:
        value = attributes.get(sc.ENVIRONMENT)
        if value:
            return stringify(value)
        resource_attributes: Mapping[str, Any] = getattr(resource, "attributes", None) or {}
        for key in _RESOURCE_ENVIRONMENT_KEYS:
            found = resource_attributes.get(key)
            if found:
                self._resource_environment = stringify(found)
                return self._resource_environment
        return None

    # --- before a call -------------------------------------------------------
    def check(self, hard: tuple[RuleState, ...], model_id: str | None) -> None:
        """Raise BudgetExceeded if a hard budget matching here and ``model_id`` is spent."""
        tags = current_context()
        environment = tags.get(sc.ENVIRONMENT) or self._resource_environment
        now = self.now()
        for rule in hard:
            budget = rule.budget
            if budget.dimension == "model":
                if model_id is None or budget.value not in self._names_of(model_id):
                    continue
            elif not _matches(budget, tags.get, None, None, environment):
                continue
            with self._lock:
                exhausted = rule.active and rule.exceeded and rule.start <= now < rule.end
                spent, end = rule.spent, rule.end
            if exhausted:
                raise _exceeded_error(budget, spent, end, model_id)

    def _names_of(self, model_id: str) -> frozenset[str]:
        """``model_id`` and the model its price is listed under (``gpt-4o-2024-08-06`` -> ``gpt-4o``)."""
        names = self._model_names.get(model_id)
        if names is None:
            names = frozenset({model_id})
            try:
                price = self._book().lookup(model_id)
            except Exception:  # no price book: match the name as given
                price = None
            if price is not None:
                names = names | {price.model_id}
            if len(self._model_names) >= _MODEL_NAMES_CACHE_SIZE:
                self._model_names.clear()
            self._model_names[model_id] = names
        return names


def _matches(
    budget: Budget,
    get: Callable[[str], Any],
    model: str | None,
    price_model: str | None,
    environment: str | None,
) -> bool:
    dimension = budget.dimension
    if dimension == "total":
        return True
    if dimension == "model":
        return budget.value is not None and budget.value in (model, price_model)
    if dimension == "environment":
        return environment == budget.value
    value = get(DIMENSION_KEYS[dimension])
    return value is not None and stringify(value) == budget.value


def _first_text(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return stringify(value)
    return None


def _count(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> int:
    """The first usable token count under ``keys`` (0 when none is)."""
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return 0


def _event(
    kind: Literal["warning", "exceeded"], rule: RuleState, model: str | None, span: Any
) -> BudgetEvent:
    context = span.get_span_context()
    return BudgetEvent(
        kind=kind,
        budget=rule.budget,
        spent_micros=rule.spent,
        window_start_ns=rule.start,
        window_end_ns=rule.end,
        model_id=model,
        trace_id=f"{context.trace_id:032x}" if context is not None else "",
        span_id=f"{context.span_id:016x}" if context is not None else "",
    )


def _notify(callback: Callable[[BudgetEvent], object] | None, event: BudgetEvent) -> None:
    level = logging.WARNING if event.kind == "exceeded" else logging.INFO
    logger.log(level, "%s", event.message)
    if callback is None:
        return
    try:
        callback(event)
    except Exception:  # the user's callback never breaks the span pipeline
        logger.exception(
            "PyFlare budget %r: the on_%s callback raised", event.budget.name, event.kind
        )


def _exceeded_error(budget: Budget, spent: int, end: int, model_id: str | None) -> BudgetExceeded:
    call = f"the call to {model_id!r}" if model_id else "the call"
    error = BudgetExceeded(
        f"PyFlare budget {budget.name!r} ({budget.description}) is spent: "
        f"{format_usd(spent)} of {format_usd(budget.limit_micros)} this {budget.window}; "
        f"{call} was not made. The window resets at {iso_utc(end)}."
    )
    error.budget = budget
    error.spent_micros = spent
    error.limit_micros = budget.limit_micros
    error.resets_at_ns = end
    return error
