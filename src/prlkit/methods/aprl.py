"""APRL in the shared harness: a random forest on the cached lesion features, no torch training.

The pipeline (scaler, SMOTE, forest; mtry by inner CV) is fitted on the training rows only, so
SMOTE never sees validation or test lesions; calibration (train prior 0.5: SMOTE balances to 1:1)
and the F1 threshold come from the validation rows, as for every method. The model file holds
the training rows and the chosen mtry instead of a pickled forest (`APRLModel`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from prlkit.config import Config
from prlkit.data.cache import PatchSet
from prlkit.methods.finalize import finalize
from prlkit.methods.registry import network_config
from prlkit.methods.splits import lesion_split
from prlkit.methods.trained import TrainedModel
from prlkit.models.baselines.aprl import APRLConfig, APRLModel
from prlkit.train.loop import FitResult


def train_aprl(
    patch_set: PatchSet,
    train_index: np.ndarray,
    val_index: np.ndarray,
    config: Config,
    run_dir: Path,
    device: torch.device,
    resume: bool = False,
    progress: bool = True,
) -> tuple[TrainedModel, dict[str, FitResult]]:
    """Tune and fit APRL on `train_index` lesions; validation gives the threshold and calibration.

    `run_dir`, `resume` and `progress` are accepted for the harness's sake: fitting takes seconds.
    """
    rows = patch_set.lesions.loc[train_index]
    features = np.asarray(patch_set.features[rows.index.to_numpy()], dtype=np.float64)
    labels = rows["rim"].astype(int).to_numpy()
    model = APRLModel.trained(features, labels, network_config("aprl", config.network, APRLConfig),
                               seed=config.finetune.seed)
    fits = {"forest": FitResult(best_epoch=0, best_score=model.classifier.inner_auc, epochs_run=1)}
    val = lesion_split(patch_set, val_index)
    trained = finalize("aprl", model, model.config, config, val, patch_set.lesions, train_index, val_index, fits,
                       device)  # fmt: skip
    trained.training["features"] = list(patch_set.feature_names)
    return trained, fits
