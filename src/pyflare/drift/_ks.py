"""The two-sample Kolmogorov-Smirnov numbers, equal to ``scipy.stats.ks_2samp``'s but faster.

Two costs dominate ``ks_2samp`` on large samples: evaluating both empirical CDFs
at all 2n points (a ``searchsorted`` of 2n unsorted keys per sample), and, when
the samples differ, the exact Smirnov sum behind ``kstwo.sf`` (a double-double
loop over up to a million terms). Here each sample's CDF is read at the other
sample's sorted values only, in chunks on a few threads (numpy releases the GIL),
and the Smirnov sum is evaluated as one vectorised log-space sum.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_PARALLEL_MIN = 200_000  # below this many values in all, threads cost more than they save
_MAX_THREADS = 8

# Where scipy's kolmogn evaluates the two-sided SF as 2 * smirnov(n, x) (its
# exact lower sum): n > 140, x < 0.5, 2.2 <= n x^2 < 370; smirnov itself switches
# to a rough approximation above n = 1e6. Above n x^2 = 345 the p-value is below
# 1e-300, where double precision thins out: leave those to scipy.
_SMIRNOV_MIN_N = 141
_SMIRNOV_MAX_N = 1_000_000
_SMIRNOV_NXX = (2.2, 345.0)
_STIRLING = (1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188)


def sorted_pair(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Both samples sorted (on two threads when large)."""
    if x.size + y.size < _PARALLEL_MIN or _threads() < 2:
        return np.sort(x), np.sort(y)
    with ThreadPoolExecutor(max_workers=2) as pool:
        sorted_x = pool.submit(np.sort, x)
        sorted_y = np.sort(y)
        return sorted_x.result(), sorted_y


def statistic(a: FloatArray, b: FloatArray) -> tuple[float, float]:
    """D = max |F_a - F_b| of sorted samples, as ``ks_2samp`` computes it, and where it occurs.

    F_a - F_b only rises at values of ``a`` and only falls at values of ``b``, so
    its maximum is at some ``a[i]`` and its minimum at some ``b[j]``. At ``a[i]``,
    ``(i + 1) / n1`` is F_a for the last of equal values and less for the others,
    which only lowers candidates that are not the maximum; likewise for ``b``.
    Each gap is computed as ``ks_2samp`` does (``k1 / n1 - k2 / n2``), so the
    float is the same.
    """
    threads = _threads() if a.size + b.size >= _PARALLEL_MIN else 1
    if threads < 2:
        (max_s, i), (min_s, j) = _largest_gap(a, b, 0, a.size), _largest_gap(b, a, 0, b.size)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            above = [pool.submit(_largest_gap, a, b, *c) for c in _chunks(a.size, threads)]
            below = [pool.submit(_largest_gap, b, a, *c) for c in _chunks(b.size, threads)]
            max_s, i = _best(f.result() for f in above)
            min_s, j = _best(f.result() for f in below)
    min_s = min(max(min_s, 0.0), 1.0)
    if min_s > max_s:
        return min_s, float(b[j])
    return max_s, float(a[i])


def _largest_gap(x: FloatArray, y: FloatArray, start: int, stop: int) -> tuple[float, int]:
    """The largest F_x - F_y over ``x[start:stop]`` (x, y sorted), and its index."""
    below = np.searchsorted(y, x[start:stop], side="right")
    gaps = np.arange(start + 1, stop + 1) / x.size - below / y.size
    k = int(np.argmax(gaps))
    return float(gaps[k]), start + k


def _best(candidates: Any) -> tuple[float, int]:
    # max() keeps the first of equal gaps: the lowest index, as one argmax over all would.
    return max(candidates, key=lambda c: c[0])  # type: ignore[no-any-return]


def _chunks(n: int, parts: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, n, parts + 1).astype(int)
    return [(int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds) if hi > lo]


def _threads() -> int:
    return max(1, min(_MAX_THREADS, os.cpu_count() or 1))


def exact_p_value(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> tuple[float, float] | None:
    """(D on the lattice of ``1 / lcm(n1, n2)``, exact p-value) as ``ks_2samp`` computes them.

    Through scipy's public ``ks_2samp(method="exact")`` (only used for small
    samples, where its own pass over the data costs little). None when the
    exact computation fails: scipy then falls back to the asymptotic
    distribution with a warning, and so does the caller, without the warning.
    """
    from scipy.stats import ks_2samp

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            result = ks_2samp(a, b, method="exact")
        except RuntimeWarning:
            return None
    return float(result.statistic), float(result.pvalue)


def asymptotic_p_value(n1: int, n2: int, d: float) -> float:
    """``kstwo.sf(d, round(n1 n2 / (n1 + n2)))``, the p-value ``ks_2samp`` gives in asymp mode."""
    m, n = sorted((float(n1), float(n2)), reverse=True)
    effective_n = float(np.round(m * n / (m + n)))
    if (
        _SMIRNOV_MIN_N <= effective_n <= _SMIRNOV_MAX_N
        and d < 0.5
        and _SMIRNOV_NXX[0] <= effective_n * d * d < _SMIRNOV_NXX[1]
    ):
        return min(max(2.0 * _smirnov_sf(int(effective_n), d), 0.0), 1.0)
    from scipy.stats import kstwo

    return float(kstwo.sf(d, effective_n))


def _smirnov_sf(n: int, x: float) -> float:
    """P(D+_n >= x), Smirnov's exact sum, vectorised in log space (relative error ~1e-13).

    ``x * sum_j C(n, j) (1 - x - j/n)^(n - j) (x + j/n)^(j - 1)`` over
    ``0 <= j < n (1 - x)``. Written as the binomial pmf at its own mean
    (Loader's Stirling-error form, no large cancelling logs) times two
    ``log1p`` factors, each term's log is accurate to ~1e-13 absolute.
    """
    nx = n * x
    j = np.arange(1, math.floor(n * (1.0 - x)) + 1, dtype=np.float64)
    j = j[n - j > nx]
    rest = n - j
    log_pmf = (
        _stirling_error(np.array([float(n)]))[0]
        - _stirling_error(j)
        - _stirling_error(rest)
        + 0.5 * np.log(n / (2.0 * math.pi * j * rest))
    )
    log_terms = log_pmf + rest * np.log1p(-nx / rest) + j * np.log1p(nx / j) - np.log(x + j / n)
    log_terms = np.append(log_terms, n * math.log1p(-x) - math.log(x))  # the j = 0 term
    top = float(log_terms.max())
    return math.exp(math.log(x) + top + math.log(float(np.exp(log_terms - top).sum())))


def _stirling_error(k: FloatArray) -> FloatArray:
    """log(k!) - [(k + 1/2) log k - k + log(2 pi) / 2], for k >= 1."""
    from scipy.special import gammaln

    out = np.empty_like(k)
    small = k <= 15
    ks = k[small]
    out[small] = gammaln(ks + 1) - (ks + 0.5) * np.log(ks) + ks - 0.5 * math.log(2 * math.pi)
    kb = k[~small]
    k2 = kb * kb
    s0, s1, s2, s3, s4 = _STIRLING
    out[~small] = (s0 - (s1 - (s2 - (s3 - s4 / k2) / k2) / k2) / k2) / kb
    return out
