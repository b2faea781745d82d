"""PyFlare's drift statistics, measured side by side with Evidently and scipy in one run.

    python bench/drift.py                  # about 2 minutes (Evidently's venv: once, a minute more)
    python bench/drift.py --quick          # smaller data, fewer rounds, under a minute
    python bench/drift.py --only ks,mmd    # sections: preset, column, ks, mmd

Four sections, each on seeded generated data with planted drift (``_drift_data.py``):

* ``preset``: Evidently's ``DataDriftPreset`` against ``compare_features`` on 100k
  rows x (20 numeric + 5 categorical), with the per-column decisions compared.
* ``column``: Evidently's per-column ``ks_stat_test`` / ``psi_stat_test`` against
  PyFlare's ``ks`` / ``psi`` on one column of 1M vs 1M.
* ``ks``: ``scipy.stats.ks_2samp`` against PyFlare's ``ks`` on 1M vs 1M, the
  statistic checked identical and the p-value within 1e-9 relative.
* ``mmd``: Evidently's ``MMDDriftMethod(bootstrap=True)`` (100 resamples) against
  PyFlare's ``mmd`` (100 permutations) on 2000 vs 2000 embeddings of 384 dims.

Evidently runs in its own virtual environment (``_drift_evidently.py``), a worker
process driven one command at a time, so the two sides run in interleaved rounds
(the order alternating) and each side's clock covers the measured call alone.
See bench/README.md for what exactly is compared and how to read the output.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _drift_data import (
    CATEGORICAL,
    NUMERIC,
    PRESET_EXPECTED,
    column_pair,
    embeddings,
    preset_tables,
    save,
)
from _drift_evidently import EvidentlyWorker, evidently_python
from sdk_overhead import _child_env, _table, _verdict
from sdk_overhead import _environment as _sdk_environment

HERE = Path(__file__).resolve().parent
SECTIONS = ("preset", "column", "ks", "mmd")

TARGET_PRESET = 10.0  # x faster than Evidently's DataDriftPreset, same decisions
TARGET_KS = 3.0  # x faster than scipy.stats.ks_2samp, identical statistic
TARGET_MMD = 8.0  # x faster than Evidently's bootstrap MMD
KS_P_RTOL = 1e-9


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def _rounds(
    rounds: int, ours: Callable[[], Any], theirs: Callable[[], float]
) -> tuple[list[float], list[float], Any]:
    """``rounds`` interleaved timings of both sides, the order alternating; our last result."""
    mine: list[float] = []
    peer: list[float] = []
    result = None
    for index in range(rounds):
        if index % 2:
            peer.append(theirs())
        seconds, result = _timed(ours)
        mine.append(seconds)
        if not index % 2:
            peer.append(theirs())
    return mine, peer, result


def _summary(mine: list[float], peer: list[float]) -> dict[str, Any]:
    ratios = [p / m for m, p in zip(mine, peer, strict=True) if m > 0]
    return {
        "pyflare_s": mine,
        "peer_s": peer,
        "pyflare_median_s": statistics.median(mine),
        "peer_median_s": statistics.median(peer),
        "ratio_median": statistics.median(ratios) if ratios else float("nan"),
        "ratio_min": min(ratios) if ratios else float("nan"),
        "ratio_max": max(ratios) if ratios else float("nan"),
    }


# -- sections --------------------------------------------------------------------------------


def run_preset(
    args: argparse.Namespace, worker: EvidentlyWorker, tables: tuple[dict[str, Any], ...]
) -> dict[str, Any]:
    import pandas as pd
    from pyflare.drift.features import compare_features

    reference, current = (pd.DataFrame(table) for table in tables)

    def ours() -> Any:
        return compare_features(reference, current, categorical=CATEGORICAL)

    # A first, untimed call on each side: warm-up, and the per-column decisions.
    report = ours()
    theirs = worker.call("preset", decisions=True)["columns"]
    mine, peer, report = _rounds(args.rounds, ours, lambda: float(worker.call("preset")["seconds"]))
    columns: dict[str, dict[str, Any]] = {}
    for name in [*NUMERIC, *CATEGORICAL]:
        result = report.results.get(name)
        skipped = next((s.reason for s in report.skipped if s.feature == name), None)
        columns[name] = {
            "expected": PRESET_EXPECTED[name],
            "pyflare": None
            if result is None
            else {
                "method": result.method,
                "statistic": result.statistic,
                "p_value": result.p_value,
                "threshold": result.threshold,
                "drifted": result.is_drifted,
            },
            "pyflare_skipped": skipped,
            "evidently": theirs.get(name),
        }
    return {"rows": args.rows, "timing": _summary(mine, peer), "columns": columns}


def run_column(
    args: argparse.Namespace, worker: EvidentlyWorker, pair: tuple[np.ndarray, np.ndarray]
) -> dict[str, Any]:
    from pyflare.drift.stats import ks, psi

    out: dict[str, Any] = {"rows": args.column_rows}
    for name, test in (("ks", ks), ("psi", psi)):
        result = test(*pair)
        theirs = worker.call(name)
        mine, peer, result = _rounds(
            args.rounds,
            lambda test=test: test(*pair),
            lambda name=name: float(worker.call(name)["seconds"]),
        )
        out[name] = {
            "timing": _summary(mine, peer),
            "pyflare": {
                "statistic": result.statistic,
                "p_value": result.p_value,
                "drifted": result.is_drifted,
            },
            "evidently": theirs,
        }
    return out


def run_ks(args: argparse.Namespace, pair: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    from scipy.stats import ks_2samp

    from pyflare.drift.stats import ks

    reference, current = pair
    ks(reference, current)
    ks_2samp(reference, current)
    scipy_result: list[Any] = []

    def theirs() -> float:
        seconds, value = _timed(lambda: ks_2samp(reference, current))
        scipy_result[:] = [value]
        return seconds

    mine, peer, result = _rounds(args.rounds, lambda: ks(reference, current), theirs)
    reference_statistic = float(scipy_result[0].statistic)
    reference_p = float(scipy_result[0].pvalue)
    # Ties: the same columns rounded to 2 decimals (~800 distinct values), checked once.
    tied = [np.round(side, 2) for side in pair]
    tied_ours, tied_scipy = ks(*tied), ks_2samp(*tied)
    return {
        "rows": args.column_rows,
        "timing": _summary(mine, peer),
        "statistic": {"pyflare": result.statistic, "scipy": reference_statistic},
        "p_value": {"pyflare": result.p_value, "scipy": reference_p},
        "identical_statistic": result.statistic == reference_statistic,
        "p_value_rel_diff": _rel_diff(result.p_value, reference_p),
        "ties": {
            "identical_statistic": tied_ours.statistic == float(tied_scipy.statistic),
            "p_value_rel_diff": _rel_diff(tied_ours.p_value, float(tied_scipy.pvalue)),
        },
    }


def _rel_diff(ours: float | None, theirs: float) -> float:
    if ours is None:
        return float("inf")
    if ours == theirs:
        return 0.0
    return abs(ours - theirs) / max(abs(theirs), sys.float_info.min)


def run_mmd(
    args: argparse.Namespace, worker: EvidentlyWorker, pairs: dict[str, tuple[np.ndarray, ...]]
) -> dict[str, Any]:
    from pyflare.drift.embedding import mmd

    reference, current = pairs["shift"]

    def ours() -> Any:
        return mmd(reference, current, permutations=args.permutations)

    ours()
    theirs = worker.call("mmd", pair="shift")
    mine, peer, result = _rounds(
        args.rounds, ours, lambda: float(worker.call("mmd", pair="shift")["seconds"])
    )
    null_ours = mmd(*pairs["null"], permutations=args.permutations)
    null_theirs = worker.call("mmd", pair="null")
    return {
        "rows": args.emb_rows,
        "dims": args.emb_dims,
        "permutations": args.permutations,
        "timing": _summary(mine, peer),
        "shift": {
            "pyflare": {
                "mmd2": result.statistic,
                "p_value": result.p_value,
                "drifted": result.is_drifted,
            },
            "evidently": theirs,
        },
        "null": {
            "pyflare": {
                "mmd2": null_ours.statistic,
                "p_value": null_ours.p_value,
                "drifted": null_ours.is_drifted,
            },
            "evidently": null_theirs,
        },
    }


# -- output ----------------------------------------------------------------------------------


def _s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _timing_row(label: str, timing: dict[str, Any], peer: str) -> list[str]:
    return [
        label,
        _s(timing["pyflare_median_s"]),
        f"{_s(timing['peer_median_s'])} ({peer})",
        f"{timing['ratio_median']:.1f}x",
        f"{timing['ratio_min']:.1f}-{timing['ratio_max']:.1f}x",
    ]


def _decision(entry: dict[str, Any] | None, key: str = "drifted") -> str:
    if entry is None:
        return "-"
    return "DRIFT" if entry.get(key) else "ok"


def report(results: dict[str, Any]) -> list[list[str]]:
    """Print the tables; the target rows."""
    rows: list[list[str]] = []
    targets: list[list[str]] = []
    preset = results.get("preset")
    if preset:
        columns = preset["columns"]
        mismatches = [
            name
            for name, column in columns.items()
            if column["pyflare"] is None
            or column["evidently"] is None
            or column["pyflare"]["drifted"] != column["evidently"].get("drifted")
        ]
        print(f"\npreset: {preset['rows']:,} rows x (20 numeric + 5 categorical), per column")
        _table(
            ["column", "planted", "PyFlare", "method", "statistic", "Evidently", "method", "score"],
            [
                [
                    name,
                    "drift" if column["expected"] else "-",
                    _decision(column["pyflare"])
                    if column["pyflare"]
                    else f"skipped: {column['pyflare_skipped']}",
                    (column["pyflare"] or {}).get("method", "-"),
                    f"{column['pyflare']['statistic']:.4g}" if column["pyflare"] else "-",
                    _decision(column["evidently"]),
                    (column["evidently"] or {}).get("method", "-"),
                    f"{column['evidently']['value']:.4g}" if column["evidently"] else "-",
                ]
                for name, column in columns.items()
            ],
        )
        wrong = [
            name
            for name, column in columns.items()
            if column["pyflare"] is None or column["pyflare"]["drifted"] != column["expected"]
        ]
        print(f"    decisions that differ from Evidently's: {', '.join(mismatches) or 'none'}")
        print(f"    PyFlare decisions that miss the planted truth: {', '.join(wrong) or 'none'}")
        rows.append(
            _timing_row("DataDriftPreset / compare_features", preset["timing"], "Evidently")
        )
        ratio = preset["timing"]["ratio_median"]
        targets.append(
            [
                "preset >= 10x Evidently, same decisions",
                f"{ratio:.1f}x, {len(mismatches)} differ",
                _verdict(ratio >= TARGET_PRESET and not mismatches),
            ]
        )
    column = results.get("column")
    if column:
        print(f"\ncolumn: one numeric column, {column['rows']:,} vs {column['rows']:,}")
        _table(
            ["test", "PyFlare", "value", "Evidently", "value"],
            [
                [
                    name,
                    _decision(column[name]["pyflare"]),
                    f"p={column[name]['pyflare']['p_value']:.3g}"
                    if name == "ks"
                    else f"psi={column[name]['pyflare']['statistic']:.3g}",
                    _decision(column[name]["evidently"]),
                    f"{'p' if name == 'ks' else 'psi'}={column[name]['evidently']['value']:.3g}",
                ]
                for name in ("ks", "psi")
            ],
        )
        for name in ("ks", "psi"):
            rows.append(_timing_row(f"{name} per column", column[name]["timing"], "Evidently"))
    ks_result = results.get("ks")
    if ks_result:
        print(f"\nks: {ks_result['rows']:,} vs {ks_result['rows']:,} against scipy.stats.ks_2samp")
        print(
            f"    statistic {ks_result['statistic']['pyflare']!r} vs {ks_result['statistic']['scipy']!r}"
            f" (identical: {ks_result['identical_statistic']}); p-value relative difference "
            f"{ks_result['p_value_rel_diff']:.2e}"
        )
        ties = ks_result["ties"]
        print(
            f"    with ties (rounded to 2 decimals): identical statistic {ties['identical_statistic']}"
            f", p-value relative difference {ties['p_value_rel_diff']:.2e}"
        )
        rows.append(_timing_row("ks_2samp / ks", ks_result["timing"], "scipy"))
        ratio = ks_result["timing"]["ratio_median"]
        same = (
            ks_result["identical_statistic"]
            and ks_result["p_value_rel_diff"] <= KS_P_RTOL
            and ties["identical_statistic"]
            and ties["p_value_rel_diff"] <= KS_P_RTOL
        )
        targets.append(
            [
                "KS >= 3x scipy, identical statistic",
                f"{ratio:.1f}x, identical: {same}",
                _verdict(ratio >= TARGET_KS and same),
            ]
        )
    mmd_result = results.get("mmd")
    if mmd_result:
        print(
            f"\nmmd: {mmd_result['rows']:,} vs {mmd_result['rows']:,} embeddings x "
            f"{mmd_result['dims']}, {mmd_result['permutations']} permutations (PyFlare) / "
            "100 bootstrap resamples (Evidently)"
        )
        _table(
            ["pair", "PyFlare", "MMD^2", "p-value", "Evidently", "MMD^2"],
            [
                [
                    pair,
                    _decision(mmd_result[pair]["pyflare"]),
                    f"{mmd_result[pair]['pyflare']['mmd2']:.3g}",
                    f"{mmd_result[pair]['pyflare']['p_value']:.3g}",
                    _decision(mmd_result[pair]["evidently"]),
                    f"{mmd_result[pair]['evidently']['value']:.3g}",
                ]
                for pair in ("shift", "null")
            ],
        )
        print("    (MMD^2 values differ by construction: other bandwidths, biased vs unbiased)")
        rows.append(_timing_row("MMD test", mmd_result["timing"], "Evidently"))
        ratio = mmd_result["timing"]["ratio_median"]
        targets.append(
            ["MMD test >= 8x Evidently's", f"{ratio:.1f}x", _verdict(ratio >= TARGET_MMD)]
        )
    if rows:
        print("\ntimes (median of rounds) and PyFlare's advantage (median, min-max of rounds)")
        _table(["what", "PyFlare", "peer", "advantage", "spread"], rows)
    if targets:
        print("\ntargets")
        _table(["target", "measured", ""], targets)
    return targets


def _environment(evidently: dict[str, Any] | None) -> dict[str, Any]:
    environment = _sdk_environment()
    environment["versions"] = {
        key: value
        for key, value in environment["versions"].items()
        if key in ("pyflare", "duckdb", "pyarrow")
    }
    from importlib.metadata import version

    for package in ("numpy", "scipy", "pandas"):
        environment["versions"][package] = version(package)
    environment["evidently_env"] = evidently
    return environment


# -- main ------------------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer rounds")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per section (5)")
    parser.add_argument("--rows", type=int, default=None, help="preset rows per side (100000)")
    parser.add_argument("--column-rows", type=int, default=None, help="KS/PSI rows (1000000)")
    parser.add_argument("--emb-rows", type=int, default=2000, help="embeddings per side")
    parser.add_argument("--emb-dims", type=int, default=384)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--evidently-venv", type=Path, default=None)
    parser.add_argument("--no-json", action="store_true", help="don't write bench/results/")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.rows = args.rows or (20_000 if args.quick else 100_000)
    args.column_rows = args.column_rows or (200_000 if args.quick else 1_000_000)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    needs_evidently = bool({"preset", "column", "mmd"} & set(args.only))
    results: dict[str, Any] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pyflare-drift-bench-") as tmp:
        data_dir = Path(tmp)
        tables = preset_tables(args.rows, args.seed)
        pair = column_pair(args.column_rows, args.seed)
        emb = {
            "shift": embeddings(args.emb_rows, args.emb_dims, args.seed, shift=0.15),
            "null": embeddings(args.emb_rows, args.emb_dims, args.seed + 1, shift=0.0),
        }
        (data_dir / "meta.json").write_text(
            json.dumps({"numeric": NUMERIC, "categorical": CATEGORICAL})
        )
        if "preset" in args.only:
            save(data_dir / "preset_ref.npz", tables[0])
            save(data_dir / "preset_cur.npz", tables[1])
        if "column" in args.only:
            save(data_dir / "column.npz", {"reference": pair[0], "current": pair[1]})
        if "mmd" in args.only:
            for name, (ref, cur) in emb.items():
                save(data_dir / f"emb_{name}.npz", {"reference": ref, "current": cur})
        worker: Any = None
        evidently = None
        if needs_evidently:
            python, version = evidently_python(args.evidently_venv)
            env, _ = _child_env()
            env["DO_NOT_TRACK"] = "1"  # Evidently's usage telemetry
            worker = EvidentlyWorker(python, data_dir, env)
            evidently = {"python": str(python), **worker.ready["versions"]}
            print(f"Evidently {version} ({python})", flush=True)
        sections: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("preset", lambda: run_preset(args, worker, tables)),
            ("column", lambda: run_column(args, worker, pair)),
            ("ks", lambda: run_ks(args, pair)),
            ("mmd", lambda: run_mmd(args, worker, emb)),
        ]
        try:
            for name, section in sections:
                if name not in args.only:
                    continue
                print(f"{name} ...", flush=True)
                try:
                    results[name] = section()
                except ImportError as error:  # a part of pyflare.drift not written yet
                    print(f"    {name} skipped: {error}", flush=True)
        finally:
            if worker:
                worker.close()
    targets = report(results)
    print(f"\n(whole run {time.monotonic() - started:.0f} s)")
    if not args.no_json:
        out = HERE / "results" / f"drift-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(exist_ok=True)
        payload = {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "environment": _environment(evidently),
            "results": results,
            "targets": targets,
        }
        out.write_text(json.dumps(payload, indent=2, default=float))
        print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
