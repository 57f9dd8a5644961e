"""Difficulty calibration of the synthetic cohort: a hand-crafted QSM baseline and trivial statistics.

Per lesion of at least 110 voxels: shell-minus-core QSM contrast, 90th percentile of the edge
shell, log volume -> logistic regression, participant-grouped stratified 5-fold CV, out-of-fold
ROC-AUC and PR-AUC against the expert `rim` label. Single trivial statistics (volume, mean QSM in
the lesion, location class) should not separate the classes (ROC-AUC <= 0.75).

Usage: PYTHONPATH=src python benchmarks/synth_difficulty.py [--cohort DIR | --subjects 36 --seed 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from prlkit.synth.calibration import BASELINE_FEATURES, cohort_features, grouped_cv_scores, trivial_aucs
from prlkit.synth.cohort import write_cohort
from prlkit.synth.profiles import get_profile


def evaluate(root: Path) -> None:
    truth = pd.read_csv(root / "sourcedata" / "truth.tsv", sep="\t")
    features = cohort_features(root, truth)
    x, y, groups = features[BASELINE_FEATURES].to_numpy(), features["rim"].to_numpy(), features["participant_id"]
    per_subject = truth.groupby("participant_id")["rim"].sum()
    print(f"cohort: {truth['participant_id'].nunique()} participants, {len(truth)} lesions, "
          f"{truth['rim'].mean():.1%} Rim+ (expert), participants with 0 / >=4 Rim+: "
          f"{(per_subject == 0).sum()} / {(per_subject >= 4).sum()}")
    scores = [grouped_cv_scores(x, y, groups.to_numpy(), seed=seed) for seed in range(5)]
    table = pd.DataFrame(scores)
    print(f"lesions >= 110 voxels: {scores[0]['n_lesions']}, Rim+ {scores[0]['prevalence']:.1%}")
    print(f"baseline ({', '.join(BASELINE_FEATURES)}), 5 fold-seeds: ROC-AUC {table.roc_auc.mean():.3f} "
          f"± {table.roc_auc.std():.3f}, PR-AUC {table.pr_auc.mean():.3f} ± {table.pr_auc.std():.3f}")
    for name, auc in trivial_aucs(features).items():
        print(f"trivial statistic {name}: ROC-AUC {auc:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, help="an existing cohort folder (else one is generated)")
    parser.add_argument("--subjects", type=int, default=36)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if args.cohort:
        evaluate(args.cohort)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cohort"
        write_cohort(root, args.subjects, args.seed, get_profile("default"), jobs=args.jobs)
        evaluate(root)


if __name__ == "__main__":
    main()
