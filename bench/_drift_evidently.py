"""Evidently's side of ``bench/drift.py``: its virtual environment, and a worker run inside it.

Evidently needs ``pandas<3`` (PyFlare's environment may have pandas 3), so it
runs in a virtual environment of its own, ``~/.cache/pyflare/bench-evidently-venv``,
made on first use with ``pip install evidently "pandas<3"``. The bench never
installs anything into PyFlare's environment.

The worker (``python _drift_evidently.py DATA_DIR`` under that environment) loads
the ``.npz`` files the bench wrote, prints one JSON line ``{"ready": ...}``, then
answers one JSON line per command read from stdin. Each answer carries the
seconds the measured call took (``time.perf_counter`` around the call alone: the
data is already in memory, as pandas objects, before the clock starts).

* ``preset``: ``Report([DataDriftPreset()]).run(...)`` on the 100k-row tables,
  ``Dataset.from_pandas`` with an explicit ``DataDefinition`` included; with
  ``"decisions": true`` also the per-column method, score, threshold and decision
  (from ``include_tests=True``: a test per column, FAIL when drifted).
* ``ks`` / ``psi``: ``ks_stat_test`` / ``psi_stat_test`` on the 1M-row columns.
* ``mmd``: ``MMDDriftMethod(bootstrap=True)`` (its 100 bootstrap resamples) on
  the embeddings, ``"pair": "shift"`` or ``"null"``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PACKAGES = ["evidently", "pandas<3"]


def evidently_python(venv: Path | None) -> tuple[Path, str]:
    """Python of a virtual environment with Evidently (made on first use), its version."""
    if venv is None:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        venv = cache / "pyflare" / "bench-evidently-venv"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('evidently'))"]
    found = (
        subprocess.run(probe, capture_output=True, text=True, check=False)
        if python.exists()
        else None
    )
    if found is None or found.returncode != 0:
        print(f"(installing Evidently into {venv}: once, about a minute)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *PACKAGES],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        found = subprocess.run(probe, capture_output=True, text=True, check=True)
    return python, found.stdout.strip()


class EvidentlyWorker:
    """The worker process, driven one command at a time."""

    def __init__(self, python: Path, data_dir: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Evidently worker exited (status {self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the Evidently worker failed: {answer['error']}")
        return answer

    def call(self, task: str, **kwargs: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"task": task, **kwargs}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(30)


# -- the worker, inside Evidently's environment -----------------------------------------------


def _preset(data: dict[str, Any], decisions: bool) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=data["numeric"], categorical_columns=data["categorical"]
    )
    started = time.perf_counter()
    reference = Dataset.from_pandas(data["reference"], data_definition=definition)
    current = Dataset.from_pandas(data["current"], data_definition=definition)
    snapshot = Report([DataDriftPreset()], include_tests=decisions).run(
        current_data=current, reference_data=reference
    )
    seconds = time.perf_counter() - started
    answer: dict[str, Any] = {"seconds": seconds}
    if decisions:
        result = snapshot.dict()
        columns: dict[str, dict[str, Any]] = {}
        for metric in result["metrics"]:
            config = metric["config"]
            if config.get("type", "").endswith("ValueDrift"):
                columns[config["column"]] = {
                    "method": config.get("method"),
                    "threshold": config.get("threshold"),
                    "value": float(metric["value"]),
                }
        for test in result["tests"]:
            params = test["metric_config"]["params"]
            if params.get("type", "").endswith("ValueDrift"):
                columns[params["column"]]["drifted"] = test["status"] == "FAIL"
        answer["columns"] = columns
    return answer


def _stattest(data: dict[str, Any], name: str) -> dict[str, Any]:
    from evidently.legacy.calculations.stattests import ks_stat_test, psi_stat_test
    from evidently.legacy.core import ColumnType

    test = {"ks": ks_stat_test, "psi": psi_stat_test}[name]
    started = time.perf_counter()
    result = test(data["column_ref"], data["column_cur"], ColumnType.Numerical, None)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "value": float(result.drift_score),
        "threshold": float(result.actual_threshold),
        "drifted": bool(result.drifted),
    }


def _mmd(data: dict[str, Any], pair: str) -> dict[str, Any]:
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import MMDDriftMethod

    reference, current = data[f"emb_{pair}_ref"], data[f"emb_{pair}_cur"]
    started = time.perf_counter()
    value, drifted, _ = MMDDriftMethod(bootstrap=True)(current, reference)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "value": float(value), "drifted": bool(drifted)}


def _load(data_dir: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    def arrays(name: str) -> dict[str, Any]:
        with np.load(data_dir / f"{name}.npz", allow_pickle=False) as loaded:
            return {key: loaded[key] for key in loaded.files}

    data: dict[str, Any] = {}
    meta = json.loads((data_dir / "meta.json").read_text())
    data["numeric"], data["categorical"] = meta["numeric"], meta["categorical"]
    if (data_dir / "preset_ref.npz").exists():
        data["reference"] = pd.DataFrame(arrays("preset_ref"))
        data["current"] = pd.DataFrame(arrays("preset_cur"))
    if (data_dir / "column.npz").exists():
        column = arrays("column")
        data["column_ref"] = pd.Series(column["reference"])
        data["column_cur"] = pd.Series(column["current"])
    for pair in ("shift", "null"):
        if (data_dir / f"emb_{pair}.npz").exists():
            emb = arrays(f"emb_{pair}")
            data[f"emb_{pair}_ref"] = pd.DataFrame(emb["reference"])
            data[f"emb_{pair}_cur"] = pd.DataFrame(emb["current"])
    return data


def _worker(data_dir: Path) -> None:
    import importlib.metadata

    import evidently  # noqa: F401  (imported before "ready": import time isn't measured)

    data = _load(data_dir)
    versions = {
        package: importlib.metadata.version(package)
        for package in ("evidently", "pandas", "numpy", "scipy", "scikit-learn")
    }
    print(json.dumps({"ready": True, "versions": versions}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        task = command["task"]
        try:
            if task == "preset":
                answer = _preset(data, bool(command.get("decisions")))
            elif task in ("ks", "psi"):
                answer = _stattest(data, task)
            elif task == "mmd":
                answer = _mmd(data, command.get("pair", "shift"))
            else:
                answer = {"error": f"unknown task {task!r}"}
        except Exception as error:
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
