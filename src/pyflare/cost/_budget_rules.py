"""Budget rules: what is limited, over which window, to how many micro-dollars.

A :class:`Budget` is plain data shared by the SDK's tracker
(:mod:`pyflare.cost.budgets`) and the server's checks over stored costs. Windows are
UTC calendar windows: a day from midnight, an ISO week from Monday midnight, a month
from the first. Amounts are integer micro-dollars; a limit given in dollars
(``Decimal``, ``int``, ``float`` or ``str``) is rounded half-up to a micro-dollar.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final, Literal, cast

from pyflare import semconv as sc
from pyflare.errors import ConfigError, InvalidArgumentError

__all__ = [
    "DIMENSIONS",
    "WINDOWS",
    "Budget",
    "budgets_from_config",
    "checked_budget",
    "format_usd",
    "iso_utc",
    "usd_to_micros",
    "window_bounds",
]

Dimension = Literal["total", "model", "user", "feature", "team", "environment"]
Window = Literal["day", "week", "month"]

DIMENSIONS: Final = ("total", "model", "user", "feature", "team", "environment")
WINDOWS: Final = ("day", "week", "month")
# Spellings accepted for a dimension (config files often use the column names).
_DIMENSION_ALIASES: Final[dict[str, str]] = {
    **{name: name for name in DIMENSIONS},
    "model_id": "model",
    "user_id": "user",
    "feature_id": "feature",
}
#: The span attribute (and context key) each dimension is read from in the SDK.
DIMENSION_KEYS: Final[dict[str, str]] = {
    "user": sc.USER_ID,
    "feature": sc.FEATURE_ID,
    "team": sc.TEAM,
    "environment": sc.ENVIRONMENT,
}
MICROS_PER_USD: Final = 1_000_000
_MAX_VALUE_CHARS = 256
_NS_PER_S = 1_000_000_000
_DAY = dt.timedelta(days=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def usd_to_micros(value: object, *, what: str) -> int:
    """US dollars (``Decimal``, ``int``, ``float`` or a numeric ``str``) as integer micro-dollars.

    Rounded half-up to a micro-dollar. Floats go through their shortest repr, so
    ``0.1`` is exactly 100 000 micro-dollars.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise InvalidArgumentError(
            f"{what} must be an amount in US dollars (Decimal, int, float or str), "
            f"got {type(value).__name__}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(f"{what} must be a finite amount, got {value!r}")
    try:
        if isinstance(value, str):
            amount = Decimal(value.strip())
        elif isinstance(value, float):
            amount = Decimal(repr(value))
        else:
            amount = Decimal(value)
    except InvalidOperation:
        raise InvalidArgumentError(
            f"{what} must be an amount in US dollars such as '12.50', got {value!r}"
        ) from None
    if not amount.is_finite():
        raise InvalidArgumentError(f"{what} must be a finite amount, got {value!r}")
    return int((amount * MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_usd(micros: int) -> str:
    """Micro-dollars as an exact dollar string: ``$5.00``, ``$0.000123``, ``-$1.50``."""
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS_PER_USD)
    digits = f"{fraction:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}${whole:,}.{digits}"


def iso_utc(ns: int) -> str:
    """UTC nanoseconds as ISO 8601 to the second, ``2026-01-02T00:00:00Z``."""
    moment = _EPOCH + dt.timedelta(seconds=ns // _NS_PER_S)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _to_ns(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(seconds=1) * _NS_PER_S


def window_bounds(window: str, now_ns: int) -> tuple[int, int]:
    """The UTC calendar window holding ``now_ns``: (start, end) in ns, end exclusive."""
    moment = _EPOCH + dt.timedelta(seconds=now_ns // _NS_PER_S)
    day = dt.datetime(moment.year, moment.month, moment.day, tzinfo=dt.UTC)
    if window == "day":
        return _to_ns(day), _to_ns(day + _DAY)
    if window == "week":
        monday = day - moment.weekday() * _DAY
        return _to_ns(monday), _to_ns(monday + 7 * _DAY)
    if window == "month":
        first = day.replace(day=1)
        following = (first + 32 * _DAY).replace(day=1)
        return _to_ns(first), _to_ns(following)
    raise InvalidArgumentError(f"window must be one of {', '.join(WINDOWS)}, got {window!r}")


@dataclass(frozen=True, init=False)
class Budget:
    """A spending limit over one dimension value and a UTC calendar window.

    ``dimension`` is ``total`` (every priced call; ``value`` stays None) or one of
    ``model``, ``user``, ``feature``, ``team``, ``environment`` with the ``value`` it
    limits. Give the limit as ``limit_usd`` or ``limit_micros``. ``warn_at`` is the
    fraction of the limit at which a warning fires (None: no warning). ``hard``
    budgets make instrumented calls raise :class:`~pyflare.errors.BudgetExceeded`
    once the limit is reached (SDK only; the server only reports).
    """

    name: str
    dimension: Dimension
    value: str | None
    window: Window
    limit_micros: int
    warn_at: float | None
    hard: bool

    def __init__(
        self,
        *,
        limit_usd: Decimal | float | str | None = None,
        limit_micros: int | None = None,
        window: str = "day",
        dimension: str = "total",
        value: str | None = None,
        warn_at: float | None = 0.8,
        hard: bool = False,
        name: str | None = None,
    ) -> None:
        fields = _checked_fields(
            "Budget",
            limit_usd=limit_usd,
            limit_micros=limit_micros,
            window=window,
            dimension=dimension,
            value=value,
            warn_at=warn_at,
            hard=hard,
            name=name,
        )
        for key, checked in fields.items():
            object.__setattr__(self, key, checked)

    @property
    def warn_micros(self) -> int | None:
        """The spend at which the warning fires (rounded up), or None without one."""
        if self.warn_at is None:
            return None
        threshold = Decimal(repr(self.warn_at)) * self.limit_micros
        return int(threshold.to_integral_value(rounding=ROUND_CEILING))

    @property
    def description(self) -> str:
        """``user u1, per day, limit $5.00`` (for messages)."""
        what = "all calls" if self.dimension == "total" else f"{self.dimension} {self.value}"
        return f"{what}, per {self.window}, limit {format_usd(self.limit_micros)}"


def _checked_fields(where: str, **given: Any) -> dict[str, Any]:
    """Validate Budget's arguments; errors name ``where`` and the field."""
    limit_usd, limit_micros = given["limit_usd"], given["limit_micros"]
    if (limit_usd is None) == (limit_micros is None):
        raise InvalidArgumentError(f"{where}: give exactly one of limit_usd and limit_micros")
    if limit_micros is None:
        limit_micros = usd_to_micros(limit_usd, what=f"{where}: limit_usd")
        shown = f"limit_usd={limit_usd!r}"
    elif isinstance(limit_micros, bool) or not isinstance(limit_micros, int):
        raise InvalidArgumentError(
            f"{where}: limit_micros must be an integer number of micro-dollars, got {limit_micros!r}"
        )
    else:
        shown = f"limit_micros={limit_micros!r}"
    if limit_micros <= 0:
        raise InvalidArgumentError(f"{where}: the limit must be positive, got {shown}")
    window = given["window"]
    if window not in WINDOWS:
        raise InvalidArgumentError(
            f"{where}: window must be one of {', '.join(WINDOWS)}, got {window!r}"
        )
    dimension = (
        _DIMENSION_ALIASES.get(given["dimension"]) if isinstance(given["dimension"], str) else None
    )
    if dimension is None:
        raise InvalidArgumentError(
            f"{where}: dimension must be one of {', '.join(DIMENSIONS)}, got {given['dimension']!r}"
        )
    value = given["value"]
    if dimension == "total":
        if value is not None:
            raise InvalidArgumentError(
                f"{where}: a 'total' budget takes no value, got value={value!r}"
            )
    elif not isinstance(value, str) or not value or len(value) > _MAX_VALUE_CHARS:
        raise InvalidArgumentError(
            f"{where}: a {dimension!r} budget needs value, a string of 1 to "
            f"{_MAX_VALUE_CHARS} characters (the {dimension} it limits), got {value!r}"
        )
    warn_at = given["warn_at"]
    if warn_at is not None:
        if isinstance(warn_at, bool) or not isinstance(warn_at, int | float):
            raise InvalidArgumentError(
                f"{where}: warn_at must be a fraction of the limit such as 0.8, got {warn_at!r}"
            )
        if not 0 < warn_at < 1:
            raise InvalidArgumentError(
                f"{where}: warn_at must be between 0 and 1 (exclusive), got {warn_at!r}"
            )
        warn_at = float(warn_at)
    hard = given["hard"]
    if not isinstance(hard, bool):
        raise InvalidArgumentError(f"{where}: hard must be True or False, got {hard!r}")
    name = given["name"]
    if name is None:
        target = "total" if dimension == "total" else f"{dimension}={value}"
        name = f"{target} per {window}"
    elif not isinstance(name, str) or not name.strip():
        raise InvalidArgumentError(f"{where}: name must be a non-empty string, got {name!r}")
    return {
        "name": name,
        "dimension": cast("Dimension", dimension),
        "value": value,
        "window": cast("Window", window),
        "limit_micros": limit_micros,
        "warn_at": warn_at,
        "hard": hard,
    }


def checked_budget(where: str, **given: Any) -> Budget:
    """A Budget whose validation errors start with ``where`` instead of ``Budget``."""
    budget = Budget.__new__(Budget)
    for key, checked in _checked_fields(where, **given).items():
        object.__setattr__(budget, key, checked)
    return budget


_CONFIG_FIELDS: Final = (
    "name",
    "dimension",
    "value",
    "window",
    "limit_usd",
    "limit_micros",
    "warn_at",
    "hard",
)


def budgets_from_config(entries: object, *, source: str = "budgets") -> list[Budget]:
    """Budget rules from configuration: a list of mappings with Budget's fields.

    Fields: ``name`` (unique), ``dimension`` (``total`` by default; ``model_id``,
    ``user_id`` and ``feature_id`` are accepted for ``model``, ``user``,
    ``feature``), ``value``, ``window`` (default ``day``), ``limit_usd`` or
    ``limit_micros``, ``warn_at`` (default 0.8; null for none), ``hard``. Raises
    :class:`~pyflare.errors.ConfigError` naming ``source``, the entry and the field.
    """
    if isinstance(entries, str | bytes | Mapping) or not isinstance(entries, Sequence):
        raise ConfigError(
            f"{source} must be a list of budget entries, got {type(entries).__name__}"
        )
    budgets: list[Budget] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        label = f"{source}[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{label} must be a mapping of fields, got {type(entry).__name__}")
        if isinstance(entry.get("name"), str):
            label = f"{label} ({entry['name']!r})"
        unknown = sorted(str(key) for key in entry if key not in _CONFIG_FIELDS)
        if unknown:
            raise ConfigError(
                f"{label}: unknown field(s) {', '.join(unknown)}; "
                f"expected {', '.join(_CONFIG_FIELDS)}"
            )
        fields = {key: entry[key] for key in _CONFIG_FIELDS if key in entry}
        fields.setdefault("window", "day")
        fields.setdefault("dimension", "total")
        fields.setdefault("warn_at", 0.8)
        fields.setdefault("hard", False)
        for key in ("name", "value", "limit_usd", "limit_micros"):
            fields.setdefault(key, None)
        try:
            budget = checked_budget(label, **fields)
        except InvalidArgumentError as exc:
            raise ConfigError(str(exc)) from None
        if budget.name in seen:
            raise ConfigError(
                f"{label}: name {budget.name!r} is already used by {source}[{seen[budget.name]}]; "
                "budget names must be unique"
            )
        seen[budget.name] = index
        budgets.append(budget)
    return budgets
