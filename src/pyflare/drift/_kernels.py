"""The kernel arithmetic behind MMD: projections, bandwidth, RBF kernels, batched permutations.

Private to :mod:`pyflare.drift.embedding`, which validates inputs and builds results.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from pyflare.errors import DriftError, InvalidArgumentError

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Projection = int | str | None

BANDWIDTH_ROWS: Final = 1000  # pooled rows behind the median heuristic
PCA_ROWS: Final = 10_000  # pooled rows a PCA projection is fitted on
# exp() below this underflows into float32 subnormals, which make BLAS crawl;
# exp(-80) ≈ 2e-35 is a normal float32 and as good as zero next to 1.
_MIN_EXPONENT: Final = -80.0


def check_threshold(value: float, name: str) -> None:
    if not (isinstance(value, float | int) and math.isfinite(value) and value > 0.0):
        raise InvalidArgumentError(f"{name} must be a positive number, got {value!r}")


# -- projection ------------------------------------------------------------------------------


def parse_projection(projection: Projection, dims: int) -> tuple[str, int] | None:
    if projection is None:
        return None
    kind, target = "random", projection
    if isinstance(projection, str):
        prefix, _, number = projection.partition(":")
        if prefix != "pca" or not number.isdigit():
            raise InvalidArgumentError(
                f"projection must be an int (random projection) or 'pca:N', got {projection!r}"
            )
        kind, target = "pca", int(number)
    if isinstance(target, bool) or not isinstance(target, int) or not 1 <= target < dims:
        raise InvalidArgumentError(
            f"projection must reduce the {dims} dimensions to between 1 and {dims - 1}, "
            f"got {projection!r}"
        )
    return kind, target


def project(
    pooled: npt.NDArray[Any], projection: Projection, seed: int
) -> tuple[npt.NDArray[Any], dict[str, Any]]:
    rows = pooled_sample(len(pooled), 0, PCA_ROWS, np.random.default_rng([seed, 4]))
    transform, details = fit_projection(pooled, pooled[:0], rows, projection, seed)
    return transform(pooled), details


def fit_projection(
    ref: npt.NDArray[Any],
    cur: npt.NDArray[Any],
    fit_rows: npt.NDArray[np.intp],
    projection: Projection,
    seed: int,
) -> tuple[Any, dict[str, Any]]:
    """A function mapping rows to float32 rows of the projected space, and its details."""
    dims = ref.shape[1]
    parsed = parse_projection(projection, dims)
    if parsed is None:

        def identity(rows: npt.NDArray[Any]) -> F32:
            return np.asarray(rows, dtype=np.float32)

        return identity, {}
    kind, target = parsed
    if kind == "random":
        rng = np.random.default_rng([seed, 5])
        matrix: F32 = (rng.standard_normal((dims, target)) / math.sqrt(target)).astype(np.float32)
        details: dict[str, Any] = {"projection": f"random:{target}", "input_dims": dims}
        center: F32 = np.zeros(dims, dtype=np.float32)
    else:
        sample = take_pooled(ref, cur, fit_rows).astype(np.float64)
        mean = sample.mean(axis=0)
        sample -= mean
        # The covariance is symmetric positive semi-definite: its SVD is its
        # eigendecomposition, with the variances already sorted.
        _, variances, vt = np.linalg.svd(sample.T @ sample, hermitian=True)
        matrix = np.ascontiguousarray(vt[:target].T).astype(np.float32)
        total = float(variances.sum())
        kept = float(variances[:target].sum() / total) if total > 0.0 else 1.0
        details = {"projection": f"pca:{target}", "input_dims": dims, "explained_variance": kept}
        center = mean.astype(np.float32)

    def project(rows: npt.NDArray[Any]) -> F32:
        return ((np.asarray(rows, dtype=np.float32) - center) @ matrix).astype(
            np.float32, copy=False
        )

    return project, details


def pooled_sample(m: int, k: int, size: int, rng: np.random.Generator) -> npt.NDArray[np.intp]:
    """Indices into the pooled rows ``[ref; cur]``: all of them, or ``size`` drawn at random."""
    n = m + k
    if n <= size:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


def take_pooled(
    ref: npt.NDArray[Any], cur: npt.NDArray[Any], rows: npt.NDArray[np.intp]
) -> npt.NDArray[Any]:
    m = len(ref)
    return np.concatenate([ref[rows[rows < m]], cur[rows[rows >= m] - m]])


# -- kernel ----------------------------------------------------------------------------------


def median_bandwidth(
    points: F32, bandwidth: float | None, rng: np.random.Generator | None
) -> tuple[float, float]:
    """``(sigma, median pairwise distance)`` over (a sample of) ``points``."""
    if bandwidth is not None:
        check_threshold(bandwidth, "bandwidth")
    if rng is not None and len(points) > BANDWIDTH_ROWS:
        points = points[np.sort(rng.choice(len(points), size=BANDWIDTH_ROWS, replace=False))]
    points = points - points.mean(axis=0)  # float32 distances lose less
    n = len(points)
    # The median over all ordered pairs i != j is the median over unordered ones
    # (each distance appears twice); the diagonal, set below every distance, is
    # skipped by position instead of copied out.
    squared = squared_distances(points).ravel()
    squared[:: n + 1] = -1.0
    middle = n + n * (n - 1) // 2
    low, high = np.partition(squared, (middle - 1, middle))[middle - 1 : middle + 1]
    median = (math.sqrt(max(float(low), 0.0)) + math.sqrt(max(float(high), 0.0))) / 2.0
    if median == 0.0:
        # More than half the pairs are duplicates: fall back to the typical
        # non-zero distance so the kernel still separates the rows that differ.
        positive = squared[squared > 0.0]
        if positive.size == 0:
            raise DriftError(
                "every embedding (reference and current) is the same vector; there is no "
                "spread to measure a distribution shift against"
            )
        median = float(np.median(np.sqrt(positive.astype(np.float64))))
    sigma = float(bandwidth) if bandwidth is not None else median
    return sigma, median


def squared_distances(points: F32) -> F32:
    """``‖pᵢ - pⱼ‖²`` for all pairs, float32, clipped at 0 (cancellation)."""
    sq = np.einsum("ij,ij->i", points, points)
    gram = points @ points.T  # numpy hands A @ A.T to BLAS syrk
    gram *= -2.0
    gram += sq[:, None]
    gram += sq[None, :]
    np.maximum(gram, 0.0, out=gram)
    return gram


def rbf_kernel_matrix(points: F32, sigma: float) -> F32:
    # The exponent -d²/(2sigma²) built in place, in as few passes over n² as possible.
    scale = -1.0 / (2.0 * sigma * sigma)
    sq = np.einsum("ij,ij->i", points, points) * np.float32(scale)
    kernel = points @ points.T  # numpy hands A @ A.T to BLAS syrk
    kernel *= np.float32(-2.0 * scale)
    kernel += sq[:, None]
    kernel += sq[None, :]
    np.clip(kernel, np.float32(_MIN_EXPONENT), np.float32(0.0), out=kernel)
    np.exp(kernel, out=kernel)
    return kernel


def rbf_rows(a: F32, b: F32, scale: float) -> F64:
    diff = a - b
    exponent = np.einsum("ij,ij->i", diff, diff).astype(np.float64) * scale
    kernel: F64 = np.exp(np.maximum(exponent, _MIN_EXPONENT))
    return kernel


# -- permutation test ------------------------------------------------------------------------


def mmd2(s_xx: F64 | float, s_yy: F64 | float, s_xy: F64 | float, m: int, k: int) -> Any:
    """Unbiased MMD² from the sums of off-diagonal kernel entries within and across samples."""
    return s_xx / (m * (m - 1)) + s_yy / (k * (k - 1)) - 2.0 * s_xy / (m * k)


def random_labels(rng: np.random.Generator, size: int, n: int, m: int) -> F32:
    """``size`` rows of ``n`` 0/1 labels, each with exactly ``m`` ones at random places."""
    keys = rng.random((size, n), dtype=np.float32)
    first = np.argpartition(keys, m - 1, axis=1)[:, :m]
    labels = np.zeros((size, n), dtype=np.float32)
    np.put_along_axis(labels, first, np.float32(1.0), axis=1)
    return labels


def mmd2_batch(kernel: F32, row_sums: F64, total: float, labels: F32, m: int) -> F64:
    """Unbiased MMD² for each row of 0/1 ``labels`` (1 = reference), all in one product.

    With ``a`` the labels and ``K`` the kernel with a zero diagonal:
    ``S_xx = aᵀKa``, ``S_xy = aᵀK1 - S_xx`` and ``S_yy = 1ᵀK1 - 2aᵀK1 + S_xx``,
    so one ``(P x n)·(n x n)`` product gives every permutation's statistic.
    """
    k = len(kernel) - m
    s_xx = np.einsum("ij,ij->i", labels @ kernel, labels, dtype=np.float64)
    a_sums = labels.astype(np.float64) @ row_sums
    s_xy = a_sums - s_xx
    s_yy = total - 2.0 * a_sums + s_xx
    result: F64 = mmd2(s_xx, s_yy, s_xy, m, k)
    return result
