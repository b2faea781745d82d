"""Embedding drift: centroid cosine distance and kernel two-sample tests (MMD).

Every function takes two samples of vectors, ``reference`` and ``current``
(array-likes of shape ``(rows, dims)``, the same ``dims``), and returns a
:class:`~pyflare.drift.result.TestResult`.

- :func:`centroid_cosine`: cosine distance between the two mean vectors. Cheap,
  no p-value; sees a shift of the centre only.
- :func:`mmd`: maximum mean discrepancy with a Gaussian (RBF) kernel, unbiased
  MMD² and a permutation p-value. The pooled kernel matrix is built once in
  float32 and all permutations are scored by one batched matrix product, so 100
  permutations cost about as much as one more kernel matrix. Memory is
  ``4·(n_ref + n_cur)²`` bytes; use it up to a few thousand rows per side.
- :func:`mmd_linear`: Gretton's linear-time MMD with its asymptotic normal
  p-value, for large samples (memory and time linear in the rows).
- :func:`compare_embeddings`: picks one of the MMD tests by size (see there) and
  adds the centroid distance, as a :class:`~pyflare.drift.result.DriftReport`.

The kernel is ``k(x, y) = exp(-‖x - y‖² / (2·sigma²))``. By default ``sigma`` is the
median heuristic: the median Euclidean distance between pooled rows (reference
and current together), taken over at most 1000 pooled rows drawn with ``seed``.

``projection`` reduces the dimension first: an ``int`` ``k`` is a seeded
Gaussian random projection to ``k`` dimensions (distances kept up to a factor
close to 1, Johnson-Lindenstrauss); ``"pca:k"`` keeps the top ``k`` principal
components of the pooled rows (at most 10 000 of them, drawn with ``seed``).
Both are fitted without looking at which rows are reference and which current,
so the permutation test stays exact.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from pyflare.drift._kernels import (
    BANDWIDTH_ROWS,
    F32,
    PCA_ROWS,
    Projection,
    check_threshold,
    fit_projection,
    median_bandwidth,
    mmd2_batch,
    pooled_sample,
    project,
    random_labels,
    rbf_kernel_matrix,
    rbf_rows,
    take_pooled,
)
from pyflare.drift.result import (
    DriftReport,
    DriftType,
    TestResult,
    distance_score,
    p_value_score,
)
from pyflare.errors import DriftError, InvalidArgumentError

__all__ = ["centroid_cosine", "compare_embeddings", "mmd", "mmd_linear"]


#: Pooled rows up to which ``compare_embeddings(method="auto")`` runs the
#: permutation test (kernel matrix ≤ 400 MB); above, the linear-time test.
AUTO_PERMUTATION_MAX_ROWS: Final = 10_000
#: Pooled rows above which :func:`mmd` refuses (kernel matrix 1.6 GB).
MMD_MAX_ROWS: Final = 20_000

_PERMUTATION_BATCH: Final = 256  # permutations scored per matrix product
_LINEAR_CHUNK: Final = 16_384  # pairs per chunk in mmd_linear
_MIN_LINEAR_PAIRS: Final = 10
_TIE_TOLERANCE: Final = 1e-9
_MAX_MAGNITUDE: Final = 1e15  # squared and summed over dims, still finite in float32


def centroid_cosine(
    reference: npt.ArrayLike, current: npt.ArrayLike, *, threshold: float = 0.1
) -> TestResult:
    """Cosine distance ``1 - cos(mean(reference), mean(current))``, in ``[0, 2]``.

    Drifted when the distance exceeds ``threshold`` (default 0.1, the spec's
    EmbeddingDriftDetector default). No p-value; ``score`` is
    :func:`~pyflare.drift.result.distance_score` (0.5 at the threshold).
    A mean vector of zero length has no direction: :class:`DriftError`.
    """
    check_threshold(threshold, "threshold")
    ref, cur = _pair(reference, current, min_rows=1)
    mu_ref = ref.mean(axis=0, dtype=np.float64)
    mu_cur = cur.mean(axis=0, dtype=np.float64)
    norm_ref = float(np.linalg.norm(mu_ref))
    norm_cur = float(np.linalg.norm(mu_cur))
    for norm, name in ((norm_ref, "reference"), (norm_cur, "current")):
        if norm == 0.0 or not math.isfinite(norm):
            raise DriftError(
                f"the {name} embeddings average to a zero vector, which has no direction; "
                "centroid cosine distance is undefined (use mmd() instead)"
            )
    cosine = float(np.dot(mu_ref / norm_ref, mu_cur / norm_cur))
    distance = min(2.0, max(0.0, 1.0 - cosine))
    return TestResult(
        method="centroid_cosine",
        statistic=distance,
        p_value=None,
        threshold=threshold,
        is_drifted=distance > threshold,
        score=distance_score(distance, threshold),
        reference_size=len(ref),
        current_size=len(cur),
        details={"cosine_similarity": cosine, "dims": ref.shape[1]},
    )


def mmd(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    permutations: int = 100,
    alpha: float = 0.05,
    bandwidth: float | None = None,
    seed: int = 0,
    projection: Projection = None,
) -> TestResult:
    """MMD two-sample test, RBF kernel, with a permutation p-value.

    ``statistic`` is the unbiased estimate of MMD² (it can be slightly negative
    when there is no drift). The p-value is ``(1 + #{permuted MMD² ≥ observed}) /
    (1 + permutations)``, so never 0; drifted when ``p_value < alpha``; ``score``
    is :func:`~pyflare.drift.result.p_value_score`. ``bandwidth`` is ``sigma``
    (default: the median heuristic). Each side needs at least 2 rows; the two
    together at most ``MMD_MAX_ROWS`` (use :func:`mmd_linear` above). Results
    depend only on the data and ``seed``.
    """
    _check_alpha(alpha)
    _check_seed(seed)
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 1:
        raise InvalidArgumentError(f"permutations must be a positive integer, got {permutations!r}")
    ref, cur = _pair(reference, current, min_rows=2)
    m, k = len(ref), len(cur)
    n = m + k
    if n > MMD_MAX_ROWS:
        raise InvalidArgumentError(
            f"mmd() builds an {n}x{n} kernel matrix ({4 * n * n / 1e9:.1f} GB) for "
            f"{m} + {k} rows; the limit is {MMD_MAX_ROWS} rows in all. Subsample, or use "
            "mmd_linear() (linear time and memory)"
        )
    pooled, proj_details = project(np.concatenate([ref, cur]), projection, seed)
    pooled = pooled - pooled.mean(axis=0, dtype=np.float64)  # float32 distances lose less
    pooled32 = np.ascontiguousarray(pooled, dtype=np.float32)
    sigma, median = median_bandwidth(pooled32, bandwidth, np.random.default_rng([seed, 1]))

    kernel = rbf_kernel_matrix(pooled32, sigma)
    # MMD² weighs every off-diagonal entry with weights that sum to zero, so a
    # constant can come off them all: taking the kernel at the median distance
    # leaves entries near zero, where float32 keeps more relative precision.
    offset = np.float32(math.exp(-(median**2) / (2.0 * sigma**2)))
    kernel -= offset
    np.fill_diagonal(kernel, 0.0)

    rng = np.random.default_rng([seed, 2])
    row_sums = (kernel @ np.ones(n, dtype=np.float32)).astype(np.float64)
    total = float(row_sums.sum())
    null = np.empty(permutations + 1, dtype=np.float64)
    done = 0
    while done < permutations + 1:
        size = min(_PERMUTATION_BATCH, permutations + 1 - done)
        labels = random_labels(rng, size, n, m)
        if done == 0:
            labels[0, :m] = 1.0  # row 0: the observed split, scored the same way
            labels[0, m:] = 0.0
        null[done : done + size] = mmd2_batch(kernel, row_sums, total, labels, m)
        done += size
    observed, permuted = null[0], null[1:]
    # Exact ties come from degenerate data (repeated rows) and must count as
    # "at least as extreme" despite float32 rounding, which stays near 1e-10 on
    # these sums (kernel entries within [-1, 1]); real differences between
    # permutations are orders of magnitude larger.
    exceed = int(np.count_nonzero(permuted >= observed - _TIE_TOLERANCE))
    p_value = (1 + exceed) / (1 + permutations)
    details = {"permutations": permutations, "exceedances": exceed, **proj_details}
    return _p_value_result(
        "mmd", float(observed), p_value, alpha, (m, k), sigma, bandwidth, seed, pooled32, details
    )


def mmd_linear(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    bandwidth: float | None = None,
    seed: int = 0,
    projection: Projection = None,
) -> TestResult:
    """Linear-time MMD (Gretton et al. 2012, §6) with its asymptotic normal p-value.

    Rows are shuffled with ``seed`` and paired off: ``h_i = k(x, x') + k(y, y')
    - k(x, y') - k(x', y)`` over ``⌊min(n_ref, n_cur)/2⌋`` pairs (the larger side is
    subsampled to the smaller). ``statistic`` is the mean of ``h`` (an unbiased
    MMD² estimate), ``z = mean / (sd(h)/√pairs)`` and the p-value is the
    one-sided normal tail ``P(Z ≥ z)``; ``score`` as in :func:`mmd`. Needs at
    least 10 pairs (20 rows a side); the normal approximation wants hundreds, so
    prefer :func:`mmd` for small samples — it is also much more powerful.
    """
    _check_alpha(alpha)
    _check_seed(seed)
    ref, cur = _pair(reference, current, min_rows=2 * _MIN_LINEAR_PAIRS)
    m, k = len(ref), len(cur)
    pairs = min(m, k) // 2
    rng = np.random.default_rng([seed, 3])
    ref_rows = rng.permutation(m)[: 2 * pairs]
    cur_rows = rng.permutation(k)[: 2 * pairs]
    fit_rows = pooled_sample(m, k, PCA_ROWS, np.random.default_rng([seed, 4]))
    transform, proj_details = fit_projection(ref, cur, fit_rows, projection, seed)
    band_rows = pooled_sample(m, k, BANDWIDTH_ROWS, np.random.default_rng([seed, 1]))
    band_points = transform(take_pooled(ref, cur, band_rows))
    sigma, _ = median_bandwidth(band_points, bandwidth, None)

    scale = -1.0 / (2.0 * sigma * sigma)
    h = np.empty(pairs, dtype=np.float64)
    for start in range(0, pairs, _LINEAR_CHUNK):
        stop = min(pairs, start + _LINEAR_CHUNK)
        x1 = transform(ref[ref_rows[2 * start : 2 * stop : 2]])
        x2 = transform(ref[ref_rows[2 * start + 1 : 2 * stop : 2]])
        y1 = transform(cur[cur_rows[2 * start : 2 * stop : 2]])
        y2 = transform(cur[cur_rows[2 * start + 1 : 2 * stop : 2]])
        h[start:stop] = (
            rbf_rows(x1, x2, scale)
            + rbf_rows(y1, y2, scale)
            - rbf_rows(x1, y2, scale)
            - rbf_rows(x2, y1, scale)
        )
    statistic = float(h.mean())
    sd = float(h.std(ddof=1))
    if sd > 0.0:
        z = statistic / (sd / math.sqrt(pairs))
        p_value = 0.5 * math.erfc(z / math.sqrt(2.0))
    else:
        # Every pair gave the same h (e.g. all rows identical): no spread to test
        # against; a zero difference is no evidence, anything else is certain.
        z = 0.0 if statistic <= 0.0 else math.inf
        p_value = 1.0 if statistic <= 0.0 else 0.0
    details = {"pairs": pairs, "z": z, **proj_details}
    return _p_value_result(
        "mmd_linear",
        statistic,
        p_value,
        alpha,
        (m, k),
        sigma,
        bandwidth,
        seed,
        band_points,
        details,
    )


def compare_embeddings(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    method: Literal["auto", "mmd", "mmd_linear", "centroid_cosine"] = "auto",
    alpha: float = 0.05,
    permutations: int = 100,
    bandwidth: float | None = None,
    seed: int = 0,
    projection: Projection = None,
    centroid_threshold: float = 0.1,
) -> DriftReport:
    """Embedding drift between two samples of vectors, as a report.

    ``method="auto"`` runs :func:`mmd` (permutation test) when the two samples
    together have at most ``AUTO_PERMUTATION_MAX_ROWS`` (10 000) rows — its
    kernel matrix then takes at most 400 MB and a second or two — else
    :func:`mmd_linear`. The report holds the one result under its method name;
    for the MMD tests its details also carry the centroid cosine distance
    (``"centroid_cosine_distance"``, None when a mean vector is zero), as
    context that does not enter the decision.
    """
    ref, cur = _pair(reference, current, min_rows=1)
    if method == "auto":
        method = "mmd" if len(ref) + len(cur) <= AUTO_PERMUTATION_MAX_ROWS else "mmd_linear"
    if method == "centroid_cosine":
        result = centroid_cosine(ref, cur, threshold=centroid_threshold)
    elif method in ("mmd", "mmd_linear"):
        if method == "mmd":
            result = mmd(
                ref,
                cur,
                permutations=permutations,
                alpha=alpha,
                bandwidth=bandwidth,
                seed=seed,
                projection=projection,
            )
        else:
            result = mmd_linear(
                ref, cur, alpha=alpha, bandwidth=bandwidth, seed=seed, projection=projection
            )
        try:
            centroid: float | None = centroid_cosine(
                ref, cur, threshold=centroid_threshold
            ).statistic
        except DriftError:
            centroid = None
        result = replace(result, details={**result.details, "centroid_cosine_distance": centroid})
    else:
        raise InvalidArgumentError(
            f"method must be 'auto', 'mmd', 'mmd_linear' or 'centroid_cosine', got {method!r}"
        )
    return DriftReport.from_results(DriftType.EMBEDDING, {result.method: result})


def _p_value_result(
    method: str,
    statistic: float,
    p_value: float,
    alpha: float,
    sizes: tuple[int, int],
    sigma: float,
    bandwidth: float | None,
    seed: int,
    points: F32,
    details: dict[str, Any],
) -> TestResult:
    return TestResult(
        method=method,
        statistic=statistic,
        p_value=p_value,
        threshold=alpha,
        is_drifted=p_value < alpha,
        score=p_value_score(p_value, alpha),
        reference_size=sizes[0],
        current_size=sizes[1],
        details={
            "bandwidth": sigma,
            "bandwidth_rule": "given" if bandwidth is not None else "median_heuristic",
            "seed": seed,
            "dims": int(points.shape[1]),
            **details,
        },
    )


# -- input -----------------------------------------------------------------------------------


def _pair(
    reference: npt.ArrayLike, current: npt.ArrayLike, *, min_rows: int
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    ref = _matrix(reference, "reference", min_rows)
    cur = _matrix(current, "current", min_rows)
    if ref.shape[1] != cur.shape[1]:
        raise DriftError(
            f"reference embeddings have {ref.shape[1]} dimensions and current ones "
            f"{cur.shape[1]}; compare embeddings from the same model"
        )
    return ref, cur


def _matrix(data: npt.ArrayLike, name: str, min_rows: int) -> npt.NDArray[Any]:
    try:
        array = np.asarray(data)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise DriftError(
            f"{name} embeddings are not a rectangular array of numbers: {exc}"
        ) from exc
    if array.dtype.kind not in "biuf":
        raise DriftError(f"{name} embeddings must be numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise DriftError(
            f"{name} embeddings must be 2-D (rows, dims), got shape {array.shape}; "
            "a single vector is one row: use array.reshape(1, -1)"
        )
    rows, dims = array.shape
    if dims == 0:
        raise DriftError(f"{name} embeddings have no dimensions (shape {array.shape})")
    if rows < min_rows:
        raise DriftError(f"{name} embeddings have {rows} rows; this test needs at least {min_rows}")
    # Two reductions, no temporary: NaN propagates through both, and the bound
    # keeps squared distances summed over many dimensions finite in float32.
    peak = max(abs(float(array.max())), abs(float(array.min())))
    if not math.isfinite(peak):
        bad = int(np.count_nonzero(~np.isfinite(array).all(axis=1)))
        raise DriftError(
            f"{name} embeddings contain NaN or infinite values in {bad} of {rows} rows; "
            "drop or fix those rows first"
        )
    if peak > _MAX_MAGNITUDE:
        raise DriftError(
            f"{name} embeddings hold values up to {peak:.3g} in magnitude; values beyond "
            f"{_MAX_MAGNITUDE:g} can't be compared in float32: rescale them"
        )
    return array


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, float | int) and 0.0 < alpha < 1.0):
        raise InvalidArgumentError(f"alpha must be between 0 and 1, got {alpha!r}")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidArgumentError(f"seed must be a non-negative integer, got {seed!r}")
