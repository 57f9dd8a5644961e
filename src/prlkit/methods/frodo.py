"""The main method end to end: cross-modal pretraining, supervised fine-tuning, threshold, calibration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from prlkit.config import Config
from prlkit.data.cache import PatchSet
from prlkit.eval.calibration import brier_score, fit_calibrator
from prlkit.eval.metrics import pr_auc, roc_auc, select_threshold_f1
from prlkit.methods.trained import TrainedModel
from prlkit.models.frodo import FrodoNet
from prlkit.train.augment import random_symmetries
from prlkit.train.loop import FitResult, Split, fit
from prlkit.train.stages import CrossModalPretraining, SupervisedFinetuning, predict_probabilities

IMAGE_CHANNELS = 2  # QSM and FLAIR; frodo does not use the gating-mask channel


def lesion_split(patch_set: PatchSet, index: np.ndarray, channels: int = IMAGE_CHANNELS) -> Split:
    """The patches (float16, as cached) and rim labels of lesion-table rows `index`."""
    rows = patch_set.lesions.loc[index]
    if (rows["patch"] < 0).any():
        raise ValueError("lesions without a patch (excluded) cannot be used for training")
    x = torch.from_numpy(np.ascontiguousarray(patch_set.patches[rows["patch"].to_numpy(), :channels]))
    y = torch.tensor(rows["rim"].astype(int).to_numpy())
    return Split(x=x, y=y)


def train_frodo(
    patch_set: PatchSet,
    train_index: np.ndarray,
    val_index: np.ndarray,
    config: Config,
    run_dir: Path,
    device: torch.device,
    resume: bool = False,
    progress: bool = True,
) -> tuple[TrainedModel, dict[str, FitResult]]:
    """Train the two-stream network on `train_index` lesions; validation lesions drive early
    stopping, the F1 threshold and the calibration. Returns the model and each stage's fit."""
    train, val = lesion_split(patch_set, train_index), lesion_split(patch_set, val_index)
    seed = config.finetune.seed
    fits: dict[str, FitResult] = {}
    net = FrodoNet(config.frodo, seed=seed)
    if config.pretrain.kind != "none":
        pretraining = CrossModalPretraining(
            FrodoNet(config.frodo, seed=seed), len(train.y), config.pretrain.batch_size, config.pretrain.kind,
            config.pretrain.stop_gradient, config.pretrain.temperature, seed=seed,
        )  # fmt: skip
        fits["pretrain"] = fit(
            pretraining, train, val, config.pretrain, run_dir / "pretrain", device,
            augment=random_symmetries, resume=resume, progress=progress, description="pretrain",
        )  # fmt: skip
        net.load_pretrained_state_dict(pretraining.net.pretrained_state_dict())
    finetuning = SupervisedFinetuning(net, train.y.numpy(), config.finetune.batch_size, config.finetune.supcon_temperature)
    fits["finetune"] = fit(
        finetuning, train, val, config.finetune, run_dir / "finetune", device,
        augment=random_symmetries, resume=resume, progress=progress, description="finetune",
    )  # fmt: skip
    y_val = val.y.numpy()
    raw = predict_probabilities(net, val.x, device)
    calibrator = fit_calibrator(config.finetune.calibration, y_val, raw, train_prior=0.5)
    calibrated = calibrator.apply(raw)
    model = TrainedModel(
        method="frodo",
        module=net.eval(),
        model_config=dataclasses.asdict(config.frodo),
        config=config,
        threshold=select_threshold_f1(y_val, calibrated),
        calibrator=calibrator,
        training=_training_summary(patch_set.lesions, train_index, val_index, y_val, calibrated, fits),
    )
    return model, fits


def _training_summary(lesions: pd.DataFrame, train_index, val_index, y_val, p_val, fits) -> dict:
    train_rows = lesions.loc[train_index]
    return {
        "n_train": int(len(train_index)),
        "n_train_rim_pos": int((train_rows["rim"] == 1).sum()),
        "n_val": int(len(val_index)),
        "n_val_rim_pos": int(y_val.sum()),
        "participants": int(lesions.loc[np.r_[train_index, val_index], "participant_id"].nunique()),
        "val_pr_auc": float(pr_auc(y_val, p_val)),
        "val_roc_auc": float(roc_auc(y_val, p_val)),
        "val_brier": float(brier_score(y_val, p_val)),
        "stages": {name: {"best_epoch": r.best_epoch, "best_score": r.best_score, "epochs_run": r.epochs_run}
                   for name, r in fits.items()},
    }
