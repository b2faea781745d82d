"""Daily cost forecasts: method choice, intervals, backtest error, bad input."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

import numpy as np
import pytest

from pyflare.cost import forecast as forecast_module
from pyflare.cost.forecast import CostForecast, forecast_daily
from pyflare.errors import InvalidArgumentError, PyFlareError

START = dt.date(2026, 1, 5)  # a Monday


def days(n: int, start: dt.date = START) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


def weekly_series(n: int, seed: int = 7) -> np.ndarray:
    """Dollars per day: a slow rise, busy weekdays and quiet weekends, some noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    weekday_effect = np.where(t % 7 < 5, 40.0, -60.0)
    return 200 + 0.8 * t + weekday_effect + rng.normal(0, 6, n)


def micros(dollars: np.ndarray) -> list[int]:
    return [round(float(v) * 1_000_000) for v in dollars]


def test_weekly_seasonality_is_forecast_and_covered_by_the_interval() -> None:
    history, horizon = 56, 14
    truth = micros(weekly_series(history + horizon))
    result = forecast_daily(days(history), truth[:history], horizon)
    assert result.method == "holt_winters_weekly"
    assert (result.horizon_days, result.history_days, result.level) == (14, 56, 0.95)
    assert result.points[0].day == START + dt.timedelta(days=history)
    inside = sum(
        p.lower_micros <= t <= p.upper_micros
        for p, t in zip(result.points, truth[history:], strict=True)
    )
    assert inside >= 13
    # The weekly shape is kept: forecast weekends cost less than forecast weekdays.
    weekday = [p.cost_micros for p in result.points if p.day.weekday() < 5]
    weekend = [p.cost_micros for p in result.points if p.day.weekday() >= 5]
    assert max(weekend) < min(weekday)
    assert result.backtest_days == 7
    assert result.mape_percent is not None and 0 < result.mape_percent < 10


def test_a_short_series_gets_a_damped_trend() -> None:
    history = [100_000_000 + 5_000_000 * i for i in range(10)]  # +$5 a day
    result = forecast_daily(days(10), history, 5)
    assert result.method == "damped_trend"
    first = result.points[0]
    assert first.cost_micros > history[-1]
    assert all(p.lower_micros <= p.cost_micros <= p.upper_micros for p in result.points)
    # Damped: each day adds less than the one before, never more than the history's slope.
    steps = np.diff([history[-1], *(p.cost_micros for p in result.points)])
    assert all(0 < s <= 5_000_001 for s in steps)
    assert np.all(np.diff(steps) <= 1)
    assert (result.backtest_days, result.mape_percent is not None) == (2, True)


def test_forecasts_and_bounds_are_never_negative() -> None:
    falling = [50_000_000 - 6_000_000 * i for i in range(8)]  # $50 down to $8
    result = forecast_daily(days(8), falling, 30)
    assert all(p.lower_micros >= 0 and p.cost_micros >= 0 for p in result.points)
    assert all(p.upper_micros >= p.cost_micros for p in result.points)
    assert result.points[-1].cost_micros < falling[-1]


def test_missing_days_cost_nothing_and_order_does_not_matter() -> None:
    given = {
        START: 5_000_000,
        START + dt.timedelta(days=4): 7_000_000,
        START + dt.timedelta(days=2): 6_000_000,
    }
    result = forecast_daily(list(given), list(given.values()), 2)
    assert (result.history_start, result.history_end, result.history_days) == (
        START,
        START + dt.timedelta(days=4),
        5,
    )
    assert result.points[0].day == START + dt.timedelta(days=5)


def test_days_as_nanoseconds_and_datetimes_equal_dates() -> None:
    costs = [1_000_000, 3_000_000, 2_000_000, 4_000_000]
    as_dates = forecast_daily(days(4), costs, 3)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    as_ns = [
        (dt.datetime.combine(d, dt.time(13), tzinfo=dt.UTC) - epoch)
        // dt.timedelta(microseconds=1)
        * 1000
        for d in days(4)
    ]
    aware = [
        dt.datetime.combine(d, dt.time(23), tzinfo=dt.timezone(dt.timedelta(hours=-1)))
        - dt.timedelta(hours=1)
        for d in days(4)
    ]
    assert forecast_daily(as_ns, costs, 3) == as_dates
    assert forecast_daily(aware, costs, 3) == as_dates  # 22:00 at UTC-1 is 23:00 UTC, same day


def test_a_flat_series_is_forecast_flat() -> None:
    result = forecast_daily(days(20), [2_500_000] * 20, 3)
    assert result.method == "constant"
    assert {(p.cost_micros, p.lower_micros, p.upper_micros) for p in result.points} == {
        (2_500_000, 2_500_000, 2_500_000)
    }
    assert result.mape_percent == 0.0
    zeros = forecast_daily(days(20), [0] * 20, 3)
    assert (zeros.total_micros, zeros.mape_percent) == (0, None)  # no costly day to measure on


def test_too_little_history_has_no_backtest() -> None:
    result = forecast_daily(days(3), [1_000_000, 2_000_000, 4_000_000], 2)
    assert (result.method, result.mape_percent, result.backtest_days) == ("damped_trend", None, 0)


def test_large_amounts_stay_exact_integers() -> None:
    big = micros(weekly_series(28) * 1000)  # ~$200k a day
    result = forecast_daily(days(28), big, 7, level=0.8)
    assert result.method == "holt_winters_weekly"
    assert all(type(p.cost_micros) is int for p in result.points)
    assert result.total_micros == sum(p.cost_micros for p in result.points)
    assert 100_000_000_000 < result.points[0].cost_micros < 400_000_000_000


def test_to_dict_is_json_with_exact_micros() -> None:
    result = forecast_daily(days(21), micros(weekly_series(21)), 3)
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["method"] == "holt_winters_weekly"
    assert (data["horizon_days"], data["history_days"], data["history_start"]) == (
        3,
        21,
        "2026-01-05",
    )
    first = data["points"][0]
    assert first["day"] == "2026-01-26"
    assert first["cost_usd"] == first["cost_micros"] / 1_000_000
    assert data["total_cost_micros"] == sum(p["cost_micros"] for p in data["points"])
    assert set(first) == {
        "day",
        "cost_micros",
        "lower_micros",
        "upper_micros",
        "cost_usd",
        "lower_usd",
        "upper_usd",
    }


def test_a_failed_weekly_fit_falls_back_to_the_damped_trend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = forecast_module._ets_model()

    def no_seasons(series: Any, **options: Any) -> Any:
        if "seasonal" in options:
            raise ValueError("seasonal fit failed")
        return real(series, **options)

    monkeypatch.setattr(forecast_module, "_ets_model", lambda: no_seasons)
    result = forecast_daily(days(28), micros(weekly_series(28)), 7)
    assert result.method == "damped_trend"


def test_without_statsmodels_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "statsmodels.tsa.exponential_smoothing.ets", None)
    with pytest.raises(PyFlareError, match=r'pip install "pyflare\[forecast\]"'):
        forecast_daily(days(5), [1, 2, 3, 4, 5], 3)


@pytest.mark.parametrize(
    ("given_days", "costs", "kwargs", "message"),
    [
        (days(3), [1, 2], {}, "same length, got 3 and 2"),
        ([], [], {}, "at least 3 days of costs, got none"),
        (days(2), [1, 2], {}, r"at least 3 days of costs, got 2 \(2026-01-05 to 2026-01-06\)"),
        (
            [START, START, START + dt.timedelta(days=3)],
            [1, 2, 3],
            {},
            r"days\[1\] repeats 2026-01-05",
        ),
        (days(3), [1, -2, 3], {}, r"costs_micros\[1\] must not be negative, got -2"),
        (days(3), [1, 2.5, 3], {}, r"costs_micros\[1\] must be an integer number of micro-dollars"),
        (days(3), [1, True, 3], {}, r"costs_micros\[1\] must be an integer"),
        (
            ["2026-01-05", "2026-01-06", "2026-01-07"],
            [1, 2, 3],
            {},
            r"days\[0\] must be a date or UTC nanoseconds, got str",
        ),
        ("abc", [1, 2, 3], {}, "days must be a sequence, got str"),
        (days(3), 7, {}, "costs_micros must be a sequence, got int"),
        (
            [START, START + dt.timedelta(days=4000), START + dt.timedelta(days=1)],
            [1, 2, 3],
            {},
            "spans 4001 days",
        ),
        (days(3), [1, 2, 3], {"horizon_days": 0}, "horizon_days must be between 1 and 365, got 0"),
        (days(3), [1, 2, 3], {"horizon_days": 366}, "between 1 and 365"),
        (days(3), [1, 2, 3], {"horizon_days": 7.0}, "horizon_days must be an integer"),
        (days(3), [1, 2, 3], {"horizon_days": True}, "horizon_days must be an integer"),
        (days(3), [1, 2, 3], {"level": 1.0}, "level must be a coverage between 0 and 1"),
        (days(3), [1, 2, 3], {"level": "95%"}, "level must be a coverage"),
    ],
)
def test_bad_input_is_named(
    given_days: Any, costs: Any, kwargs: dict[str, Any], message: str
) -> None:
    options = {"horizon_days": 7, **kwargs}
    with pytest.raises(InvalidArgumentError, match=message):
        forecast_daily(given_days, costs, options.pop("horizon_days"), **options)


def test_results_are_values() -> None:
    a = forecast_daily(days(5), [1, 2, 3, 4, 5], 2)
    b = forecast_daily(days(5), [1, 2, 3, 4, 5], 2)
    assert isinstance(a, CostForecast)
    assert a == b  # deterministic: no random simulation
