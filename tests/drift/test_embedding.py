"""Embedding drift: MMD against a naive reference, calibration without drift, planted shifts, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist

from pyflare.drift import _kernels, embedding
from pyflare.drift.embedding import centroid_cosine, compare_embeddings, mmd, mmd_linear
from pyflare.drift.result import DriftType
from pyflare.errors import DriftError, InvalidArgumentError


def naive_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Unbiased MMD² straight from the definition, in float64."""

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-cdist(a, b, "sqeuclidean") / (2 * sigma**2))

    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )


def gaussian(seed: int, rows: int, dims: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, scale, size=(rows, dims))


# -- agreement with the definition --------------------------------------------------------------


@pytest.mark.parametrize(("m", "n", "dims"), [(30, 40, 5), (12, 7, 3), (50, 50, 16)])
def test_mmd2_matches_the_definition(m: int, n: int, dims: int) -> None:
    x, y = gaussian(1, m, dims), gaussian(2, n, dims, shift=0.3)
    sigma = float(np.median(pdist(np.concatenate([x, y]))))

    result = mmd(x, y, permutations=20)

    assert result.details["bandwidth"] == pytest.approx(sigma, rel=1e-5)
    assert result.statistic == pytest.approx(naive_mmd2(x, y, sigma), rel=1e-4, abs=1e-6)
    given = mmd(x, y, permutations=20, bandwidth=0.7)
    assert given.statistic == pytest.approx(naive_mmd2(x, y, 0.7), rel=1e-4, abs=1e-6)


def test_every_permutation_statistic_matches_the_definition() -> None:
    x, y = gaussian(3, 20, 4), gaussian(4, 25, 4, scale=1.3)
    pooled = np.concatenate([x, y])
    centred = (pooled - pooled.mean(axis=0)).astype(np.float32)
    sigma = 2.0
    kernel = _kernels.rbf_kernel_matrix(centred, sigma)
    kernel -= np.float32(0.4)  # any constant: MMD² doesn't see it
    np.fill_diagonal(kernel, 0.0)
    labels = _kernels.random_labels(np.random.default_rng(0), 7, len(pooled), len(x))
    assert (labels.sum(axis=1) == len(x)).all()

    batch = _kernels.mmd2_batch(
        kernel,
        kernel.sum(axis=1, dtype=np.float64),
        float(kernel.sum(dtype=np.float64)),
        labels,
        20,
    )

    for row, statistic in zip(labels, batch, strict=True):
        ref, cur = pooled[row == 1], pooled[row == 0]
        assert statistic == pytest.approx(naive_mmd2(ref, cur, sigma), rel=1e-4, abs=1e-6)


def test_p_value_counts_the_permutations_at_least_as_extreme() -> None:
    x, y = gaussian(5, 40, 6), gaussian(6, 40, 6)
    result = mmd(x, y, permutations=99, seed=3)
    exceed = result.details["exceedances"]
    assert result.p_value == (1 + exceed) / 100
    assert result.score == pytest.approx(embedding.p_value_score(result.p_value, 0.05))
    assert mmd(x, y, permutations=99, seed=3) == result  # seeded: same answer every run
    strong = mmd(x, gaussian(7, 40, 6, shift=3.0), permutations=99)
    assert strong.p_value == 1 / 100  # never 0
    assert strong.is_drifted and strong.score > 0.5


def test_duplicated_data_gives_ties_not_drift() -> None:
    x = np.repeat(gaussian(8, 3, 4), 10, axis=0)  # 30 rows, 3 distinct vectors
    result = mmd(x, x.copy(), permutations=50)
    assert not result.is_drifted


# -- no drift: calibrated false alarms ----------------------------------------------------------


def test_mmd_false_alarm_rate_without_drift() -> None:
    trials = 200
    p_values = np.array(
        [
            mmd(gaussian(2 * i, 30, 8), gaussian(2 * i + 1, 30, 8), permutations=99, seed=i).p_value
            for i in range(trials)
        ]
    )
    assert np.mean(p_values < 0.05) <= 0.07
    # Roughly uniform: each quarter of [0, 1] holds about a quarter of them.
    quarters = np.histogram(p_values, bins=4, range=(0, 1))[0] / trials
    assert np.all(np.abs(quarters - 0.25) < 0.08), quarters


def test_mmd_linear_false_alarm_rate_without_drift() -> None:
    trials = 200
    p_values = np.array(
        [
            mmd_linear(gaussian(2 * i, 400, 8), gaussian(2 * i + 1, 400, 8), seed=i).p_value
            for i in range(trials)
        ]
    )
    assert np.mean(p_values < 0.05) <= 0.07
    quarters = np.histogram(p_values, bins=4, range=(0, 1))[0] / trials
    assert np.all(np.abs(quarters - 0.25) < 0.08), quarters


def test_centroid_cosine_stays_small_without_drift() -> None:
    x, y = gaussian(9, 500, 32, shift=1.0), gaussian(10, 500, 32, shift=1.0)
    result = centroid_cosine(x, y)
    assert result.statistic < 0.01
    assert not result.is_drifted
    assert result.p_value is None


# -- planted shifts -----------------------------------------------------------------------------


@pytest.mark.parametrize("projection", [None, 8, "pca:8"])
def test_mmd_detects_a_mean_shift(projection: int | str | None) -> None:
    x, y = gaussian(11, 200, 32), gaussian(12, 200, 32, shift=0.15)
    assert not mmd(x, gaussian(13, 200, 32), projection=projection).is_drifted
    result = mmd(x, y, projection=projection)
    assert result.is_drifted, result
    if projection is not None:
        assert result.details["dims"] == 8 and result.details["input_dims"] == 32


def test_mmd_detects_a_covariance_change_the_centroid_misses() -> None:
    x = gaussian(14, 200, 16, shift=1.0)
    y = 1.0 + (gaussian(15, 200, 16) * 1.5)  # same mean, wider spread
    assert mmd(x, y).is_drifted
    assert mmd_linear(
        gaussian(16, 2000, 16, shift=1.0), 1.0 + gaussian(17, 2000, 16) * 1.5
    ).is_drifted
    assert not centroid_cosine(x, y).is_drifted


def test_mmd_detects_a_rotation_of_one_direction() -> None:
    # Correlation between two coordinates appears; every marginal stays N(0, 1).
    x = gaussian(18, 300, 4)
    z = gaussian(19, 300, 4)
    y = z.copy()
    y[:, 1] = 0.9 * z[:, 0] + np.sqrt(1 - 0.81) * z[:, 1]
    assert mmd(x, y).is_drifted


def test_mmd_linear_detects_a_small_shift_at_large_n() -> None:
    x, y = gaussian(20, 20_000, 16), gaussian(21, 20_000, 16, shift=0.1)
    result = mmd_linear(x, y)
    assert result.is_drifted, result
    assert result.details["pairs"] == 10_000
    assert not mmd_linear(x, gaussian(22, 20_000, 16)).is_drifted


def test_centroid_cosine_sees_a_turned_centre() -> None:
    x = gaussian(23, 300, 8, scale=0.1) + np.eye(8)[0]
    y = gaussian(24, 300, 8, scale=0.1) + np.eye(8)[1]  # centre turned 90°
    result = centroid_cosine(x, y)
    assert result.statistic == pytest.approx(1.0, abs=0.05)
    assert result.is_drifted and result.score > 0.5


# -- compare_embeddings -------------------------------------------------------------------------


def test_compare_embeddings_runs_the_permutation_test_on_small_samples() -> None:
    x, y = gaussian(25, 100, 8, shift=1.0), gaussian(26, 100, 8, shift=1.4)
    report = compare_embeddings(x, y)
    assert report.drift_type is DriftType.EMBEDDING
    assert list(report.results) == ["mmd"]
    result = report.results["mmd"]
    assert report.is_drifted and result.is_drifted
    assert report.score == result.score
    assert result.details["centroid_cosine_distance"] == pytest.approx(
        centroid_cosine(x, y).statistic
    )


def test_compare_embeddings_goes_linear_above_the_auto_limit() -> None:
    rows = embedding.AUTO_PERMUTATION_MAX_ROWS // 2 + 1
    x, y = gaussian(27, rows, 4), gaussian(28, rows, 4)
    report = compare_embeddings(x, y)
    assert list(report.results) == ["mmd_linear"]
    assert not report.is_drifted


def test_compare_embeddings_centroid_only_and_zero_centres() -> None:
    x, y = gaussian(29, 50, 4, shift=1.0), gaussian(30, 50, 4, shift=1.0)
    assert list(compare_embeddings(x, y, method="centroid_cosine").results) == ["centroid_cosine"]
    centred = np.concatenate([np.eye(4), -np.eye(4)])  # mean vector exactly zero
    report = compare_embeddings(centred, centred, method="mmd", permutations=10)
    assert report.results["mmd"].details["centroid_cosine_distance"] is None
    with pytest.raises(DriftError, match="zero vector"):
        compare_embeddings(centred, centred, method="centroid_cosine")
    with pytest.raises(InvalidArgumentError, match="method"):
        compare_embeddings(x, y, method="cosine")  # type: ignore[arg-type]


# -- bad input ----------------------------------------------------------------------------------

GOOD = np.ones((30, 4)) + np.arange(4)


@pytest.mark.parametrize("test", [mmd, mmd_linear, centroid_cosine, compare_embeddings])
@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        (GOOD, np.ones((30, 5)), "4 dimensions and current ones 5"),
        (np.where(np.eye(30, 4) == 1, np.nan, GOOD), GOOD, "NaN or infinite values in 4 of 30"),
        (GOOD, np.where(np.eye(30, 4) == 1, np.inf, GOOD), "NaN or infinite"),
        (np.arange(30.0), GOOD, "must be 2-D"),
        (GOOD, np.ones((0, 4)), "0 rows"),
        (GOOD, np.ones((30, 0)), "no dimensions"),
        (GOOD, [[1.0, 2.0], [3.0]], "rectangular"),
        (GOOD, np.array([["a", "b", "c", "d"]] * 30), "must be numbers"),
        (GOOD * 1e20, GOOD, "can't be compared in float32"),
    ],
)
def test_bad_input_is_a_drift_error(test, reference, current, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DriftError, match=message):
        test(reference, current)


def test_too_few_rows() -> None:
    with pytest.raises(DriftError, match="1 rows; this test needs at least 2"):
        mmd(GOOD, GOOD[:1])
    with pytest.raises(DriftError, match="19 rows; this test needs at least 20"):
        mmd_linear(GOOD[:19], GOOD)


def test_identical_vectors_everywhere_is_a_drift_error() -> None:
    with pytest.raises(DriftError, match="same vector"):
        mmd(np.ones((10, 3)), np.ones((12, 3)))
    with pytest.raises(DriftError, match="same vector"):
        mmd_linear(np.ones((30, 3)), np.ones((30, 3)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"permutations": 0}, "permutations"),
        ({"alpha": 1.5}, "alpha"),
        ({"bandwidth": 0.0}, "bandwidth"),
        ({"seed": -1}, "seed"),
        ({"projection": 4}, "between 1 and 3"),
        ({"projection": "pca:0"}, "between 1 and 3"),
        ({"projection": "svd:2"}, "'pca:N'"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        mmd(GOOD, GOOD, **kwargs)  # type: ignore[arg-type]


def test_mmd_refuses_a_kernel_matrix_too_large() -> None:
    big = np.zeros((embedding.MMD_MAX_ROWS, 2))
    with pytest.raises(InvalidArgumentError, match="mmd_linear"):
        mmd(big, big[:1000])
