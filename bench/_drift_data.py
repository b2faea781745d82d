"""The data ``bench/drift.py`` compares, generated from fixed seeds (numpy only).

Written once to ``.npz`` files that both sides load: PyFlare in the bench's own
process, Evidently in its worker (another virtual environment, see
``_drift_evidently.py``). Every drift is planted: ``PRESET_EXPECTED`` says which
columns of the preset table drift, and each planted change sits far from the
decision thresholds, so two correct tools can't disagree by a rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]

# column -> planted drift (True) or the same distribution on both sides (False).
PRESET_EXPECTED: dict[str, bool] = {
    **{name: False for name in NUMERIC[:14]},
    "num_14": True,  # mean +0.5 sd
    "num_15": True,  # sd x2
    "num_16": True,  # mean +0.3 sd
    "num_17": True,  # lognormal, heavier tail (sigma 0.5 -> 0.9)
    "num_18": True,  # 20% of rows moved by +2 sd
    "num_19": False,  # mean +0.02 sd: real but far below a 0.1-sd distance threshold
    "cat_0": False,
    "cat_1": False,  # 50 categories, Zipf-like
    "cat_2": True,  # proportions reversed
    "cat_3": True,  # a category unseen in the reference takes 30% of the rows
    "cat_4": False,  # two categories
}


def _numeric_column(rng: np.random.Generator, index: int, rows: int, current: bool) -> np.ndarray:
    kind = index % 4
    if index == 17:
        return rng.lognormal(0.0, 0.9 if current else 0.5, rows)
    if kind == 0:
        values = rng.normal(10.0 * index, 1.0 + index / 10, rows)
    elif kind == 1:
        values = rng.exponential(2.0, rows)
    elif kind == 2:
        values = rng.uniform(-1.0, 1.0, rows)
    else:
        values = rng.standard_t(5, rows)
    if not current:
        return values
    sd = float(np.std(values))
    mean = float(np.mean(values))
    if index == 14:
        return values + 0.5 * sd
    if index == 15:
        return mean + (values - mean) * 2.0
    if index == 16:
        return values + 0.3 * sd
    if index == 18:
        moved = rng.random(rows) < 0.2
        return np.where(moved, values + 2.0 * sd, values)
    if index == 19:
        return values + 0.02 * sd
    return values


def _categorical_column(
    rng: np.random.Generator, index: int, rows: int, current: bool
) -> np.ndarray:
    if index == 1:
        labels = np.array([f"item-{i:02d}" for i in range(50)])
        weights = 1.0 / np.arange(1, 51)
        return rng.choice(labels, rows, p=weights / weights.sum())
    if index == 4:
        return rng.choice(np.array(["yes", "no"]), rows, p=[0.7, 0.3])
    labels = np.array(["red", "green", "blue", "amber"])
    weights = np.array([0.4, 0.3, 0.2, 0.1])
    if current and index == 2:
        weights = weights[::-1].copy()
    column = rng.choice(labels, rows, p=weights)
    if current and index == 3:
        column = np.where(rng.random(rows) < 0.3, "violet", column)
    return column


def preset_tables(rows: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Reference and current tables: 20 numeric and 5 categorical columns of ``rows`` rows."""
    tables = []
    for side, current in enumerate((False, True)):
        rng = np.random.default_rng([seed, side])
        table: dict[str, np.ndarray] = {}
        for index, name in enumerate(NUMERIC):
            table[name] = _numeric_column(rng, index, rows, current)
        for index, name in enumerate(CATEGORICAL):
            table[name] = _categorical_column(rng, index, rows, current)
        tables.append(table)
    return tables[0], tables[1]


def column_pair(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One numeric column on each side: normal, the current one shifted by 0.01 sd.

    At a million rows KS finds that shift (p far below 0.05) and PSI doesn't (PSI
    around 1e-4 against a threshold of 0.1): each tool should say the same per method.
    """
    rng = np.random.default_rng([seed, 2])
    return rng.normal(0.0, 1.0, rows), rng.normal(0.01, 1.0, rows)


def embeddings(rows: int, dim: int, seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length float32 embeddings with a low-rank structure, like a text encoder's.

    The current sample's latent mean moves by ``shift`` along 4 of 32 latent axes.
    """
    rng = np.random.default_rng([seed, 3])
    basis = rng.normal(0.0, 1.0, (32, dim))
    sides = []
    for current in (False, True):
        latent = rng.normal(0.0, 1.0, (rows, 32))
        if current:
            latent[:, :4] += shift
        values = latent @ basis + rng.normal(0.0, 2.0, (rows, dim))
        values /= np.linalg.norm(values, axis=1, keepdims=True)
        sides.append(values.astype(np.float32))
    return sides[0], sides[1]


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    np.savez(path, **arrays)


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}
