"""The same methods on QSM and on phase of the same simulated cohorts: what phase input costs or gains.

For every cohort seed S: `prlkit simulate` (default settings, `--subjects` participants; the phase is
made from the same noisy local field as the QSM, sign convention negative), then `prlkit cv` twice with
the same folds and settings, `--susceptibility qsm` and `--susceptibility phase` (sign decided from the
veins). Pooled out-of-fold ROC-AUC and PR-AUC per method (scikit-learn), mean ± SD over seeds.
A finished cv run (its results.json) is skipped on rerun; `--summarise` only prints the table.

Usage: PYTHONPATH=src python benchmarks/phase_vs_qsm.py --out DIR [--seeds 31 32 33] [--subjects 30]
       [--methods aprl,frodo] [--profile quick] [--threads 1] [--summarise]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from data_size_curve import simulate

SOURCES = ("qsm", "phase")


def run_cv(cohort: Path, source: str, methods: str, profile: str, out: Path, cache: Path, threads: int) -> None:
    """One `prlkit cv` of `methods` on `cohort` reading `source`, unless its results.json exists."""
    if (out / "results.json").exists():
        return
    command = [sys.executable, "-m", "prlkit", "--threads", str(threads), "cv", str(cohort), "--methods", methods,
               "--out", str(out), "--profile", profile, "--bootstrap", "0", "--susceptibility", source,
               "--cache-dir", str(cache), "--no-progress"]
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL)


def collect(root: Path) -> pd.DataFrame:
    """Pooled out-of-fold ROC-AUC and PR-AUC of every (seed, source, method) run under `root`."""
    rows = []
    for path in sorted(root.glob("cv-*-*/oof_predictions.tsv")):
        _, seed, source = path.parent.name.split("-")
        oof = pd.read_csv(path, sep="\t")
        for method, group in oof.groupby("method"):
            rows.append({"seed": int(seed), "source": source, "method": method, "lesions": len(group),
                         "rim_pos": int(group["label"].sum()),
                         "roc_auc": roc_auc_score(group["label"], group["probability"]),
                         "pr_auc": average_precision_score(group["label"], group["probability"])})
    return pd.DataFrame(rows)


def summary_table(rows: pd.DataFrame) -> str:
    """Markdown: per method, QSM and phase side by side, mean ± SD over the seeds both finished."""
    def mean_sd(values: pd.Series) -> str:
        return f"{values.mean():.2f}" if len(values) == 1 else f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"

    lines = ["| method | seeds | QSM ROC-AUC | phase ROC-AUC | QSM PR-AUC | phase PR-AUC |",
             "|---|---|---|---|---|---|"]
    for method, group in rows.groupby("method"):
        paired = group.pivot_table(index="seed", columns="source", values=["roc_auc", "pr_auc"])
        if set(paired.columns.get_level_values("source")) != set(SOURCES) or paired.dropna().empty:
            continue  # no seed with both runs finished yet
        paired = paired.dropna()
        cells = [mean_sd(paired[(metric, source)]) for metric in ("roc_auc", "pr_auc") for source in SOURCES]
        lines.append(f"| {method} | {len(paired)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[31, 32, 33])
    parser.add_argument("--subjects", type=int, default=30)
    parser.add_argument("--methods", default="aprl,frodo")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--summarise", action="store_true", help="only print the table of what is there")
    args = parser.parse_args()
    if not args.summarise:
        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
        for seed in args.seeds:
            cohort = simulate(args.out / f"cohort-{seed}", args.subjects, seed, "default")
            for source in SOURCES:
                run_cv(cohort, source, args.methods, args.profile, args.out / f"cv-{seed}-{source}",
                       args.out / "cache", args.threads)
                print(f"seed {seed} {source}: done", file=sys.stderr, flush=True)
    rows = collect(args.out)
    print(summary_table(rows) if len(rows) else "no finished runs yet")
    if len(rows):
        (args.out / "phase_vs_qsm.json").write_text(json.dumps(rows.to_dict(orient="records"), indent=1))


if __name__ == "__main__":
    main()
