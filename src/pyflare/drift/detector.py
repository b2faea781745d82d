"""Stateful drift detectors (the spec's DriftDetector).

A detector holds a reference (training data, an upload or a frozen window) and
compares windows of current data with it. The reference is a uniform reservoir
sample of at most ``reference_sample_size`` rows however much is given (Algorithm
R, so a reference can also be built from a stream with ``update_reference``),
which bounds both memory and the size of ``state()``.

``state()`` is the bytes of an ``.npz`` archive: a JSON header (format, version,
detector kind, config, the reservoir's counters and random state) and the
reference columns (numeric columns as float64 arrays, other columns inside the
header as JSON lists); nothing is pickled. ``load_state`` refuses bytes that are
not such a state, another version or another kind with :class:`DriftError`.

A window with fewer than ``min_sample_size`` rows is not compared: ``compute``
raises :class:`DriftError` saying so, and :class:`~pyflare.drift.windows.WindowedDrift`
reports the window as skipped with that reason. No window is ever given a made-up score.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Protocol, Self

import numpy as np
import numpy.typing as npt

from pyflare.drift.prediction import PredictionKind, compare_prediction_columns, prediction_columns
from pyflare.drift.result import DriftReport, DriftType
from pyflare.errors import DriftError

__all__ = [
    "DriftDetector",
    "EmbeddingDriftConfig",
    "EmbeddingDriftDetector",
    "FeatureDriftConfig",
    "FeatureDriftDetector",
    "PredictionDriftConfig",
    "PredictionDriftDetector",
]

STATE_FORMAT = "pyflare.drift.detector"
STATE_VERSION = 1

Columns = dict[str, npt.NDArray[Any]]


class DriftDetector(Protocol):
    """What every detector offers (the spec's DriftDetector)."""

    @property
    def drift_type(self) -> DriftType:
        """Which kind of drift the detector measures."""
        ...

    def set_reference(self, data: Any) -> None:
        """Replace the reference with (a sample of) ``data``."""
        ...

    def compute(self, window: Any) -> DriftReport:
        """Compare a window of current data with the reference."""
        ...

    def state(self) -> bytes:
        """The detector's config and reference, to give to ``load_state``."""
        ...

    def load_state(self, state: bytes) -> None:
        """Restore what ``state()`` wrote."""
        ...


@dataclass(frozen=True)
class FeatureDriftConfig:
    """How a :class:`FeatureDriftDetector` compares (the spec's FeatureDriftDetector::Config)."""

    test: str = "auto"
    """The method for :func:`~pyflare.drift.features.compare_features` (``"auto"``, ``"ks"``, ``"psi"``, ...)."""
    significance_level: float = 0.05
    min_sample_size: int = 100
    reference_sample_size: int = 10_000
    fdr: str | None = None
    """``"bh"`` for Benjamini-Hochberg over the features."""
    categorical: tuple[str, ...] | None = None
    """Columns to treat as categorical whatever their type (None: decide by type)."""
    seed: int = 0


@dataclass(frozen=True)
class EmbeddingDriftConfig:
    """How an :class:`EmbeddingDriftDetector` compares (the spec's EmbeddingDriftDetector::Config)."""

    metric: Literal["centroid_cosine", "mmd", "mmd_linear", "auto"] = "centroid_cosine"
    threshold: float = 0.1
    """The centroid cosine distance threshold."""
    significance_level: float = 0.05
    """For the MMD tests."""
    permutations: int = 100
    min_sample_size: int = 30
    reference_sample_size: int = 10_000
    seed: int = 0


@dataclass(frozen=True)
class PredictionDriftConfig:
    """How a :class:`PredictionDriftDetector` compares outputs."""

    kind: PredictionKind = "classification"
    test: str = "auto"
    significance_level: float = 0.05
    min_sample_size: int = 100
    reference_sample_size: int = 10_000
    fdr: str | None = None
    seed: int = 0


class _Reservoir:
    """A uniform sample (Algorithm R) of at most ``size`` rows of equal-length columns."""

    def __init__(self, size: int, seed: int) -> None:
        if size < 1:
            raise DriftError(f"reference_sample_size must be at least 1, got {size}")
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.columns: Columns = {}
        self.seen = 0

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def add(self, columns: Columns) -> None:
        n = _rows(columns)
        if self.columns and set(columns) != set(self.columns):
            raise DriftError(
                f"the rows have columns {sorted(columns)}, the reference {sorted(self.columns)}"
            )
        if not self.columns:
            self.columns = {k: v[:0].copy() for k, v in columns.items()}
        room = min(self.size - self.rows, n)
        if room > 0:
            self.columns = {
                k: np.concatenate([self.columns[k], columns[k][:room]]) for k in self.columns
            }
        if n > room:
            # row t (0-based over everything seen) replaces slot j ~ U[0, t] when j < size
            t = self.seen + np.arange(room, n)
            j = (self.rng.random(len(t)) * (t + 1)).astype(np.int64)
            keep = j < self.size
            for k, column in self.columns.items():
                column[j[keep]] = columns[k][room:][keep]
        self.seen += n

    def header(self) -> dict[str, Any]:
        return {"seen": self.seen, "size": self.size, "rng": self.rng.bit_generator.state}


def _rows(columns: Mapping[str, npt.NDArray[Any]]) -> int:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise DriftError(f"the columns have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


class _Detector:
    """The reference reservoir, the window-size rule and the state format, shared."""

    _KIND: ClassVar[str]
    _TYPE: ClassVar[DriftType]
    _CONFIG: ClassVar[type[Any]]

    def __init__(self, config: Any = None) -> None:
        self.config = self._CONFIG() if config is None else config
        if not isinstance(self.config, self._CONFIG):
            raise DriftError(f"{type(self).__name__} takes a {self._CONFIG.__name__}")
        if self.config.min_sample_size < 1:
            raise DriftError("min_sample_size must be at least 1")
        self._reference = _Reservoir(self.config.reference_sample_size, self.config.seed)

    @property
    def drift_type(self) -> DriftType:
        return self._TYPE

    @property
    def reference_size(self) -> int:
        """Rows held as the reference (at most ``reference_sample_size``)."""
        return self._reference.rows

    def _columns(self, data: Any) -> Columns:
        raise NotImplementedError

    def _compare(self, reference: Columns, current: Columns) -> DriftReport:
        raise NotImplementedError

    def set_reference(self, data: Any) -> None:
        """Replace the reference with a uniform sample of ``data``."""
        columns = self._columns(data)
        if not _rows(columns):
            raise DriftError("the reference is empty")
        self._reference = _Reservoir(self.config.reference_sample_size, self.config.seed)
        self._reference.add(columns)

    def update_reference(self, data: Any) -> None:
        """Add ``data`` to the reference sample (for a reference that arrives in batches)."""
        self._reference.add(self._columns(data))

    def compute(self, window: Any) -> DriftReport:
        """Compare ``window`` with the reference; DriftError when there is too little data."""
        if not self._reference.rows:
            raise DriftError("no reference is set; call set_reference first")
        current = self._columns(window)
        n = _rows(current)
        if n < self.config.min_sample_size:
            raise DriftError(
                f"insufficient data: the window has {n} rows, "
                f"min_sample_size is {self.config.min_sample_size}"
            )
        return self._compare(self._reference.columns, current)

    def state(self) -> bytes:
        arrays: dict[str, npt.NDArray[Any]] = {}
        json_columns: dict[str, list[Any]] = {}
        for i, (name, column) in enumerate(self._reference.columns.items()):
            if column.dtype.kind in "biuf":
                arrays[f"c{i}"] = column
            else:
                json_columns[name] = column.tolist()
        header = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "kind": self._KIND,
            "config": asdict(self.config),
            "reservoir": self._reference.header(),
            "columns": list(self._reference.columns),
            "json_columns": json_columns,
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    def load_state(self, state: bytes) -> None:
        try:
            with np.load(io.BytesIO(state), allow_pickle=False) as archive:
                header = json.loads(archive["header"].tobytes())
                if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
                    raise DriftError("these bytes are not a PyFlare drift detector state")
                if header.get("version") != STATE_VERSION:
                    raise DriftError(
                        f"detector state version {header.get('version')!r} is not supported "
                        f"(this PyFlare reads version {STATE_VERSION})"
                    )
                if header.get("kind") != self._KIND:
                    raise DriftError(
                        f"this state is a {header.get('kind')!r} detector's, not {self._KIND!r}"
                    )
                config = _config(self._CONFIG, header["config"])
                reservoir = _Reservoir(config.reference_sample_size, config.seed)
                json_columns = header["json_columns"]
                columns: Columns = {}
                for i, name in enumerate(header["columns"]):
                    if name in json_columns:
                        columns[name] = np.array(json_columns[name], dtype=object)
                    else:
                        columns[name] = archive[f"c{i}"]
                if _rows(columns) > config.reference_sample_size:
                    raise DriftError(
                        "the state's reference is larger than its reference_sample_size"
                    )
                reservoir.columns = columns
                reservoir.seen = int(header["reservoir"]["seen"])
                reservoir.rng.bit_generator.state = header["reservoir"]["rng"]
        except DriftError:
            raise
        except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise DriftError(f"these bytes are not a readable detector state: {exc!r}") from exc
        self.config = config
        self._reference = reservoir

    @classmethod
    def from_state(cls, state: bytes) -> Self:
        """A detector restored from ``state()``'s bytes."""
        detector = cls()
        detector.load_state(state)
        return detector


def _config(kind: type[Any], values: Any) -> Any:
    if not isinstance(values, dict):
        raise DriftError("the state's config is malformed")
    if isinstance(values.get("categorical"), list):
        values = {**values, "categorical": tuple(values["categorical"])}
    try:
        return kind(**values)
    except TypeError as exc:
        raise DriftError(f"the state's config is malformed: {exc}") from exc


class FeatureDriftDetector(_Detector):
    """Feature drift: each input feature's distribution against the reference's.

    Data are a mapping of column -> values, a pandas DataFrame or a sequence of
    row mappings (the same keys in every row).
    """

    _KIND = "feature"
    _TYPE = DriftType.FEATURE
    _CONFIG = FeatureDriftConfig
    config: FeatureDriftConfig

    def _columns(self, data: Any) -> Columns:
        return _table(data, self.config.categorical or ())

    def _compare(self, reference: Columns, current: Columns) -> DriftReport:
        from pyflare.drift.features import compare_features

        categorical = [k for k, v in reference.items() if v.dtype.kind == "O"]
        return compare_features(
            reference,
            current,
            method=self.config.test,  # type: ignore[arg-type]
            alpha=self.config.significance_level,
            fdr=self.config.fdr,  # type: ignore[arg-type]
            categorical=categorical,
        )


class EmbeddingDriftDetector(_Detector):
    """Embedding drift: a window of vectors against the reference's (centroid cosine or MMD)."""

    _KIND = "embedding"
    _TYPE = DriftType.EMBEDDING
    _CONFIG = EmbeddingDriftConfig
    config: EmbeddingDriftConfig

    def _columns(self, data: Any) -> Columns:
        try:
            matrix = np.asarray(data, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise DriftError(f"embeddings must be a rectangular array of numbers: {exc}") from exc
        if matrix.ndim != 2:
            raise DriftError(
                f"embeddings must be a 2-D array (rows x dims), got shape {matrix.shape}"
            )
        if not np.isfinite(matrix).all():
            raise DriftError("embeddings have NaN or infinite values")
        reference = self._reference.columns.get("embedding")
        if reference is not None and reference.shape[1] != matrix.shape[1]:
            raise DriftError(
                f"the reference embeddings have {reference.shape[1]} dimensions, "
                f"these {matrix.shape[1]}; compare embeddings from the same model"
            )
        return {"embedding": matrix}

    def set_reference(self, data: Any) -> None:
        self._reference = _Reservoir(self.config.reference_sample_size, self.config.seed)
        super().set_reference(data)

    def _compare(self, reference: Columns, current: Columns) -> DriftReport:
        from pyflare.drift.embedding import compare_embeddings

        return compare_embeddings(
            reference["embedding"],
            current["embedding"],
            method=self.config.metric,
            alpha=self.config.significance_level,
            permutations=self.config.permutations,
            seed=self.config.seed,
            centroid_threshold=self.config.threshold,
        )


class PredictionDriftDetector(_Detector):
    """Prediction drift: a window of a model's outputs against the reference outputs."""

    _KIND = "prediction"
    _TYPE = DriftType.PREDICTION
    _CONFIG = PredictionDriftConfig
    config: PredictionDriftConfig

    def _columns(self, data: Any) -> Columns:
        if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
            raise DriftError("outputs must be a sequence (one output per prediction)")
        values = list(data)
        if not values:
            return {}
        return prediction_columns(values, self.config.kind)

    def _compare(self, reference: Columns, current: Columns) -> DriftReport:
        return compare_prediction_columns(
            reference,
            current,
            method=self.config.test,
            alpha=self.config.significance_level,
            fdr=self.config.fdr,
        )


def _table(data: Any, categorical: Iterable[str]) -> Columns:
    """Columns from a mapping of columns, a DataFrame or a sequence of row mappings."""
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        data = {str(name): data[name].to_numpy() for name in data.columns}
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        rows = list(data)
        if rows and not all(isinstance(r, Mapping) for r in rows):
            raise DriftError("rows must be mappings of feature -> value")
        keys = list(rows[0]) if rows else []
        if any(set(r) != set(keys) for r in rows):
            raise DriftError("every row must have the same features")
        data = {k: [r[k] for r in rows] for k in keys}
    if not isinstance(data, Mapping):
        raise DriftError(
            f"data must be a mapping of columns, a DataFrame or rows, not {type(data).__name__}"
        )
    forced = set(categorical)
    columns: Columns = {}
    for name, values in data.items():
        array = np.asarray(values)
        if array.ndim != 1:
            raise DriftError(f"column {name!r} must be one value per row, got shape {array.shape}")
        items = array.tolist()
        if name not in forced and (array.dtype.kind in "iuf" or _numbers_or_none(items)):
            # None in a numeric column becomes NaN, which the tests reject or skip explicitly
            columns[str(name)] = np.array(
                [math.nan if v is None else v for v in items], dtype=np.float64
            )
        else:  # strings, booleans and anything else are categories
            columns[str(name)] = np.array(
                [None if v is None else str(v) for v in items], dtype=object
            )
    _rows(columns)
    return columns


def _numbers_or_none(items: list[Any]) -> bool:
    numbers = [v for v in items if v is not None]
    return bool(numbers) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers
    )
