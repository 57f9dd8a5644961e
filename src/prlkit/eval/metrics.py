"""Lesion-level metrics: threshold-free AUCs, the F1 threshold, confusion metrics, fold summaries.

Conventions used throughout `prlkit.eval`:

- Labels are 0 (Rim-) / 1 (Rim+); scores are probabilities of Rim+; a lesion is called Rim+
  when ``score >= threshold``.
- Threshold-free metrics (ROC-AUC, PR-AUC, partial AUC, curves, operating points, the F1
  threshold) are undefined on a single-class input and raise `PrlkitError`.
- Confusion-matrix metrics are returned as NaN when their denominator is 0 (e.g. sensitivity
  on a fold without Rim+ lesions), so a per-fold table never fails; fold summaries skip NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from prlkit.errors import PrlkitError

#: F1 grid search thresholds (the main paper's grid was lost in extraction): 0.01, 0.02, ..., 0.99.
DEFAULT_THRESHOLD_GRID = np.round(np.arange(1, 100) / 100, 2)
AUTHORS_THRESHOLD_GRID = np.round(np.arange(0, 101) / 100, 2)  # the authors' evaluate.py: 0.00, 0.01, ..., 1.00

#: Counts and rates returned by `decision_metrics`, in table order.
CONFUSION_KEYS = ("tp", "fp", "fn", "tn", "accuracy", "f1", "sensitivity", "specificity", "ppv", "npv")


def check_labels(y_true: np.ndarray | Sequence, *, both_classes: bool, what: str) -> np.ndarray:
    """Return `y_true` as an int array of 0/1; raise `PrlkitError` if not binary or (optionally) single-class."""
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size == 0:
        raise PrlkitError(f"{what}: labels must be a non-empty 1-D array, got shape {y.shape}")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise PrlkitError(f"{what}: labels contain NaN (unlabeled lesions must be dropped first)")
    if not np.isin(y, (0, 1)).all():
        raise PrlkitError(f"{what}: labels must be 0 or 1, got values {np.unique(y)[:5].tolist()}")
    y = y.astype(np.int64)
    if both_classes and np.unique(y).size < 2:
        raise PrlkitError(f"{what} is undefined: all {y.size} labels are {int(y[0])} (need both Rim+ and Rim-)")
    return y


def check_scores(y_true: np.ndarray | Sequence, y_score: np.ndarray | Sequence, *, both_classes: bool = True,
                 what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a label array and a finite score array of the same length."""
    y = check_labels(y_true, both_classes=both_classes, what=what)
    s = np.asarray(y_score, dtype=np.float64)
    if s.shape != y.shape:
        raise PrlkitError(f"{what}: {y.size} labels but scores of shape {s.shape}")
    if not np.isfinite(s).all():
        raise PrlkitError(f"{what}: scores contain NaN or infinite values")
    return y, s


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn)."""
    y, s = check_scores(y_true, y_score, what="ROC-AUC")
    return float(roc_auc_score(y, s))


def pr_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (scikit-learn; main paper's PR-AUC)."""
    y, s = check_scores(y_true, y_score, what="PR-AUC")
    return float(average_precision_score(y, s))


@dataclass(frozen=True)
class PartialAUC:
    """Partial ROC area over FPR in [0, max_fpr]: `raw` in [0, max_fpr], `standardized` (McClish) in [0.5, 1]."""

    max_fpr: float
    raw: float
    standardized: float


def mcclish_standardize(raw: float, max_fpr: float) -> float:
    """McClish (1989) standardised partial AUC, 0.5 for chance and 1 for a perfect ranking.

    0.5·(1 + (A − A_min)/(A_max − A_min)) with A_min = max_fpr²/2 (the diagonal), A_max = max_fpr.
    """
    a_min, a_max = 0.5 * max_fpr**2, max_fpr
    return float(0.5 * (1 + (raw - a_min) / (a_max - a_min)))


def partial_roc_auc(y_true: np.ndarray, y_score: np.ndarray, max_fpr: float = 0.1) -> PartialAUC:
    """Partial ROC-AUC for FPR <= max_fpr (QSMRim-Net §2.5 "pROC"), raw and McClish-standardised.

    The raw area integrates the ROC curve (linear between points, as scikit-learn does) up to
    `max_fpr`; the standardised value is `mcclish_standardize(raw)`, equal to scikit-learn's
    `roc_auc_score(max_fpr=...)` and R pROC's `auc(..., partial.auc.correct=TRUE)`. prlkit's
    tables report the standardised value (0.5 = chance, 1 = perfect) as `proc_auc`, and the raw
    area as `proc_auc_raw` (QSMRim-Net does not say which of the two its pROC AUC is).
    """
    if not 0 < max_fpr <= 1:
        raise PrlkitError(f"partial ROC-AUC: max_fpr must be in (0, 1], got {max_fpr}")
    y, s = check_scores(y_true, y_score, what="partial ROC-AUC")
    fpr, tpr, _ = roc_curve(y, s)
    stop = np.searchsorted(fpr, max_fpr, side="right")
    tpr_at_max = np.interp(max_fpr, fpr[stop - 1:stop + 1], tpr[stop - 1:stop + 1]) if stop < fpr.size else tpr[-1]
    x = np.append(fpr[:stop], max_fpr)
    yv = np.append(tpr[:stop], tpr_at_max)
    raw = float(auc(x, yv))
    return PartialAUC(max_fpr, raw, mcclish_standardize(raw, max_fpr))


def _counts_over_thresholds(y: np.ndarray, s: np.ndarray, thresholds: np.ndarray,
                            strict: bool = False) -> tuple[np.ndarray, ...]:
    """TP, FP, FN, TN for the rule ``s >= t`` (``s > t`` if `strict`) at every threshold, vectorised
    with sorted scores."""
    pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
    side = "right" if strict else "left"
    tp = pos.size - np.searchsorted(pos, thresholds, side=side)
    fp = neg.size - np.searchsorted(neg, thresholds, side=side)
    return tp, fp, pos.size - tp, neg.size - fp


def _ratio(num: np.ndarray | int, den: np.ndarray | int) -> np.ndarray:
    """num / den with NaN where den == 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def select_threshold_f1(y_val: np.ndarray, p_val: np.ndarray,
                        grid: np.ndarray | Sequence[float] = DEFAULT_THRESHOLD_GRID, strict: bool = False) -> float:
    """Threshold that maximises F1 on the validation split, by grid search (main paper §3.2, QSMRim-Net §2.5).

    Every grid value t is scored with the rule ``p >= t`` (``p > t`` with `strict`, as the authors'
    evaluate.py); among thresholds with the maximal F1 the smallest is returned (the most sensitive
    one, and the first an ascending search keeps), so the choice is deterministic.
    """
    y, s = check_scores(y_val, p_val, what="F1 threshold selection")
    thresholds = np.sort(np.asarray(grid, dtype=np.float64))
    if thresholds.size == 0:
        raise PrlkitError("F1 threshold selection: the threshold grid is empty")
    tp, fp, fn, _ = _counts_over_thresholds(y, s, thresholds, strict)
    f1 = np.nan_to_num(_ratio(2 * tp, 2 * tp + fp + fn), nan=-1.0)
    return float(thresholds[int(np.argmax(f1))])


def strictly_above(threshold: float) -> float:
    """The ``p >= t'`` threshold equal to the rule ``p > threshold`` on floats: the next float up, at most 1."""
    return min(1.0, float(np.nextafter(threshold, np.inf)))


def decision_metrics(y_true: np.ndarray, decision: np.ndarray) -> dict[str, float]:
    """Confusion counts and rates of binary decisions (keys `CONFUSION_KEYS`); NaN where a denominator is 0.

    F1 = 2TP / (2TP + FP + FN) is NaN only when there are neither Rim+ lesions nor Rim+ calls.
    """
    y = check_labels(y_true, both_classes=False, what="confusion metrics")
    d = check_labels(decision, both_classes=False, what="confusion metrics (decisions)")
    if d.shape != y.shape:
        raise PrlkitError(f"confusion metrics: {y.size} labels but {d.size} decisions")
    tp, fp = int(np.sum((y == 1) & (d == 1))), int(np.sum((y == 0) & (d == 1)))
    fn, tn = int(np.sum((y == 1) & (d == 0))), int(np.sum((y == 0) & (d == 0)))
    values = (tp, fp, fn, tn, _ratio(tp + tn, y.size), _ratio(2 * tp, 2 * tp + fp + fn), _ratio(tp, tp + fn),
              _ratio(tn, tn + fp), _ratio(tp, tp + fp), _ratio(tn, tn + fn))
    return {k: (v if isinstance(v, int) else float(v)) for k, v in zip(CONFUSION_KEYS, values)}


def threshold_metrics(y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> dict[str, float]:
    """`decision_metrics` of the rule ``score >= threshold``, plus the threshold itself."""
    y, s = check_scores(y_true, y_score, both_classes=False, what="threshold metrics")
    return {"threshold": float(threshold), **decision_metrics(y, (s >= threshold).astype(np.int64))}


def lesion_metrics(y_true: np.ndarray, y_score: np.ndarray, threshold: float, max_fpr: float = 0.1) -> dict[str, float]:
    """One per-fold table row: ROC-AUC, PR-AUC, partial ROC-AUC (raw and standardised) and `threshold_metrics`."""
    partial = partial_roc_auc(y_true, y_score, max_fpr)
    return {"n_lesions": int(np.size(y_true)), "n_rim": int(np.sum(y_true)), "roc_auc": roc_auc(y_true, y_score),
            "pr_auc": pr_auc(y_true, y_score), "proc_auc": partial.standardized, "proc_auc_raw": partial.raw,
            **threshold_metrics(y_true, y_score, threshold)}


def summarize_folds(per_fold: pd.DataFrame, ddof: int = 1) -> pd.DataFrame:
    """Mean ± SD of every numeric column of a per-fold table (one row per fold; a `fold` column is ignored).

    SD is the sample standard deviation (ddof=1 by default, as "mean ± SD across folds" is usually
    reported); NaN entries (an undefined metric in a fold) are skipped and `n` counts the folds used.
    Returns one row per metric with columns `mean`, `sd`, `n`.
    """
    numeric = per_fold.drop(columns="fold", errors="ignore").select_dtypes(include="number")
    if numeric.empty:
        raise PrlkitError("fold summary: the per-fold table has no numeric columns")
    return pd.DataFrame({"mean": numeric.mean(), "sd": numeric.std(ddof=ddof), "n": numeric.count()})


@dataclass(frozen=True)
class MeanCurve:
    """A fold-averaged curve on a common grid `x`: mean and SD (ddof=1) of `y` over the folds."""

    x: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    n_folds: int

    def area(self) -> float:
        """Area under the averaged curve (trapezoid on the grid; exact up to the grid step)."""
        return float(auc(self.x, self.mean))


def _average(x: np.ndarray, curves: list[np.ndarray]) -> MeanCurve:
    stack = np.vstack(curves)
    sd = stack.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros_like(x)
    return MeanCurve(x, stack.mean(axis=0), sd, len(curves))


def roc_step(y_true: np.ndarray, y_score: np.ndarray, fpr_grid: np.ndarray) -> np.ndarray:
    """TPR at each grid FPR by piecewise-constant interpolation: the best TPR reached at FPR <= x."""
    y, s = check_scores(y_true, y_score, what="ROC curve")
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return tpr[np.searchsorted(fpr, fpr_grid, side="right") - 1]


def pr_step(y_true: np.ndarray, y_score: np.ndarray, recall_grid: np.ndarray) -> np.ndarray:
    """Precision at each grid recall by piecewise-constant interpolation consistent with average precision.

    Precision at recall r is that of the highest threshold reaching recall >= r, so the area under
    the step curve is the average precision.
    """
    y, s = check_scores(y_true, y_score, what="PR curve")
    precision, recall, _ = precision_recall_curve(y, s)
    precision, recall = precision[::-1], recall[::-1]  # recall increasing
    return precision[np.searchsorted(recall, recall_grid, side="left")]


def mean_roc_curve(folds: Sequence[tuple[np.ndarray, np.ndarray]], max_fpr: float = 1.0,
                   n_points: int = 1001) -> MeanCurve:
    """Fold-averaged ROC curve (RimNet §2.7, QSMRim-Net §2.5): step-interpolate each fold's (labels, scores)."""
    grid = np.linspace(0.0, max_fpr, n_points)
    return _average(grid, [roc_step(y, s, grid) for y, s in folds])


def mean_pr_curve(folds: Sequence[tuple[np.ndarray, np.ndarray]], n_points: int = 1001) -> MeanCurve:
    """Fold-averaged precision-recall curve with step interpolation onto a common recall grid."""
    grid = np.linspace(0.0, 1.0, n_points)
    return _average(grid, [pr_step(y, s, grid) for y, s in folds])


def _check_target(target: float, what: str) -> None:
    if not 0 < target <= 1:
        raise PrlkitError(f"operating point: target {what} must be in (0, 1], got {target}")


def _operating_point(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float]:
    """Threshold metrics plus the review workload: lesions called Rim+ that an expert would check."""
    out = threshold_metrics(y, s, threshold)
    out["n_review"] = out["tp"] + out["fp"]
    out["review_fraction"] = out["n_review"] / y.size
    return out


def operating_point_at_specificity(y_true: np.ndarray, y_score: np.ndarray, target: float = 0.95) -> dict[str, float]:
    """The most sensitive threshold whose specificity is >= target (RimNet §2.7: 95 % specificity)."""
    _check_target(target, "specificity")
    y, s = check_scores(y_true, y_score, what="operating point at specificity")
    fpr, _tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    i = np.searchsorted(fpr, 1.0 - target + 1e-12, side="right") - 1  # last point with FPR <= 1 - target
    return _operating_point(y, s, float(thresholds[i]))


def operating_point_at_sensitivity(y_true: np.ndarray, y_score: np.ndarray, target: float = 0.95) -> dict[str, float]:
    """The most specific threshold whose sensitivity is >= target, with the expert review workload.

    QSMRim-Net §4 (Discussion) uses a high-sensitivity threshold so that an expert reviews only
    the lesions called Rim+ (`n_review` = TP + FP, `review_fraction` of all lesions) instead of
    every lesion. The paper's wording is "the largest sensitivity below 0.95"; prlkit takes the
    first point at or above the target, so the stated sensitivity is guaranteed.
    """
    _check_target(target, "sensitivity")
    y, s = check_scores(y_true, y_score, what="operating point at sensitivity")
    _, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    i = int(np.searchsorted(tpr, target - 1e-12, side="left"))  # first point with TPR >= target
    return _operating_point(y, s, float(thresholds[i]))
