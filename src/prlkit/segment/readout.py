"""From voxel probabilities to lesion scores, and the paper's metrics (global F1, Dice per class)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from prlkit.eval.metrics import decision_metrics
from prlkit.segment.volumes import CLASS_NAMES, NON_PRL, PRL


def lesion_scores(prl_probability: np.ndarray, instances: np.ndarray, ids: np.ndarray) -> pd.DataFrame:
    """Per lesion id: mean and max PRL probability over its voxels (NaN for an id with no voxels)."""
    ids = np.asarray(ids, dtype=int)
    if ids.size == 0:
        return pd.DataFrame({"index": ids, "prl_mean": np.zeros(0), "prl_max": np.zeros(0)})
    with np.errstate(invalid="ignore"):  # 0/0 for an id without voxels -> NaN
        mean = np.asarray(ndimage.mean(prl_probability, labels=instances, index=ids), dtype=float)
    maximum = np.asarray(ndimage.maximum(prl_probability, labels=instances, index=ids), dtype=float)
    return pd.DataFrame({"index": ids, "prl_mean": mean, "prl_max": np.where(np.isnan(mean), np.nan, maximum)})


def confusion_matrix(target: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """3x3 voxel counts, rows = target class, columns = predicted class (one bincount)."""
    n = len(CLASS_NAMES)
    return np.bincount(target.ravel().astype(np.int64) * n + predicted.ravel(), minlength=n * n).reshape(n, n)


def dice_per_class(confusion: np.ndarray) -> dict[str, float]:
    """Dice of the non-PRL and PRL classes from a confusion matrix; NaN where a class is absent from both."""
    result = {}
    for label in (NON_PRL, PRL):
        denominator = confusion[label, :].sum() + confusion[:, label].sum()
        dice = 2 * confusion[label, label] / denominator if denominator else np.nan
        result[f"dice_{CLASS_NAMES[label]}"] = float(dice)
    return result


def soft_dice_terms(target: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per lesion class (non-PRL, PRL): [sum of its probability over its voxels, sum of its probability,
    its voxel count]; terms of several volumes pool by addition."""
    return np.array([[probabilities[c][target == c].sum(), probabilities[c].sum(), np.count_nonzero(target == c)]
                     for c in (NON_PRL, PRL)], dtype=float)


def soft_dice(terms: np.ndarray) -> float:
    """Mean over the lesion classes of the soft Dice 2·Σ(p·t) / (Σp + Σt): smooth, and above 0 for a rare
    class long before it wins any argmax (the early-stopping score)."""
    return float(np.mean(2 * terms[:, 0] / np.maximum(terms[:, 1] + terms[:, 2], 1e-12)))


def detection_f1(labels: np.ndarray, decisions: np.ndarray) -> float:
    """Global F1 of PRL lesion detection: all lesions pooled, a lesion detected when its score passes the threshold."""
    return decision_metrics(np.asarray(labels, dtype=int), np.asarray(decisions, dtype=int))["f1"]
