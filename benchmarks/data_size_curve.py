"""Learning curves over cohort size: held-out ROC/PR-AUC after training on 15, 30, 60, 88 participants.

For every generator setting (`prlkit simulate --synth-profile default|noisy`) and cohort seed S:
simulate a training cohort (seed S, `--train-subjects` participants) and a test cohort of the same
setting (seed S + 1, `--test-subjects` participants); for every size N, train each method on the
first N participants of a seeded permutation of the training cohort (nested subsets, written as a
manifest CSV) and predict the test cohort with `benchmarks/transfer.py`. Models trained on the
`default` setting also predict the `noisy` test cohort of the same seed: the transfer-gap row
("train on settings A, test on settings B"). The training-free `shell_minus_core` contrast is
scored on every test cohort.

Loops run seed by seed (outermost), so an interrupted run still holds complete seeds. Every method
trains in its own `transfer.py` call (DIR/runs/<setting>-<seed>-n<size>/<method>/transfer.json), so a
method added later runs alone and a finished (method, size) is skipped on rerun. `--summarise` only
reads what is there and prints the table: mean ± SD over seeds of ROC-AUC, PR-AUC and
Spearman(probability, volume | Rim-).

Usage: PYTHONPATH=src python benchmarks/data_size_curve.py --out DIR [--seeds 707 808 909]
       [--sizes 15 30 60 88] [--methods frodo,aprl,resnet18] [--settings default noisy] [--summarise]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from prlkit.data.bids import discover_cohort

HERE = Path(__file__).resolve().parent


def simulate(folder: Path, subjects: int, seed: int, setting: str) -> Path:
    """`prlkit simulate` into `folder` unless a finished cohort (its participants.tsv) is there."""
    if not (folder / "participants.tsv").exists():
        command = [sys.executable, "-m", "prlkit", "simulate", str(folder), "--subjects", str(subjects),
                   "--seed", str(seed), "--synth-profile", setting, "--jobs", "1"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return folder


def subset_manifest(cohort: Path, size: int, seed: int, out: Path) -> Path:
    """A manifest CSV of the first `size` participants of a seeded permutation (nested across sizes)."""
    sessions = discover_cohort(cohort).sessions
    participants = sorted({s.participant_id for s in sessions})
    if size > len(participants):
        raise ValueError(f"{cohort}: {len(participants)} participants, {size} asked for")
    chosen = set(np.random.default_rng(seed).permutation(participants)[:size])
    rows = [{"participant_id": s.participant_id, "session_id": s.session_id or "", "qsm": s.qsm, "flair": s.flair,
             "lesions": s.lesions, "rim_table": s.rim_table or "", "site": s.site or ""}
            for s in sessions if s.participant_id in chosen]
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    return out


def run_size(train: Path, tests: list[Path], method: str, out: Path, cache: Path, threads: int) -> None:
    """One `transfer.py` call of one method (train on the manifest, predict every test cohort) unless done."""
    if (out / "transfer.json").exists():
        return
    command = [sys.executable, str(HERE / "transfer.py"), "--train", str(train), "--test", *map(str, tests),
               "--methods", method, "--out", str(out), "--cache-dir", str(cache), "--threads", str(threads)]
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL)


def collect(root: Path) -> pd.DataFrame:
    """Every scored (setting, seed, size, test cohort, method) row of the runs under `root`."""
    rows, seen = [], set()
    for path in sorted(root.glob("runs/*/*/transfer.json")):
        setting, seed, size = path.parent.parent.name.split("-")
        result = json.loads(path.read_text(encoding="utf-8"))
        for test, scores in result["tests"].items():
            test_setting = test.split("-")[0]
            for method, record in scores.items():
                key = (setting, test_setting, seed, size, method)
                if method != "path" and record.get("roc_auc") is not None and key not in seen:
                    seen.add(key)  # the training-free row is in every method's run: count it once
                    rows.append({"train": setting, "test": test_setting, "seed": int(seed), "size": int(size[1:]),
                                 "method": method, **{k: record[k] for k in ("roc_auc", "pr_auc",
                                                                                "spearman_volume_rim_neg")}})
    return pd.DataFrame(rows)


def summary_table(rows: pd.DataFrame) -> str:
    """Markdown: mean ± SD over seeds per (train setting, test setting, method, size)."""
    def mean_sd(values: pd.Series) -> str:
        """Mean ± SD over seeds; a single seed has no SD, so its value stands alone."""
        values = values.dropna()
        if values.empty:
            return "n/a"
        return f"{values.mean():.2f}" if len(values) == 1 else f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"

    lines = ["| train → test | method | participants | seeds | ROC-AUC | PR-AUC | Spearman p-volume, Rim- |",
             "|---|---|---|---|---|---|---|"]
    keys = ["train", "test", "method", "size"]
    for (train, test, method, size), group in rows.sort_values(keys).groupby(keys, sort=False):
        lines.append(f"| {train} → {test} | {method} | {size} | {group['seed'].nunique()} | "
                     f"{mean_sd(group['roc_auc'])} | {mean_sd(group['pr_auc'])} | "
                     f"{mean_sd(group['spearman_volume_rim_neg'])} |")
    return "\n".join(lines)


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[707, 808, 909])
    parser.add_argument("--sizes", type=int, nargs="+", default=[15, 30, 60, 88])
    parser.add_argument("--methods", default="frodo,aprl,resnet18")
    parser.add_argument("--settings", nargs="+", default=["default", "noisy"])
    parser.add_argument("--train-subjects", type=int, default=88)
    parser.add_argument("--test-subjects", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--summarise", action="store_true", help="only print the table of what is there")
    args = parser.parse_args()
    if not args.summarise:
        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
        for seed in args.seeds:
            test_settings = [*args.settings, *(["noisy"] if "default" in args.settings else [])]  # the transfer gap
            tests = {setting: simulate(args.out / "cohorts" / f"{setting}-{seed}-test", args.test_subjects,
                                       seed + 1, setting) for setting in dict.fromkeys(test_settings)}
            for setting in args.settings:
                train = simulate(args.out / "cohorts" / f"{setting}-{seed}-train", args.train_subjects, seed, setting)
                targets = [tests[setting]] + ([tests["noisy"]] if setting == "default" and "noisy" in tests else [])
                for size in args.sizes:
                    manifest = subset_manifest(train, size, seed,
                                               args.out / "manifests" / f"{setting}-{seed}-n{size}.csv")
                    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
                        run_size(manifest, targets, method, args.out / "runs" / f"{setting}-{seed}-n{size}" / method,
                                 args.out / "cache", args.threads)
                        print(f"{setting} seed {seed} n {size} {method}: done", file=sys.stderr, flush=True)
    rows = collect(args.out)
    print(summary_table(rows) if len(rows) else "no finished runs yet")


if __name__ == "__main__":
    main()
