"""Stream change detectors: planted changes, stationary streams, reference behaviour, state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pyflare.drift.streams import ADWIN, DDM, PageHinkley, detect_changes
from pyflare.errors import DriftError

SEEDS = range(20)


def _bernoulli(rng: np.random.Generator, p: float, n: int) -> np.ndarray:
    return (rng.random(n) < p).astype(float)


def _first_after(changes: list[int], at: int) -> int | None:
    after = [i for i in changes if i >= at]
    return after[0] - at if after else None


# -- DDM ---------------------------------------------------------------------------


def _ddm_reference(x: np.ndarray, min_samples: int = 30) -> tuple[list[int], list[int]]:
    """DDM as written in MOA's DDM.java, restarting after each drift."""
    drifts, warnings = [], []
    n = errors = 0
    p_min = s_min = math.inf
    for i, v in enumerate(x):
        n += 1
        errors += int(v)
        if n < min_samples:
            continue
        p = errors / n
        s = math.sqrt(p * (1 - p) / n)
        if p + s < p_min + s_min:
            p_min, s_min = p, s
        if p + s > p_min + 3 * s_min:
            drifts.append(i)
            n = errors = 0
            p_min = s_min = math.inf
        elif p + s > p_min + 2 * s_min:
            warnings.append(i)
    return drifts, warnings


def test_ddm_matches_the_published_algorithm() -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x = np.r_[_bernoulli(rng, 0.1, 1500), _bernoulli(rng, 0.35, 1500)]
        ddm = DDM()
        drifts, warnings = [], []
        for i, v in enumerate(x):
            if ddm.update(v):
                drifts.append(i)
            if ddm.in_warning:
                warnings.append(i)
        assert (drifts, warnings) == _ddm_reference(x)


def test_ddm_detects_a_planted_error_rate_rise_soon_after_warning() -> None:
    delays = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        x = np.r_[_bernoulli(rng, 0.1, 2000), _bernoulli(rng, 0.4, 1000)]
        ddm = DDM()
        warned_at = None
        found = None
        for i, v in enumerate(x):
            if ddm.update(v) and i >= 2000:
                found = i
                break
            if ddm.in_warning and i >= 2000 and warned_at is None:
                warned_at = i
        assert found is not None
        delays.append(found - 2000)
        # the warning zone comes first (or on the same step for an abrupt change)
        assert warned_at is None or warned_at <= found
    assert max(delays) <= 300
    assert float(np.median(delays)) <= 100


def test_ddm_false_alarm_rate_on_stationary_streams_is_bounded() -> None:
    # DDM is known to raise false alarms on long stationary streams (its
    # 3-sigma rule is applied at every step); measured ~0.2-0.3 over 2000 values.
    alarms = sum(
        bool(detect_changes(DDM(min_samples=100), _bernoulli(np.random.default_rng(s), 0.2, 2000)))
        for s in range(40)
    )
    assert alarms / 40 <= 0.35


def test_ddm_reads_only_error_indicators() -> None:
    ddm = DDM()
    ddm.update(True)
    ddm.update(0)
    for bad in (0.5, 2, math.nan, math.inf, "x"):
        with pytest.raises(DriftError):
            ddm.update(bad)  # type: ignore[arg-type]
    assert ddm.n == 2
    with pytest.raises(DriftError):
        DDM(warning_level=3, drift_level=2)


# -- Page-Hinkley --------------------------------------------------------------------


def _ph_reference(x: np.ndarray, delta: float, threshold: float, min_samples: int) -> int | None:
    """First detection of the two-sided Page-Hinkley test, vectorised from its definition."""
    mean = np.cumsum(x) / np.arange(1, len(x) + 1)
    up = np.cumsum(x - mean - delta)
    down = np.cumsum(x - mean + delta)
    stat = np.maximum(
        up - np.minimum.accumulate(np.minimum(up, 0)),
        np.maximum.accumulate(np.maximum(down, 0)) - down,
    )
    hits = np.flatnonzero(stat[min_samples - 1 :] > threshold)
    return int(hits[0]) + min_samples - 1 if len(hits) else None


@pytest.mark.parametrize("shift", [1.0, -1.0, 0.0])
def test_page_hinkley_matches_its_definition(shift: float) -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x = np.r_[rng.normal(0, 1, 1000), rng.normal(shift, 1, 500)]
        changes = detect_changes(PageHinkley(delta=0.1, threshold=30), x)
        expected = _ph_reference(x, 0.1, 30, 30)
        assert (changes[0] if changes else None) == expected


def test_page_hinkley_detects_planted_mean_shifts_both_ways() -> None:
    for direction in (1.0, -1.0):
        delays = []
        for seed in SEEDS:
            rng = np.random.default_rng(seed)
            x = np.r_[rng.normal(5, 1, 1000), rng.normal(5 + direction, 1, 500)]
            delay = _first_after(detect_changes(PageHinkley(delta=0.25, threshold=40), x), 1000)
            assert delay is not None
            delays.append(delay)
        assert max(delays) <= 120
    # one-sided: an "up" test ignores a fall
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 1, 1000), rng.normal(-2, 1, 500)]
    assert detect_changes(PageHinkley(delta=0.25, threshold=40, mode="up"), x) == []


def test_page_hinkley_stays_quiet_on_stationary_streams() -> None:
    for seed in SEEDS:
        x = np.random.default_rng(seed).normal(3, 1, 5000)
        assert detect_changes(PageHinkley(delta=0.25, threshold=40), x) == []


def test_page_hinkley_restarts_after_a_detection() -> None:
    ph = PageHinkley(delta=0.1, threshold=5, min_samples=5)
    changes = detect_changes(ph, [0.0] * 50 + [10.0])
    assert changes == [50]
    assert ph.drift_detected
    ph.update(10.0)
    assert ph.n == 1
    assert not ph.drift_detected


# -- ADWIN --------------------------------------------------------------------------


def test_adwin_window_is_a_suffix_of_the_stream() -> None:
    rng = np.random.default_rng(1)
    x = np.r_[_bernoulli(rng, 0.2, 3000), rng.random(3000), _bernoulli(rng, 0.7, 3000)]
    adwin = ADWIN()
    shrank = False
    for i, v in enumerate(x):
        adwin.update(v)
        shrank = shrank or adwin.width < i + 1
        if i % 250 == 0:
            window = x[i + 1 - adwin.width : i + 1]
            assert adwin.mean == pytest.approx(window.mean(), abs=1e-9)
            assert adwin.variance == pytest.approx(window.var(), abs=1e-9)
    assert shrank
    assert adwin.n_detections >= 1


def test_adwin_memory_is_logarithmic_in_the_window() -> None:
    adwin = ADWIN(max_buckets=5)
    for v in _bernoulli(np.random.default_rng(2), 0.3, 100_000):
        adwin.update(v)
    assert adwin.width == 100_000
    assert adwin.n_buckets <= 5 * (math.floor(math.log2(adwin.width)) + 1)


def test_adwin_detects_planted_changes_and_drops_the_old_data() -> None:
    delays = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        x = np.r_[_bernoulli(rng, 0.2, 2000), _bernoulli(rng, 0.5, 1000)]
        adwin = ADWIN()
        changes = detect_changes(adwin, x)
        assert changes and changes[0] >= 2000
        delays.append(changes[0] - 2000)
        # after the change, the window is (almost only) the new regime
        assert adwin.width <= 1000 + 300
        assert adwin.mean == pytest.approx(0.5, abs=0.08)
    assert max(delays) <= 250


def test_adwin_stays_quiet_on_stationary_streams() -> None:
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        assert detect_changes(ADWIN(), _bernoulli(rng, 0.3, 5000)) == []
        assert detect_changes(ADWIN(), rng.random(5000)) == []


def test_adwin_rejects_non_finite_values() -> None:
    adwin = ADWIN()
    for bad in (math.nan, -math.inf):
        with pytest.raises(DriftError):
            adwin.update(bad)
    assert adwin.width == 0
    with pytest.raises(DriftError):
        ADWIN(delta=0)


# -- state ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "data"),
    [
        (lambda: DDM(), lambda rng: np.r_[_bernoulli(rng, 0.1, 1500), _bernoulli(rng, 0.4, 1500)]),
        (
            lambda: PageHinkley(delta=0.1, threshold=20),
            lambda rng: np.r_[rng.normal(0, 1, 1500), rng.normal(1, 1, 1500)],
        ),
        (
            lambda: ADWIN(),
            lambda rng: np.r_[_bernoulli(rng, 0.2, 1500), _bernoulli(rng, 0.6, 1500)],
        ),
    ],
)
def test_state_round_trips_through_json_mid_stream(make, data) -> None:  # type: ignore[no-untyped-def]
    x = data(np.random.default_rng(3))
    whole = make()
    expected = detect_changes(whole, x)
    first = make()
    head = detect_changes(first, x[:1600])
    restored = type(first).from_state(json.loads(json.dumps(first.state())))
    tail = [i + 1600 for i in detect_changes(restored, x[1600:])]
    assert head + tail == expected
    assert restored.state() == whole.state()
    restored.reset()
    assert restored.state() == make().state()


def test_bad_states_raise_drift_error() -> None:
    good = ADWIN().state()
    with pytest.raises(DriftError, match="not 'ddm'"):
        DDM.from_state(good)
    with pytest.raises(DriftError, match="version"):
        ADWIN.from_state({**good, "version": 99})
    with pytest.raises(DriftError):
        ADWIN.from_state({**good, "stats": {"rows": [[[1.0, 0.0]]], "width": 5}})
    with pytest.raises(DriftError):
        PageHinkley.from_state({"kind": "page_hinkley", "version": 1, "params": {"nope": 1}})
    with pytest.raises(DriftError):
        DDM.from_state([])  # type: ignore[arg-type]
