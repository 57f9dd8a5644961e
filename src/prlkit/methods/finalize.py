"""After training, on validation data only: calibration, the F1 threshold and the training summary."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import torch
from scipy import stats

from prlkit.eval.calibration import Calibrator, brier_score, fit_calibrator
from prlkit.eval.metrics import AUTHORS_THRESHOLD_GRID, pr_auc, roc_auc, select_threshold_f1, strictly_above
from prlkit.methods.contract import TrainingJob
from prlkit.methods.trained import TrainedModel
from prlkit.train.loop import FitResult, Split
from prlkit.train.stages import predict_probabilities

log = logging.getLogger("prlkit")


def finalize(
    job: TrainingJob,
    net: torch.nn.Module,
    *,
    network: str,
    model_config: Any,
    val: Split,
    fits: dict[str, FitResult],
    train_prior: float = 0.5,
) -> TrainedModel:
    """The trained model of `job`: `net` (a `network`) calibrated on validation (`train_prior`: the Rim+
    prior the model was trained at, 0.5 with balanced sampling, class weighting or SMOTE), threshold
    maximising F1 on validation (see :func:`decision_threshold`)."""
    config, lesions = job.config, job.patch_set.lesions
    y_val = val.y.numpy()
    raw = predict_probabilities(net, val.x, job.device, features=val.features)
    calibrator = fit_calibrator(config.finetune.calibration, y_val, raw, train_prior=train_prior)
    calibrated = calibrator.apply(raw)
    train_rows = lesions.loc[job.train_index]
    training = {
        "n_train": len(job.train_index),
        "n_train_rim_pos": int((train_rows["rim"] == 1).sum()),
        "n_val": len(job.val_index),
        "n_val_rim_pos": int(y_val.sum()),
        "participants": int(lesions.loc[np.r_[job.train_index, job.val_index], "participant_id"].nunique()),
        "val_pr_auc": float(pr_auc(y_val, calibrated)),
        "val_roc_auc": float(roc_auc(y_val, calibrated)),
        "val_brier": float(brier_score(y_val, calibrated)),
        "val_chance_p": chance_p_value(y_val, raw),
        "stages": {name: {"best_epoch": r.best_epoch, "best_score": r.best_score, "epochs_run": r.epochs_run}
                   for name, r in fits.items()},
    }
    return TrainedModel(
        network=network,
        method=job.method,
        module=net.eval(),
        model_config=json_ready(dataclasses.asdict(model_config)),
        config=config,
        threshold=decision_threshold(config.finetune.threshold_on, y_val, raw, calibrator),
        calibrator=calibrator,
        training=training,
    )


CHANCE_ALPHA = 0.05  # a validation ROC-AUC not significantly above 0.5 at this level gets a warning
# fewer validation Rim+ than this get a warning whatever their p-value: at 15 participants (2-3 validation Rim+)
# three of six `quick` runs were at chance on new participants (benchmarks/README.md, "The `quick` profile since
# 2026-12-07 on the learning-curve cohorts"); a few lucky validation lesions cannot show that
MIN_VAL_RIM_POS = 5


def warn_about_validation(label: str, training: dict[str, Any]) -> None:
    """Log :func:`validation_warning` of a trained model's summary, if any; `label` names the model for
    the user (`train`: the method; `cv`: the method and fold)."""
    warning = validation_warning(label, training) if "val_chance_p" in training else None  # not prlseg's
    if warning:
        log.warning("%s", warning)


def validation_warning(method: str, training: dict[str, Any]) -> str | None:
    """One line when the validation set cannot vouch for the model: too few Rim+ to judge it, or a ROC-AUC
    not significantly above chance; None when it can."""
    n_pos, n_val = training["n_val_rim_pos"], training["n_val"]
    measured = (f"validation ROC-AUC {training['val_roc_auc']:.2f} ({n_pos} Rim+ of {n_val} lesions, one-sided "
                f"Mann-Whitney p = {training['val_chance_p']:.2g})")
    if n_pos < MIN_VAL_RIM_POS:
        return (f"{method}: {measured}: fewer than {MIN_VAL_RIM_POS} validation Rim+ lesions are too few to tell "
                "whether the model learned to tell Rim+ lesions apart, and its threshold and calibration rest on "
                "them too (a larger validation split: `prlkit train --val-fraction`, config `split.val_fraction`)")
    if not training["val_chance_p"] < CHANCE_ALPHA:
        return (f"{method}: {measured} is not significantly better than chance: the model may not have learned "
                "to tell Rim+ lesions apart, or the validation set is too small to show it")
    return None


def chance_p_value(y_val: np.ndarray, scores: np.ndarray) -> float:
    """One-sided Mann-Whitney U p-value that Rim+ validation lesions score higher than Rim- ones
    (U / (n+ n-) is the ROC-AUC, so this tests ROC-AUC > 0.5); 1.0 when a class is missing."""
    positives, negatives = scores[y_val == 1], scores[y_val == 0]
    if positives.size == 0 or negatives.size == 0:
        return 1.0
    return float(stats.mannwhitneyu(positives, negatives, alternative="greater").pvalue)


def decision_threshold(scale: str, y_val: np.ndarray, raw: np.ndarray, calibrator: Calibrator) -> float:
    """The F1-optimal validation threshold, for the rule calibrated p >= threshold that prlkit applies.

    ``raw`` (the authors' evaluate.py): t over 0.00-1.00 on the uncalibrated probabilities with the rule
    p > t, carried to the calibrated scale (calibrators are increasing, so the decisions are the same).
    ``calibrated``: the search on calibrated probabilities, grid 0.01-0.99, rule p >= t.
    """
    if scale == "calibrated":
        return select_threshold_f1(y_val, calibrator.apply(raw))
    raw_threshold = select_threshold_f1(y_val, raw, grid=AUTHORS_THRESHOLD_GRID, strict=True)
    return strictly_above(float(calibrator.apply(np.array([raw_threshold]))[0]))


def json_ready(values: dict[str, Any]) -> dict[str, Any]:
    """Tuples as lists, so the model config survives a JSON round trip unchanged."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}
