"""Cost budgets in the SDK: ``pyflare.budget(...)`` and the check made before a call.

``pyflare.budget(limit_usd=5, window="day", user_id="u1", on_exceeded=alert)``
watches every span as it ends (the tracker is PyFlare's budget observer): a span
with a model and token usage is priced on the spot (its own ``pyflare.cost.micros``
wins, else the price book's scalar, cached price), the cost is added to each
matching budget's current window, and each callback fires once per window when
its threshold is first reached: ``on_warning`` at ``warn_at`` of the limit,
``on_exceeded`` at the limit. Both get a :class:`BudgetEvent`; a callback that
raises is logged and the program carries on.

With ``hard=True`` the budget also blocks: instrumentors call :func:`enforce`
before making a request, and it raises :class:`~pyflare.errors.BudgetExceeded`
when a hard budget matching the current context (``pyflare.context(...)``) and
model has reached its limit in the current window. So the call that crosses the
limit is made (its cost is only known afterwards) and the next one is refused.
Without hard budgets :func:`enforce` returns at once.

Windows are UTC calendar windows read from PyFlare's clock. A span that carries
model and tokens but has no known price counts as *unpriced* on each matching
budget (see :attr:`BudgetHandle.unpriced_calls`), never as $0 spent. Spans are
counted where they end: a call recorded twice (two instrumentations of the same
request, nested in each other) is counted twice.

Server-side checks over stored costs (:func:`budget_status`,
:func:`evaluate_budgets`, :func:`budgets_from_config`) share the same
:class:`Budget` rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyflare.cost._budget_rules import (
    Budget,
    budgets_from_config,
    checked_budget,
    window_bounds,
)
from pyflare.cost._budget_server import budget_status, evaluate_budgets
from pyflare.cost._budget_tracker import BudgetEvent, BudgetTracker, RuleState
from pyflare.errors import InvalidArgumentError

if TYPE_CHECKING:
    from types import TracebackType

    from pyflare.cost.prices import PriceBook

__all__ = [
    "Budget",
    "BudgetEvent",
    "BudgetHandle",
    "budget",
    "budget_status",
    "budgets_from_config",
    "enforce",
    "evaluate_budgets",
    "remove_all",
    "set_price_book",
]


class BudgetHandle:
    """A budget installed with :func:`budget`: its spend so far, and ``remove()``.

    Also a context manager that removes the budget on exit.
    """

    __slots__ = ("_rule", "_tracker")

    def __init__(self, tracker: BudgetTracker, rule: RuleState) -> None:
        self._tracker = tracker
        self._rule = rule

    @property
    def budget(self) -> Budget:
        return self._rule.budget

    @property
    def spent_micros(self) -> int:
        """Spent in the current window (0 once a new window has begun)."""
        return self._tracker.window_state(self._rule)[0]

    @property
    def remaining_micros(self) -> int:
        """What is left of the limit in the current window (0 when at or over it)."""
        return max(0, self._rule.budget.limit_micros - self.spent_micros)

    @property
    def unpriced_calls(self) -> int:
        """Calls in the current window that matched but had no known price (not in the spend)."""
        return self._tracker.window_state(self._rule)[1]

    @property
    def resets_at_ns(self) -> int:
        """When the current window ends (UTC ns)."""
        return window_bounds(self._rule.budget.window, self._tracker.now())[1]

    @property
    def active(self) -> bool:
        return self._rule.active

    def remove(self) -> None:
        """Stop tracking this budget (removing it twice is harmless)."""
        self._tracker.remove(self._rule)

    def __enter__(self) -> BudgetHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "active" if self._rule.active else "removed"
        return f"<BudgetHandle {self._rule.budget.name!r} {state}>"


_TRACKER = BudgetTracker()


def budget(
    limit_usd: Any = None,
    *,
    limit_micros: int | None = None,
    window: str = "day",
    model: str | None = None,
    user_id: str | None = None,
    feature_id: str | None = None,
    team: str | None = None,
    environment: str | None = None,
    warn_at: float | None = 0.8,
    on_warning: Callable[[BudgetEvent], object] | None = None,
    on_exceeded: Callable[[BudgetEvent], object] | None = None,
    hard: bool = False,
    name: str | None = None,
) -> BudgetHandle:
    """Track spend against a limit over a UTC day, week or month, in this process.

    Limit one of ``model``, ``user_id``, ``feature_id``, ``team`` or
    ``environment`` (at most one; none: all calls). Give the limit in dollars
    (``limit_usd``: ``Decimal``, ``int``, ``float`` or ``str``, rounded half-up to a
    micro-dollar) or as ``limit_micros``. ``on_warning`` fires when ``warn_at`` of
    the limit is reached, ``on_exceeded`` when the limit is, each once per window,
    with a :class:`BudgetEvent`. ``hard=True`` makes instrumented calls raise
    :class:`~pyflare.errors.BudgetExceeded` once the limit is reached in the
    current window. Returns a :class:`BudgetHandle`.
    """
    where = "pyflare.budget()"
    selectors = {
        "model": model,
        "user_id": user_id,
        "feature_id": feature_id,
        "team": team,
        "environment": environment,
    }
    given = [(key, value) for key, value in selectors.items() if value is not None]
    if len(given) > 1:
        raise InvalidArgumentError(
            f"{where}: give at most one of model, user_id, feature_id, team, environment; "
            f"got {', '.join(key for key, _ in given)}"
        )
    dimension, value = given[0] if given else ("total", None)
    for label, callback in (("on_warning", on_warning), ("on_exceeded", on_exceeded)):
        if callback is not None and not callable(callback):
            raise InvalidArgumentError(
                f"{where}: {label} must be a function taking a BudgetEvent, "
                f"got {type(callback).__name__}"
            )
    rule = checked_budget(
        where,
        limit_usd=limit_usd,
        limit_micros=limit_micros,
        window=window,
        dimension=dimension,
        value=value,
        warn_at=warn_at,
        hard=hard,
        name=name,
    )
    return BudgetHandle(
        _TRACKER, _TRACKER.add(rule, on_warning=on_warning, on_exceeded=on_exceeded)
    )


def enforce(model_id: str | None = None) -> None:
    """Raise :class:`~pyflare.errors.BudgetExceeded` if a hard budget forbids this call.

    Instrumentors call it before making a request to ``model_id``. A hard budget
    applies when its dimension matches the current ``pyflare.context(...)`` (or
    ``model_id``, for a model budget) and its limit is reached in the current
    window. Returns at once when no hard budget exists.
    """
    hard = _TRACKER.hard
    if hard:
        _TRACKER.check(hard, model_id)


def remove_all() -> None:
    """Remove every budget of this process."""
    _TRACKER.clear()


def set_price_book(book: PriceBook | None) -> None:
    """Price spans for budgets with ``book`` (None: ``PriceBook.default()``, the default)."""
    if book is not None and not callable(getattr(book, "cost", None)):
        raise InvalidArgumentError(
            f"set_price_book() needs a PriceBook (with a cost() method), got {type(book).__name__}"
        )
    _TRACKER.use_price_book(book)
