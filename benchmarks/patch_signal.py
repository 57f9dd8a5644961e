"""Is the rim in the patches? Radial QSM profiles of the cached patches, scored by a linear model.

A diagnostic for issue 15: when a network does not learn, ask first whether the patches it is fed
still carry the rim. Per patch (the network's QSM and FLAIR channels, gated as configured): the mean
of each channel in one-voxel shells around the cube centre (radii 0..size/2) -> 2 × (size/2 + 1)
numbers; a logistic regression (scikit-learn, standardised) trained on a participant split (1/`--folds`
of the participants held out, seeded) is scored on the held-out lesions (ROC-AUC, PR-AUC). Beside it,
the same model on lesion volume alone and on the QSM profile alone. If the profile model separates
the classes and the network does not, the network or its training is the bottleneck, not the input.

Usage: PYTHONPATH=src python benchmarks/patch_signal.py COHORT [--profile quick] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from prlkit.config import get_profile
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set


def radial_profiles(patches: np.ndarray, channels: tuple[int, ...] = (0, 1)) -> np.ndarray:
    """(n, len(channels) × (s/2 + 1)): mean of each channel over the voxels whose rounded distance
    from the cube centre (index s // 2) is 0, 1, ..., s/2."""
    size = patches.shape[-1]
    grid = np.indices((size,) * 3) - size // 2
    shells = np.rint(np.sqrt((grid ** 2).sum(axis=0))).astype(int)
    radii = range(size // 2 + 1)
    means = [patches[:, c][:, shells == r].mean(axis=1) for c in channels for r in radii]
    return np.stack(means, axis=1).astype(np.float64)


def held_out_scores(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> dict:
    """ROC-AUC and PR-AUC of a standardised logistic regression on a seeded participant split."""
    split = GroupShuffleSplit(n_splits=1, test_size=1 / folds, random_state=seed)
    train, test = next(split.split(features, labels, groups))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
    model.fit(features[train], labels[train])
    score = model.predict_proba(features[test])[:, 1]
    return {"roc_auc": roc_auc_score(labels[test], score), "pr_auc": average_precision_score(labels[test], score),
            "test_lesions": len(test), "test_rim_pos": int(labels[test].sum())}


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    patch_set = build_patch_set(discover_cohort(args.cohort), get_profile(args.profile), args.cache_dir, progress=False)
    rows = patch_set.labelled()
    patches = np.asarray(patch_set.patches[rows["patch"].to_numpy()], dtype=np.float32)
    labels, groups = rows["rim"].astype(int).to_numpy(), rows["participant_id"].to_numpy()
    profiles = radial_profiles(patches)
    half = profiles.shape[1] // 2
    inputs = {"QSM + FLAIR radial profiles": profiles, "QSM radial profile": profiles[:, :half],
              "lesion volume": np.log(rows[["voxels"]].to_numpy(float))}
    print(f"{args.cohort}: {len(rows)} lesions ({labels.sum()} Rim+), profile {args.profile}")
    for name, features in inputs.items():
        scores = held_out_scores(features, labels, groups, args.folds, args.seed)
        print(f"{name:28s} ROC-AUC {scores['roc_auc']:.3f}  PR-AUC {scores['pr_auc']:.3f}  "
              f"(held out {scores['test_lesions']}, {scores['test_rim_pos']} Rim+)")


if __name__ == "__main__":
    main()
