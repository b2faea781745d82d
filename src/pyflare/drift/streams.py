"""Concept drift on streams: DDM, Page-Hinkley and ADWIN change detectors.

Each detector reads one value at a time (usually the error stream of a model
whose labels arrive later: 1 for a wrong prediction, 0 for a right one) and
says when the stream's mean has changed. They share one small surface
(:class:`StreamDetector`): ``update(x) -> bool`` (True on the update where a
change is detected), ``drift_detected``, ``reset()``, and ``state()`` /
``from_state()`` as a JSON-able dict, so a server can persist a detector
between processes. Values that are NaN or infinite raise
:class:`~pyflare.errors.DriftError`; nothing is skipped silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal, Protocol, Self

from pyflare.errors import DriftError

__all__ = ["ADWIN", "DDM", "PageHinkley", "StreamDetector", "detect_changes"]

_STATE_VERSION = 1


class StreamDetector(Protocol):
    """What every stream change detector offers."""

    @property
    def drift_detected(self) -> bool:
        """Whether the last update detected a change."""
        ...

    def update(self, x: float) -> bool:
        """Read one value; True when a change is detected on this value."""
        ...

    def reset(self) -> None:
        """Forget everything read so far (the parameters stay)."""
        ...

    def state(self) -> dict[str, Any]:
        """Parameters and statistics as a JSON-able dict."""
        ...


def detect_changes(detector: StreamDetector, values: Iterable[float]) -> list[int]:
    """Feed ``values`` to ``detector``; the 0-based positions where it detected a change."""
    return [i for i, x in enumerate(values) if detector.update(x)]


def _finite(x: float, what: str) -> float:
    try:
        value = float(x)
    except (TypeError, ValueError) as exc:
        raise DriftError(f"{what} must be a number, got {x!r}") from exc
    if not math.isfinite(value):
        raise DriftError(f"{what} must be finite, got {value!r}; drop or impute it first")
    return value


def _check_state(state: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    if not isinstance(state, Mapping):
        raise DriftError(f"a {kind} state must be a dict, got {type(state).__name__}")
    if state.get("kind") != kind:
        raise DriftError(f"this state is for {state.get('kind')!r}, not {kind!r}")
    if state.get("version") != _STATE_VERSION:
        raise DriftError(
            f"{kind} state version {state.get('version')!r} is not supported "
            f"(this PyFlare reads version {_STATE_VERSION})"
        )
    return state


class _Detector:
    """What the three detectors share: the drift flag and the state envelope."""

    _KIND: ClassVar[str]
    _STATS: ClassVar[tuple[str, ...]] = ()
    _drift: bool

    @property
    def drift_detected(self) -> bool:
        """Whether the last update detected a change."""
        return self._drift

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _stats(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._STATS}

    def state(self) -> dict[str, Any]:
        """Parameters and statistics as a JSON-able dict (``kind``, ``version``, ``params``, ``stats``)."""
        return {
            "kind": self._KIND,
            "version": _STATE_VERSION,
            "params": self._params(),
            "stats": self._stats(),
        }

    @classmethod
    def _from_params(cls, state: Mapping[str, Any]) -> Self:
        state = _check_state(state, cls._KIND)
        try:
            detector = cls(**state["params"])
            for name in cls._STATS:
                setattr(detector, name, state["stats"][name])
        except (KeyError, TypeError) as exc:
            raise DriftError(f"the {cls._KIND} state is incomplete or malformed: {exc!r}") from exc
        return detector

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """A detector that continues where the one that wrote ``state`` stopped."""
        return cls._from_params(state)


class DDM(_Detector):
    """Drift Detection Method (Gama, Medas, Castillo & Rodrigues, 2004) on a 0/1 error stream.

    With ``p`` the running error rate and ``s = sqrt(p(1-p)/n)``, the detector
    remembers the point where ``p + s`` was lowest (``p_min``, ``s_min``). After
    ``min_samples`` values it is *in warning* while ``p + s > p_min +
    warning_level * s_min`` and detects drift when ``p + s > p_min +
    drift_level * s_min`` (the paper's 95 % and 99 % levels, 2 and 3). On drift
    the statistics restart, so the next context is learnt afresh. As in the
    paper (and MOA), an error-free start gives ``s_min = 0``, so the first error
    after it is a change.
    """

    _KIND: ClassVar[str] = "ddm"
    _STATS: ClassVar[tuple[str, ...]] = ("n", "errors", "p_min", "s_min", "_warning", "_drift")

    def __init__(
        self, *, warning_level: float = 2.0, drift_level: float = 3.0, min_samples: int = 30
    ) -> None:
        if not 0 < warning_level <= drift_level:
            raise DriftError("DDM needs 0 < warning_level <= drift_level")
        if min_samples < 1:
            raise DriftError("DDM needs min_samples >= 1")
        self.warning_level = float(warning_level)
        self.drift_level = float(drift_level)
        self.min_samples = int(min_samples)
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.errors = 0
        self.p_min = math.inf
        self.s_min = math.inf
        self._warning = False
        self._drift = False

    @property
    def error_rate(self) -> float:
        """The error rate since the last reset (0 before any value)."""
        return self.errors / self.n if self.n else 0.0

    @property
    def in_warning(self) -> bool:
        """Whether the last value put the stream in the warning zone."""
        return self._warning

    def update(self, x: float) -> bool:
        """Read one outcome: 1 (or True) for an error, 0 (or False) for a correct prediction."""
        value = _finite(x, "a DDM value")
        if value not in (0.0, 1.0):
            raise DriftError(f"DDM reads 0/1 error indicators, got {x!r}")
        if self._drift:  # the previous value ended a context: start a new one
            self.reset()
        self.n += 1
        self.errors += int(value)
        self._warning = False
        if self.n < self.min_samples:
            return False
        p = self.errors / self.n
        s = math.sqrt(p * (1.0 - p) / self.n)
        if p + s < self.p_min + self.s_min:
            self.p_min, self.s_min = p, s
        if p + s > self.p_min + self.drift_level * self.s_min:
            self._drift = True
        elif p + s > self.p_min + self.warning_level * self.s_min:
            self._warning = True
        return self._drift

    def _params(self) -> dict[str, Any]:
        return {
            "warning_level": self.warning_level,
            "drift_level": self.drift_level,
            "min_samples": self.min_samples,
        }

    def _stats(self) -> dict[str, Any]:
        stats = super()._stats()
        # JSON has no infinity: None stands for "not seen yet"
        for name in ("p_min", "s_min"):
            stats[name] = None if math.isinf(stats[name]) else stats[name]
        return stats

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        detector = cls._from_params(state)
        detector.p_min = math.inf if detector.p_min is None else float(detector.p_min)
        detector.s_min = math.inf if detector.s_min is None else float(detector.s_min)
        return detector


class PageHinkley(_Detector):
    """Page-Hinkley test (Page 1954; Hinkley 1971) for a change in a stream's mean.

    For an increase it accumulates ``m_t = alpha * m_{t-1} + (x_t - mean_t -
    delta)`` with ``mean_t`` the running mean, and detects drift when ``m_t -
    min(m)`` exceeds ``threshold``; a decrease mirrors it. ``delta`` (the change
    tolerated) and ``threshold`` (lambda) are in the stream's units: a larger
    threshold means fewer false alarms and a longer delay. ``alpha`` < 1 forgets
    old deviations (1 is the classic test). ``mode`` is ``"up"``, ``"down"`` or
    ``"both"``. No value can trigger a detection before ``min_samples`` have been
    read. On drift the statistics restart.
    """

    _KIND: ClassVar[str] = "page_hinkley"
    _STATS: ClassVar[tuple[str, ...]] = (
        "n",
        "mean",
        "sum_up",
        "min_up",
        "sum_down",
        "max_down",
        "_drift",
    )

    def __init__(
        self,
        *,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1.0,
        min_samples: int = 30,
        mode: Literal["up", "down", "both"] = "both",
    ) -> None:
        if delta < 0 or threshold <= 0:
            raise DriftError("PageHinkley needs delta >= 0 and threshold > 0")
        if not 0 < alpha <= 1:
            raise DriftError("PageHinkley needs 0 < alpha <= 1")
        if mode not in ("up", "down", "both"):
            raise DriftError(f"PageHinkley mode must be 'up', 'down' or 'both', not {mode!r}")
        if min_samples < 1:
            raise DriftError("PageHinkley needs min_samples >= 1")
        self.delta = float(delta)
        self.threshold = float(threshold)
        self.alpha = float(alpha)
        self.min_samples = int(min_samples)
        self.mode: Literal["up", "down", "both"] = mode
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.sum_up = 0.0
        self.min_up = 0.0
        self.sum_down = 0.0
        self.max_down = 0.0
        self._drift = False

    @property
    def statistic(self) -> float:
        """The larger of the up and down test statistics (compare with ``threshold``)."""
        up = self.sum_up - self.min_up if self.mode != "down" else 0.0
        down = self.max_down - self.sum_down if self.mode != "up" else 0.0
        return max(up, down)

    def update(self, x: float) -> bool:
        value = _finite(x, "a PageHinkley value")
        if self._drift:
            self.reset()
        self.n += 1
        self.mean += (value - self.mean) / self.n
        self.sum_up = self.alpha * self.sum_up + (value - self.mean - self.delta)
        self.min_up = min(self.min_up, self.sum_up)
        self.sum_down = self.alpha * self.sum_down + (value - self.mean + self.delta)
        self.max_down = max(self.max_down, self.sum_down)
        if self.n >= self.min_samples and self.statistic > self.threshold:
            self._drift = True
        return self._drift

    def _params(self) -> dict[str, Any]:
        return {
            "delta": self.delta,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "min_samples": self.min_samples,
            "mode": self.mode,
        }


class ADWIN(_Detector):
    """ADaptive WINdowing (Bifet & Gavalda, 2007: ADWIN2) on a stream of values in [0, 1].

    The window holds the recent values in an exponential histogram: row ``i``
    keeps at most ``max_buckets`` buckets of ``2**i`` values each (count, sum and
    sum of squared deviations), merging the two oldest of a row into the next one
    when it overflows, so memory is ``O(max_buckets * log W)`` for a window of
    ``W`` values. Every ``clock`` values it tries each bucket boundary as a cut
    into an older part (``n0`` values, mean ``mu0``) and a newer one (``n1``,
    ``mu1``) and drops the older part while ``|mu0 - mu1| > eps``, with
    ``m = 1 / (1/n0 + 1/n1)``, ``d = ln(2 ln(W) / delta)`` and
    ``eps = sqrt(2 var_W d / m) + 2 d / (3 m)`` (the paper's variance-aware bound,
    with its practical ``delta / ln W`` correction). The ``2d/3m`` term assumes
    values in [0, 1] (errors, normalised scores): rescale wider streams first.

    Unlike DDM and Page-Hinkley, ADWIN keeps running after a detection, with the
    window shrunk to the values after the change; ``mean``/``variance`` describe it.
    """

    _KIND: ClassVar[str] = "adwin"

    def __init__(
        self,
        *,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window: int = 5,
        grace_period: int = 10,
    ) -> None:
        if not 0 < delta < 1:
            raise DriftError("ADWIN needs 0 < delta < 1")
        if clock < 1 or max_buckets < 2 or min_window < 1 or grace_period < 0:
            raise DriftError(
                "ADWIN needs clock >= 1, max_buckets >= 2, min_window >= 1, grace_period >= 0"
            )
        self.delta = float(delta)
        self.clock = int(clock)
        self.max_buckets = int(max_buckets)
        self.min_window = int(min_window)
        self.grace_period = int(grace_period)
        self.reset()

    def reset(self) -> None:
        # rows[i]: buckets of 2**i values, oldest first, each [sum, m2]
        self._rows: list[list[list[float]]] = [[]]
        self.width = 0
        self.total = 0.0
        self._m2 = 0.0
        self.n_seen = 0
        self.n_detections = 0
        self._drift = False

    @property
    def mean(self) -> float:
        """The mean of the values in the current window (0 when it is empty)."""
        return self.total / self.width if self.width else 0.0

    @property
    def variance(self) -> float:
        """The population variance of the values in the current window."""
        return self._m2 / self.width if self.width else 0.0

    @property
    def n_buckets(self) -> int:
        """Buckets held: at most ``max_buckets * (log2(width) + 1)``."""
        return sum(len(row) for row in self._rows)

    def update(self, x: float) -> bool:
        value = _finite(x, "an ADWIN value")
        self.n_seen += 1
        self._insert(value)
        self._drift = False
        if self.n_seen % self.clock == 0 and self.width > self.grace_period:
            while self._cut_found():
                self._drop_oldest()
                self._drift = True
        if self._drift:
            self.n_detections += 1
        return self._drift

    def _insert(self, value: float) -> None:
        if self.width:
            old_mean = self.total / self.width
            self._m2 += (value - old_mean) * (value - (self.total + value) / (self.width + 1))
        self.width += 1
        self.total += value
        self._rows[0].append([value, 0.0])
        size = 1
        for i, row in enumerate(self._rows):
            if len(row) <= self.max_buckets:
                break
            (s1, v1), (s2, v2) = row[0], row[1]
            merged = [s1 + s2, v1 + v2 + (s1 - s2) ** 2 / (2 * size)]
            del row[:2]
            if i + 1 == len(self._rows):
                self._rows.append([])
            self._rows[i + 1].append(merged)
            size *= 2

    def _drop_oldest(self) -> None:
        last = len(self._rows) - 1
        bucket_sum, bucket_m2 = self._rows[last].pop(0)
        size = 1 << last
        rest = self.width - size
        if rest:
            rest_total = self.total - bucket_sum
            diff = bucket_sum / size - rest_total / rest
            self._m2 = max(0.0, self._m2 - bucket_m2 - size * rest * diff * diff / self.width)
        else:
            self._m2 = 0.0
        self.width = rest
        self.total -= bucket_sum
        while len(self._rows) > 1 and not self._rows[-1]:
            self._rows.pop()
        if self.width == 0:
            self.total = 0.0

    def _cut_found(self) -> bool:
        if self.width < 2 * self.min_window:
            return False
        d = math.log(2.0 * math.log(self.width) / self.delta)
        var = self._m2 / self.width
        n0, u0 = 0, 0.0
        # oldest buckets first: the highest row, then down to the newest
        for i in range(len(self._rows) - 1, -1, -1):
            size = 1 << i
            for bucket_sum, _ in self._rows[i]:
                n0 += size
                u0 += bucket_sum
                n1 = self.width - n0
                if n1 < self.min_window:
                    return False
                if n0 < self.min_window:
                    continue
                m = 1.0 / (1.0 / n0 + 1.0 / n1)
                eps = math.sqrt(2.0 * var * d / m) + 2.0 * d / (3.0 * m)
                if abs(u0 / n0 - (self.total - u0) / n1) > eps:
                    return True
        return False

    def _params(self) -> dict[str, Any]:
        return {
            "delta": self.delta,
            "clock": self.clock,
            "max_buckets": self.max_buckets,
            "min_window": self.min_window,
            "grace_period": self.grace_period,
        }

    def _stats(self) -> dict[str, Any]:
        return {
            "rows": [[list(b) for b in row] for row in self._rows],
            "width": self.width,
            "total": self.total,
            "m2": self._m2,
            "n_seen": self.n_seen,
            "n_detections": self.n_detections,
            "drift": self._drift,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        detector = cls._from_params(state)
        try:
            stats = state["stats"]
            rows = [[[float(s), float(v)] for s, v in row] for row in stats["rows"]]
            width = int(stats["width"])
            if not rows or width != sum(len(row) << i for i, row in enumerate(rows)):
                raise DriftError("the ADWIN state's buckets don't add up to its width")
            detector._rows = rows
            detector.width = width
            detector.total = float(stats["total"])
            detector._m2 = float(stats["m2"])
            detector.n_seen = int(stats["n_seen"])
            detector.n_detections = int(stats["n_detections"])
            detector._drift = bool(stats["drift"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DriftError(f"the ADWIN state is incomplete or malformed: {exc!r}") from exc
        return detector
