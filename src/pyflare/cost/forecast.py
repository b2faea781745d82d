"""Daily cost forecasts with prediction intervals.

:func:`forecast_daily` fits an additive-error exponential smoothing model
(statsmodels' ``ETSModel``) to a series of daily costs and projects it forward:

- ``holt_winters_weekly`` with at least 14 days (two full weeks): a damped
  additive trend plus additive weekly seasonality (weekday/weekend patterns);
- ``damped_trend`` with 3 to 13 days: a damped additive trend, no seasonality;
- ``constant`` when every day cost the same (nothing to fit: the forecast is that
  cost, with no spread).

The trend is damped so that a forecast months out levels off instead of
extrapolating a short-lived slope. Prediction intervals are the model's analytic
ones at ``level``; they take the fitted parameters as known, so with only a few
weeks of history they are on the narrow side. Forecasts and bounds are never
negative. The backtest refits the same method without the last ``min(7, n // 4)``
days and reports its mean absolute percentage error on them (days that cost
nothing are left out of the MAPE; None when there is too little data).

Days missing between the first and last given day count as days that cost
nothing. Amounts are integer micro-dollars in and out (the model itself works in
dollars; results are rounded to the micro-dollar). statsmodels is the ``forecast``
extra: ``pip install "pyflare[forecast]"``.
"""

from __future__ import annotations

import datetime as dt
import logging
import operator
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from pyflare.errors import InvalidArgumentError, PyFlareError

__all__ = ["METHODS", "CostForecast", "ForecastPoint", "forecast_daily"]

logger = logging.getLogger(__name__)

METHODS: Final = ("holt_winters_weekly", "damped_trend", "constant")
MIN_DAYS: Final = 3
WEEKLY_MIN_DAYS: Final = 14
MAX_HORIZON_DAYS: Final = 365
#: Longest history accepted (first to last day), to keep a fit bounded.
MAX_HISTORY_DAYS: Final = 3660
_MICROS_PER_USD: Final = 1_000_000
_NS_PER_DAY: Final = 86_400 * 1_000_000_000
_EPOCH_DAY: Final = dt.date(1970, 1, 1)
_Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ForecastPoint:
    """One forecast day: expected cost and its prediction interval, in micro-dollars."""

    day: dt.date
    cost_micros: int
    lower_micros: int
    upper_micros: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "cost_micros": self.cost_micros,
            "lower_micros": self.lower_micros,
            "upper_micros": self.upper_micros,
            "cost_usd": self.cost_micros / _MICROS_PER_USD,
            "lower_usd": self.lower_micros / _MICROS_PER_USD,
            "upper_usd": self.upper_micros / _MICROS_PER_USD,
        }


@dataclass(frozen=True)
class CostForecast:
    """A daily cost forecast: the method, its backtest error and one point per day ahead."""

    method: str
    level: float
    history_start: dt.date
    history_end: dt.date
    history_days: int
    points: tuple[ForecastPoint, ...]
    #: Mean absolute percentage error of the backtest (percent), or None.
    mape_percent: float | None
    backtest_days: int

    @property
    def horizon_days(self) -> int:
        return len(self.points)

    @property
    def total_micros(self) -> int:
        """Expected cost over the whole horizon."""
        return sum(point.cost_micros for point in self.points)

    def to_dict(self) -> dict[str, Any]:
        """For the API: exact micro-dollars plus dollar floats for display."""
        return {
            "method": self.method,
            "level": self.level,
            "horizon_days": self.horizon_days,
            "history_start": self.history_start.isoformat(),
            "history_end": self.history_end.isoformat(),
            "history_days": self.history_days,
            "backtest_days": self.backtest_days,
            "mape_percent": self.mape_percent,
            "total_cost_micros": self.total_micros,
            "total_cost_usd": self.total_micros / _MICROS_PER_USD,
            "points": [point.to_dict() for point in self.points],
        }


def _as_day(value: object, index: int) -> dt.date:
    if isinstance(value, dt.datetime):
        moment = value.astimezone(dt.UTC) if value.tzinfo is not None else value
        return moment.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return _EPOCH_DAY + dt.timedelta(days=value // _NS_PER_DAY)
    raise InvalidArgumentError(
        f"days[{index}] must be a date or UTC nanoseconds, got {type(value).__name__}"
    )


def _as_micros(value: object, index: int) -> int:
    if isinstance(value, bool):
        raise InvalidArgumentError(f"costs_micros[{index}] must be an integer, got {value!r}")
    try:
        micros = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgumentError(
            f"costs_micros[{index}] must be an integer number of micro-dollars, got {value!r}"
        ) from None
    if micros < 0:
        raise InvalidArgumentError(f"costs_micros[{index}] must not be negative, got {micros}")
    return int(micros)


def _daily_series(days: object, costs: object) -> tuple[dt.date, _Floats]:
    """Validated input as (first day, cost in dollars per day), missing days as 0."""
    if isinstance(days, str | bytes) or not isinstance(days, Sequence):
        raise InvalidArgumentError(f"days must be a sequence, got {type(days).__name__}")
    if isinstance(costs, str | bytes) or not isinstance(costs, Sequence):
        raise InvalidArgumentError(f"costs_micros must be a sequence, got {type(costs).__name__}")
    if len(days) != len(costs):
        raise InvalidArgumentError(
            f"days and costs_micros must have the same length, got {len(days)} and {len(costs)}"
        )
    by_day: dict[dt.date, int] = {}
    for index, (day_value, cost_value) in enumerate(zip(days, costs, strict=True)):
        day = _as_day(day_value, index)
        if day in by_day:
            raise InvalidArgumentError(
                f"days[{index}] repeats {day.isoformat()}; give each day once"
            )
        by_day[day] = _as_micros(cost_value, index)
    if not by_day:
        raise InvalidArgumentError(f"a forecast needs at least {MIN_DAYS} days of costs, got none")
    first, last = min(by_day), max(by_day)
    span = (last - first).days + 1
    if span < MIN_DAYS:
        raise InvalidArgumentError(
            f"a forecast needs at least {MIN_DAYS} days of costs, got {span} "
            f"({first.isoformat()} to {last.isoformat()})"
        )
    if span > MAX_HISTORY_DAYS:
        raise InvalidArgumentError(
            f"the history spans {span} days ({first.isoformat()} to {last.isoformat()}); "
            f"give at most {MAX_HISTORY_DAYS}"
        )
    micros = np.zeros(span, dtype=np.int64)
    for day, cost in by_day.items():
        micros[(day - first).days] = cost
    return first, micros.astype(np.float64) / _MICROS_PER_USD


def _ets_model() -> Any:
    try:
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    except ImportError as exc:
        raise PyFlareError(
            'Cost forecasts need statsmodels: pip install "pyflare[forecast]"'
        ) from exc
    return ETSModel


class _FitFailed(Exception):
    pass


def _predict(
    method: str, history: _Floats, horizon: int, alpha: float
) -> tuple[_Floats, _Floats, _Floats]:
    """(mean, lower, upper) in dollars for ``horizon`` days after ``history``."""
    if method == "constant":
        flat = np.full(horizon, history[-1])
        return flat, flat, flat
    import pandas as pd

    options: dict[str, Any] = {"error": "add", "trend": "add", "damped_trend": True}
    if method == "holt_winters_weekly":
        options.update(seasonal="add", seasonal_periods=7)
    model_class = _ets_model()
    n = len(history)
    try:
        with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
            warnings.simplefilter("always")
            fitted = model_class(pd.Series(history), **options).fit(disp=False)
            frame = fitted.get_prediction(start=n, end=n + horizon - 1).summary_frame(alpha=alpha)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise _FitFailed(f"{method}: {exc}") from exc
    for warning in caught:
        logger.debug("cost forecast (%s): %s", method, warning.message)
    mean, lower, upper = (
        frame[column].to_numpy(dtype=np.float64) for column in ("mean", "pi_lower", "pi_upper")
    )
    if not (np.isfinite(mean).all() and np.isfinite(lower).all() and np.isfinite(upper).all()):
        raise _FitFailed(f"{method}: the fit gave non-finite values")
    return mean, lower, upper


def _method_for(history: _Floats) -> str:
    if np.ptp(history) == 0:
        return "constant"
    return "holt_winters_weekly" if len(history) >= WEEKLY_MIN_DAYS else "damped_trend"


def _min_days(method: str) -> int:
    return WEEKLY_MIN_DAYS if method == "holt_winters_weekly" else MIN_DAYS


def _backtest(method: str, history: _Floats, alpha: float) -> tuple[float | None, int]:
    """(MAPE in percent, days held out) of ``method`` refitted without the last days."""
    held_out = min(7, len(history) // 4)
    train = history[:-held_out] if held_out else history
    if held_out == 0 or len(train) < _min_days(method):
        return None, 0
    if np.ptp(train) == 0:
        method = "constant"
    try:
        predicted = np.maximum(_predict(method, train, held_out, alpha)[0], 0.0)
    except _FitFailed as exc:
        logger.debug("cost forecast backtest failed: %s", exc)
        return None, 0
    actual = history[-held_out:]
    costly = actual > 0
    if not costly.any():
        return None, held_out
    errors = np.abs(actual[costly] - predicted[costly]) / actual[costly]
    return round(float(errors.mean()) * 100, 2), held_out


def _to_micros(dollars: _Floats) -> list[int]:
    return [int(v) for v in np.rint(dollars * _MICROS_PER_USD).astype(np.int64)]


def forecast_daily(
    days: Sequence[dt.date | int],
    costs_micros: Sequence[int],
    horizon_days: int,
    *,
    level: float = 0.95,
) -> CostForecast:
    """Forecast the cost of each of the ``horizon_days`` days after the last given day.

    ``days`` are dates (or UTC nanoseconds within the day), each given once, in
    any order; ``costs_micros`` the matching daily costs in micro-dollars. Needs
    at least 3 days from first to last; missing days count as zero. ``level`` is
    the prediction interval's coverage (0.95: 95%). Raises
    :class:`~pyflare.errors.InvalidArgumentError` for bad input and
    :class:`~pyflare.errors.PyFlareError` without statsmodels.
    """
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int):
        raise InvalidArgumentError(
            f"horizon_days must be an integer number of days, got {horizon_days!r}"
        )
    if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
        raise InvalidArgumentError(
            f"horizon_days must be between 1 and {MAX_HORIZON_DAYS}, got {horizon_days}"
        )
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise InvalidArgumentError(
            f"level must be a coverage between 0 and 1 (exclusive) such as 0.95, got {level!r}"
        )
    first, history = _daily_series(days, costs_micros)
    alpha = 1.0 - float(level)
    method = _method_for(history)
    try:
        mean, lower, upper = _predict(method, history, horizon_days, alpha)
    except _FitFailed as exc:
        if method != "holt_winters_weekly":
            raise PyFlareError(f"the cost forecast could not be fitted ({exc})") from None
        logger.info("weekly cost forecast failed (%s); using a damped trend", exc)
        method = "damped_trend"
        try:
            mean, lower, upper = _predict(method, history, horizon_days, alpha)
        except _FitFailed as again:
            raise PyFlareError(f"the cost forecast could not be fitted ({again})") from None
    mean = np.maximum(mean, 0.0)
    lower = np.clip(lower, 0.0, mean)
    upper = np.maximum(upper, mean)
    mape, held_out = _backtest(method, history, alpha)
    last = first + dt.timedelta(days=len(history) - 1)
    points = tuple(
        ForecastPoint(last + dt.timedelta(days=i + 1), cost, low, high)
        for i, (cost, low, high) in enumerate(
            zip(_to_micros(mean), _to_micros(lower), _to_micros(upper), strict=True)
        )
    )
    return CostForecast(
        method=method,
        level=float(level),
        history_start=first,
        history_end=last,
        history_days=len(history),
        points=points,
        mape_percent=mape,
        backtest_days=held_out,
    )
