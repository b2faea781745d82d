"""SDK budgets: pyflare.budget(), the tracker fed by finished spans, and enforce()."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

import pyflare
from pyflare import semconv as sc
from pyflare._runtime import STATE
from pyflare.cost import budgets
from pyflare.cost._budget_rules import Budget, format_usd, usd_to_micros, window_bounds
from pyflare.cost.budgets import BudgetEvent
from pyflare.cost.prices import ModelPrice, PriceBook
from pyflare.errors import BudgetExceeded, InvalidArgumentError
from pyflare.testing import DEFAULT_START_NS, CapturedSpans, TestClock, capture_spans

DAY_NS = 86_400 * 10**9
# Prices of the test's own models: $1 per million input tokens, $2 per million output.
BOOK = PriceBook(
    user_prices=[
        ModelPrice("m1", None, 1_000_000, 2_000_000),
        ModelPrice(
            "gpt-4o", "openai", 2_500_000, 10_000_000, cached_input_micros_per_mtok=1_250_000
        ),
    ],
    use_catalogue=False,
)


@pytest.fixture(autouse=True)
def _no_budgets_left() -> Iterator[None]:
    yield
    budgets.remove_all()
    budgets.set_price_book(None)
    assert STATE.budget_observer is None


@pytest.fixture
def clock() -> TestClock:
    return TestClock(step_ns=1_000)


@pytest.fixture
def capture(clock: TestClock) -> Iterator[CapturedSpans]:
    budgets.set_price_book(BOOK)
    with capture_spans(clock=clock) as captured:
        yield captured


def call(
    model: str = "m1",
    *,
    cost: int | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    attributes: dict[str, Any] | None = None,
) -> None:
    """An instrumented call: the budget check, then the span recording its usage."""
    budgets.enforce(model)
    extra = dict(attributes or {})
    if cost is not None:
        extra[sc.COST_MICROS] = cost
    with pyflare.span("chat", kind="llm", model_id=model, attributes=extra):
        if input_tokens is not None or output_tokens is not None:
            pyflare.record_usage(input_tokens=input_tokens, output_tokens=output_tokens)


class Recorder:
    def __init__(self) -> None:
        self.events: list[BudgetEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: BudgetEvent) -> None:
        with self.lock:
            self.events.append(event)


def test_the_crossing_call_is_made_and_the_next_one_raises(capture: CapturedSpans) -> None:
    exceeded = Recorder()
    handle = budgets.budget(limit_micros=10, hard=True, on_exceeded=exceeded, warn_at=None)
    for _ in range(3):
        call(cost=3)
    assert (handle.spent_micros, exceeded.events) == (9, [])
    call(cost=3)  # call 4 crosses: 12 >= 10, and is made
    assert [e.spent_micros for e in exceeded.events] == [12]
    event = exceeded.events[0]
    assert (event.kind, event.model_id, event.limit_micros) == ("exceeded", "m1", 10)
    assert event.window_end_ns == DEFAULT_START_NS + DAY_NS
    assert event.span_id == f"{capture.spans[-1].context.span_id:016x}"
    with pytest.raises(BudgetExceeded) as caught:
        call(cost=3)  # call 5 is refused before any span starts
    message = str(caught.value)
    assert "'total per day'" in message
    assert "$0.000012 of $0.00001" in message
    assert "'m1'" in message
    assert "resets at 2026-01-02T00:00:00Z" in message
    assert caught.value.spent_micros == 12  # type: ignore[attr-defined]
    assert caught.value.resets_at_ns == DEFAULT_START_NS + DAY_NS  # type: ignore[attr-defined]
    assert len(capture.spans) == 4
    assert (handle.spent_micros, handle.remaining_micros) == (12, 0)


def test_spans_are_priced_from_their_tokens(capture: CapturedSpans) -> None:
    warned, exceeded = Recorder(), Recorder()
    handle = budgets.budget(
        limit_usd="0.005", warn_at=0.5, on_warning=warned, on_exceeded=exceeded, hard=True
    )
    # 1000 input tokens at $1/M + 500 output at $2/M = $0.002 = 2000 micro-dollars.
    call(input_tokens=1000, output_tokens=500)
    assert (handle.spent_micros, warned.events, exceeded.events) == (2000, [], [])
    call(input_tokens=1000, output_tokens=500)
    assert [e.spent_micros for e in warned.events] == [4000]
    call(input_tokens=1000, output_tokens=500)
    assert [e.spent_micros for e in exceeded.events] == [6000]
    assert [e.spent_micros for e in warned.events] == [4000]  # once per window
    with pytest.raises(BudgetExceeded):
        call(input_tokens=1000, output_tokens=500)


def test_cached_tokens_and_the_price_model_of_a_dated_name(capture: CapturedSpans) -> None:
    handle = budgets.budget(limit_usd=1, model="gpt-4o", hard=True)
    # 1000 input (400 cached) at $2.50/M and $1.25/M, 100 output at $10/M:
    # 600 * 2.5 + 400 * 1.25 = 2000, 100 * 10 = 1000 -> 3000 micro-dollars.
    call(
        "gpt-4o-2024-08-06",
        input_tokens=1000,
        output_tokens=100,
        attributes={sc.CACHED_INPUT_TOKENS: 400, sc.PROVIDER: "openai"},
    )
    assert handle.spent_micros == 3000


def test_an_explicit_span_cost_wins_over_the_price(capture: CapturedSpans) -> None:
    handle = budgets.budget(limit_usd=1)
    call(cost=7, input_tokens=1000, output_tokens=500)
    assert handle.spent_micros == 7


def test_one_call_crossing_both_thresholds_fires_both_in_order(capture: CapturedSpans) -> None:
    seen: list[str] = []
    budgets.budget(
        limit_micros=100,
        on_warning=lambda e: seen.append(e.kind),
        on_exceeded=lambda e: seen.append(e.kind),
    )
    call(cost=500)
    call(cost=500)
    assert seen == ["warning", "exceeded"]


def test_a_soft_budget_never_blocks(capture: CapturedSpans) -> None:
    exceeded = Recorder()
    budgets.budget(limit_micros=1, on_exceeded=exceeded)
    call(cost=5)
    call(cost=5)  # no raise
    assert len(exceeded.events) == 1
    assert budgets._TRACKER.hard == ()


def test_unknown_model_counts_as_unpriced_never_as_zero(
    capture: CapturedSpans, caplog: pytest.LogCaptureFixture
) -> None:
    handle = budgets.budget(limit_micros=10)
    with caplog.at_level(logging.WARNING, logger="pyflare"):
        call("no-such-model-xyz", input_tokens=10, output_tokens=10)
        call("no-such-model-xyz", input_tokens=10, output_tokens=10)
    assert (handle.spent_micros, handle.unpriced_calls) == (0, 2)
    warnings = [r for r in caplog.records if "no-such-model-xyz" in r.getMessage()]
    assert len(warnings) == 1
    assert "unpriced" in warnings[0].getMessage()


def test_spans_without_a_model_or_usage_are_ignored(capture: CapturedSpans) -> None:
    handle = budgets.budget(limit_micros=10)
    with pyflare.span("plain"):
        pass
    with pyflare.span("model-no-tokens", model_id="m1"):
        pass
    assert (handle.spent_micros, handle.unpriced_calls) == (0, 0)


def test_a_failing_price_book_counts_unpriced_and_the_host_continues(
    capture: CapturedSpans, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def cost(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("price service down")

        def lookup(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("price service down")

    budgets.set_price_book(Broken())  # type: ignore[arg-type]
    handle = budgets.budget(limit_micros=10, model="m1", hard=True)
    with caplog.at_level(logging.WARNING, logger="pyflare"):
        call(input_tokens=10, output_tokens=10)
    assert (handle.spent_micros, handle.unpriced_calls) == (0, 1)
    assert "price service down" in caplog.text
    assert len(capture.spans) == 1


@pytest.mark.parametrize(
    ("selector", "inside", "outside"),
    [
        ({"user_id": "u1"}, {"user_id": "u1"}, {"user_id": "u2"}),
        ({"team": "search"}, {"team": "search"}, {"team": "ads"}),
        ({"feature_id": "chat"}, {"feature_id": "chat"}, {}),
        ({"environment": "prod"}, {"environment": "prod"}, {"environment": "dev"}),
    ],
)
def test_context_budgets_count_and_block_their_own_calls_only(
    capture: CapturedSpans,
    selector: dict[str, str],
    inside: dict[str, str],
    outside: dict[str, str],
) -> None:
    handle = budgets.budget(limit_micros=10, hard=True, **selector)  # type: ignore[arg-type]
    with pyflare.context(**outside):  # type: ignore[arg-type]
        call(cost=50)
    assert handle.spent_micros == 0
    with pyflare.context(**inside):  # type: ignore[arg-type]
        call(cost=10)
    assert handle.spent_micros == 10
    with pyflare.context(**outside):  # type: ignore[arg-type]
        call(cost=1)  # not this budget's: allowed
    with pyflare.context(**inside), pytest.raises(BudgetExceeded, match="spent"):  # type: ignore[arg-type]
        call(cost=1)


def test_a_model_budget_blocks_that_model_only(capture: CapturedSpans) -> None:
    budgets.budget(limit_micros=5, model="gpt-4o", hard=True)
    call("gpt-4o", cost=5)
    call("m1", cost=5)
    with pytest.raises(BudgetExceeded, match="'gpt-4o-2024-08-06'"):
        budgets.enforce("gpt-4o-2024-08-06")  # priced as gpt-4o
    budgets.enforce(None)  # no model named: a model budget can't apply


def test_the_window_rolls_over_at_utc_midnight(capture: CapturedSpans, clock: TestClock) -> None:
    exceeded = Recorder()
    handle = budgets.budget(limit_micros=10, hard=True, on_exceeded=exceeded)
    call(cost=10)
    with pytest.raises(BudgetExceeded):
        budgets.enforce("m1")
    clock.advance(DAY_NS)
    assert (handle.spent_micros, handle.resets_at_ns) == (0, DEFAULT_START_NS + 2 * DAY_NS)
    budgets.enforce("m1")  # a new day
    call(cost=4)
    assert handle.spent_micros == 4
    call(cost=6)
    assert [e.window_start_ns for e in exceeded.events] == [
        DEFAULT_START_NS,
        DEFAULT_START_NS + DAY_NS,
    ]


def test_concurrent_spans_are_all_counted_and_cross_once(capture: CapturedSpans) -> None:
    warned, exceeded = Recorder(), Recorder()
    handle = budgets.budget(limit_micros=1000, on_warning=warned, on_exceeded=exceeded)
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(250):
            call(cost=1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert handle.spent_micros == 2000
    assert len(warned.events) == 1
    assert len(exceeded.events) == 1
    assert exceeded.events[0].spent_micros == 1000


def test_a_raising_callback_is_logged_and_the_host_continues(
    capture: CapturedSpans, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(event: BudgetEvent) -> None:
        raise ValueError("callback bug")

    other = Recorder()
    budgets.budget(limit_micros=1, on_exceeded=explode, name="first")
    budgets.budget(limit_micros=1, on_exceeded=other, name="second")
    with caplog.at_level(logging.ERROR):
        call(cost=5)
        call(cost=5)
    assert "'first': the on_exceeded callback raised" in caplog.text
    assert "callback bug" in caplog.text
    assert [e.budget.name for e in other.events] == ["second"]
    assert len(capture.spans) == 2


def test_remove_stops_tracking_and_uninstalls_the_observer(capture: CapturedSpans) -> None:
    first = budgets.budget(limit_micros=1, hard=True)
    with budgets.budget(limit_micros=100) as second:
        assert STATE.budget_observer is not None
        call(cost=5)
        first.remove()
        first.remove()  # harmless
        assert not first.active
        budgets.enforce("m1")  # the hard budget is gone
        call(cost=5)
        assert second.spent_micros == 10
    assert not second.active
    assert STATE.budget_observer is None
    assert repr(second) == "<BudgetHandle 'total per day' removed>"


def test_enforce_without_budgets_does_nothing() -> None:
    assert budgets._TRACKER.hard == ()
    budgets.enforce("any-model")
    budgets.enforce()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of limit_usd and limit_micros"),
        ({"limit_usd": 1, "limit_micros": 1}, "exactly one of limit_usd and limit_micros"),
        ({"limit_usd": -1}, "the limit must be positive, got limit_usd=-1"),
        ({"limit_micros": 0}, "the limit must be positive"),
        ({"limit_usd": float("nan")}, "finite"),
        ({"limit_usd": Decimal("Infinity")}, "finite"),
        ({"limit_usd": [5]}, "got list"),
        ({"limit_usd": "five dollars"}, "'five dollars'"),
        ({"limit_usd": True}, "limit_usd must be an amount"),
        ({"limit_micros": 1.5}, "limit_micros must be an integer"),
        ({"limit_usd": 1, "window": "year"}, "window must be one of day, week, month, got 'year'"),
        ({"limit_usd": 1, "user_id": "u", "team": "t"}, "at most one of .*got user_id, team"),
        ({"limit_usd": 1, "user_id": ""}, "needs value"),
        ({"limit_usd": 1, "team": "t" * 300}, "1 to 256 characters"),
        ({"limit_usd": 1, "warn_at": 1.5}, "warn_at must be between 0 and 1"),
        ({"limit_usd": 1, "warn_at": 0}, "warn_at must be between 0 and 1"),
        ({"limit_usd": 1, "warn_at": True}, "warn_at must be a fraction"),
        ({"limit_usd": 1, "on_exceeded": "alert"}, "on_exceeded must be a function"),
        ({"limit_usd": 1, "on_warning": 3}, "on_warning must be a function"),
        ({"limit_usd": 1, "hard": "yes"}, "hard must be True or False"),
        ({"limit_usd": 1, "name": " "}, "name must be a non-empty string"),
    ],
)
def test_bad_arguments_name_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as caught:
        budgets.budget(**kwargs)
    assert str(caught.value).startswith("pyflare.budget():")
    assert STATE.budget_observer is None


def test_set_price_book_rejects_what_is_not_one() -> None:
    with pytest.raises(InvalidArgumentError, match="needs a PriceBook"):
        budgets.set_price_book("prices.yaml")  # type: ignore[arg-type]


def test_budget_rules_are_values() -> None:
    rule = Budget(limit_usd=Decimal("2.5"), dimension="user_id", value="u1", window="week")
    assert rule == Budget(limit_micros=2_500_000, dimension="user", value="u1", window="week")
    assert (rule.dimension, rule.name, rule.warn_micros) == ("user", "user=u1 per week", 2_000_000)
    assert rule.description == "user u1, per week, limit $2.50"
    assert Budget(limit_micros=7, warn_at=0.5).warn_micros == 4  # rounded up
    assert Budget(limit_micros=7, warn_at=None).warn_micros is None
    with pytest.raises(InvalidArgumentError, match=r"^Budget: a 'total' budget takes no value"):
        Budget(limit_usd=1, value="u1")
    with pytest.raises(InvalidArgumentError, match="dimension must be one of"):
        Budget(limit_usd=1, dimension="planet", value="mars")


@pytest.mark.parametrize(
    ("amount", "micros"),
    [
        (Decimal("0.0000015"), 2),  # half up
        (Decimal("0.0000014"), 1),
        (0.1, 100_000),  # the float's shortest repr, not its binary value
        (" 12.50 ", 12_500_000),
        (3, 3_000_000),
    ],
)
def test_dollars_to_micros(amount: object, micros: int) -> None:
    assert usd_to_micros(amount, what="x") == micros


def test_format_usd_is_exact() -> None:
    assert [format_usd(m) for m in (0, 5_000_000, 123, 1_234_567_890, -1_500_000)] == [
        "$0.00",
        "$5.00",
        "$0.000123",
        "$1,234.56789",
        "-$1.50",
    ]


def test_utc_calendar_windows() -> None:
    # 2026-01-07T15:30:00Z is a Wednesday.
    wednesday = DEFAULT_START_NS + 6 * DAY_NS + (15 * 3600 + 1800) * 10**9
    assert window_bounds("day", wednesday) == (
        DEFAULT_START_NS + 6 * DAY_NS,
        DEFAULT_START_NS + 7 * DAY_NS,
    )
    # ISO weeks start on Monday: 2026-01-05.
    assert window_bounds("week", wednesday) == (
        DEFAULT_START_NS + 4 * DAY_NS,
        DEFAULT_START_NS + 11 * DAY_NS,
    )
    december = DEFAULT_START_NS - 10 * DAY_NS  # 2025-12-22
    assert window_bounds("month", december) == (
        DEFAULT_START_NS - 31 * DAY_NS,
        DEFAULT_START_NS,
    )
    end_of_day = DEFAULT_START_NS + DAY_NS - 1
    assert window_bounds("day", end_of_day)[1] == DEFAULT_START_NS + DAY_NS
    with pytest.raises(InvalidArgumentError, match="window must be one of"):
        window_bounds("fortnight", wednesday)


def test_importing_and_checking_budgets_stays_light(run_python: Any) -> None:
    child = run_python(
        """
        import json, sys
        from pyflare.cost import budgets

        budgets.enforce("gpt-4o")
        budgets.budget(limit_usd=1, hard=True).remove()
        heavy = ("pyarrow", "duckdb", "genai_prices", "statsmodels", "numpy", "pandas")
        print("RESULT", json.dumps([m for m in heavy if m in sys.modules]))
        """
    )
    assert run_python.result(child.stdout) == []


def test_budgets_in_a_program_recording_to_the_local_store(run_python: Any) -> None:
    child = run_python(
        """
        import json
        import pyflare
        from pyflare.cost import budgets
        from pyflare.cost.prices import ModelPrice, PriceBook

        pyflare.init(service_name="svc", store="duckdb:///spans.duckdb", environment="prod")
        budgets.set_price_book(
            PriceBook(user_prices=[ModelPrice("m1", None, 1_000_000, 2_000_000)], use_catalogue=False)
        )
        events = []
        handle = budgets.budget(
            limit_usd="0.005", environment="prod", hard=True, on_exceeded=events.append
        )
        made, refused = 0, None
        for i in range(5):
            try:
                budgets.enforce("m1")
            except pyflare.BudgetExceeded as exc:
                refused = [i, str(exc)]
                break
            with pyflare.span("chat", kind="llm"):
                pyflare.record_usage(model="m1", input_tokens=1000, output_tokens=500)
            made += 1
        spent = handle.spent_micros
        pyflare.shutdown()
        print("RESULT", json.dumps(
            {"made": made, "refused": refused, "spent": spent,
             "events": [e.spent_micros for e in events]}
        ))
        """
    )
    result = run_python.result(child.stdout)
    assert (result["made"], result["spent"], result["events"]) == (3, 6000, [6000])
    assert result["refused"][0] == 3
    assert "'environment=prod per day'" in result["refused"][1]
