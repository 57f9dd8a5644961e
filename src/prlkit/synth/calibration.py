"""Difficulty check of a synthetic cohort: hand-crafted per-lesion QSM features, a logistic
regression under participant-grouped cross-validation, and single trivial statistics."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FULL = ndimage.generate_binary_structure(3, 3)
BASELINE_FEATURES = ["shell_minus_core", "shell_p90", "log_volume"]


def lesion_features(qsm: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Per lesion: volume, mean QSM, core and edge-shell statistics (shell = 1 voxel either side
    of the lesion border, other lesions excluded; core = lesion minus its border). A lesion too thin to
    have a core and wholly enclosed by other lesions has no shell: its shell statistics are NaN."""
    rows = []
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None:
            continue
        box = tuple(slice(max(0, s.start - 2), min(n, s.stop + 2)) for s, n in zip(found, labels.shape))
        lesion = labels[box] == index
        values = qsm[box]
        core = ndimage.binary_erosion(lesion, structure=FULL)
        if not core.any():
            core = lesion
        ring = ndimage.binary_dilation(lesion, structure=FULL) & (labels[box] == 0)
        shell = (lesion & ~core) | ring
        has_shell = bool(shell.any())
        rows.append(dict(index=index, voxels=int(lesion.sum()), mean_qsm=float(values[lesion].mean()),
                         shell_minus_core=float(values[shell].mean() - values[core].mean()) if has_shell else np.nan,
                         shell_p90=float(np.percentile(values[shell], 90)) if has_shell else np.nan,
                         log_volume=float(np.log(lesion.sum()))))
    return pd.DataFrame(rows)


def cohort_features(root: Path, truth: pd.DataFrame, min_voxels: int = 110) -> pd.DataFrame:
    """Features of every lesion of at least `min_voxels` in a cohort folder, joined to its truth row."""
    tables = []
    for pid, rows in truth.groupby("participant_id", sort=False):
        qsm = np.asarray(nib.load(Path(root) / pid / "anat" / f"{pid}_Chimap.nii.gz").dataobj)
        labels = np.asarray(nib.load(Path(root) / "derivatives" / "lesions" / pid / "anat"
                                     / f"{pid}_desc-lesions_dseg.nii.gz").dataobj)
        features = lesion_features(qsm, labels).merge(rows, on="index")
        tables.append(features[features["voxels"] >= min_voxels])
    return pd.concat(tables, ignore_index=True)


def grouped_cv_scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5,
                      seed: int = 0) -> dict[str, float]:
    """Out-of-fold ROC-AUC and PR-AUC of a logistic regression, folds split by participant."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = np.zeros(len(y))
    for train, test in splitter.split(x, y, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1000))
        model.fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    return {"roc_auc": float(roc_auc_score(y, scores)), "pr_auc": float(average_precision_score(y, scores)),
            "prevalence": float(y.mean()), "n_lesions": len(y)}


def trivial_aucs(features: pd.DataFrame) -> dict[str, float]:
    """ROC-AUC of single trivial statistics, each in its better direction (max(auc, 1 - auc));
    location uses its in-sample Rim+ rate per class, an upper bound for a categorical."""
    y = features["rim"].to_numpy()
    out = {}
    for column in ("voxels", "mean_qsm"):
        auc = roc_auc_score(y, features[column])
        out[column] = float(max(auc, 1 - auc))
    rate = features.groupby("location")["rim"].transform("mean")
    out["location"] = float(roc_auc_score(y, rate))
    return out
