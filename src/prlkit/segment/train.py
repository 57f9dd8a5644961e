"""Train the segmentation network on whole sessions; validation sessions drive early stopping and the threshold."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from prlkit.config import Config
from prlkit.data.bids import PrlkitWarning
from prlkit.errors import PrlkitError
from prlkit.eval.calibration import brier_score, fit_calibrator
from prlkit.eval.folds import split_development
from prlkit.eval.metrics import pr_auc, roc_auc, select_threshold_f1
from prlkit.methods.contract import TrainingJob
from prlkit.segment.model import UNCALIBRATED, SegmentationModel
from prlkit.segment.network import build_segmentation_network
from prlkit.segment.readout import dice_per_class, soft_dice
from prlkit.segment.sampling import PatchSampler
from prlkit.segment.stage import SegmentationTraining, validation_outputs
from prlkit.segment.volumes import SegmentVolume, load_segment_volume
from prlkit.train.loop import FitResult, Split, fit


def train_segmentation(train_volumes: list[SegmentVolume], val_volumes: list[SegmentVolume], config: Config,
                       run_dir: Path, device: torch.device, resume: bool = False,
                       progress: bool = True) -> tuple[SegmentationModel, FitResult]:
    """Fit the network on patches of `train_volumes`; on `val_volumes` (whole): early stopping, then the
    calibration of the lesion score (`segment.calibration`) and the threshold that maximises the
    lesion-level F1 of the calibrated probability."""
    if config.patches.voxel_mm > 0:
        warnings.warn("prlseg segments whole volumes on the image's own grid: patches.voxel_mm is ignored",
                      PrlkitWarning, stacklevel=2)
    seg = config.segment
    val_labels = pd.concat([v.lesions for v in val_volumes])["rim"] if val_volumes else pd.Series(dtype="Int64")
    if not ((val_labels == 1).any() and (val_labels == 0).any()):
        raise PrlkitError("segmentation: the validation sessions need Rim+ and Rim- lesions")
    if not train_volumes:
        raise PrlkitError("segmentation: no training sessions")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seg.train.seed)  # reproducible initialisation
        net = build_segmentation_network(seg)
    sampler = PatchSampler(train_volumes, seg)
    stage = SegmentationTraining(net, sampler, val_volumes, seg)
    volume_ids = torch.arange(len(val_volumes))  # the stage holds the validation volumes themselves
    result = fit(stage, Split(sampler.x, sampler.y), Split(volume_ids, volume_ids), seg.train, run_dir, device,
                 resume=resume, progress=progress, description="prlseg")
    outputs = validation_outputs(net, val_volumes, seg, device)
    y, score = outputs.lesions["rim"].astype(int).to_numpy(), outputs.lesions["score"].to_numpy()
    calibrator = UNCALIBRATED if seg.calibration == "none" else fit_calibrator(seg.calibration, y, score)
    probability = calibrator.apply(score)
    training = {
        "n_train_sessions": len(train_volumes),
        "n_val_sessions": len(val_volumes),
        "n_val": len(y),
        "n_val_rim_pos": int(y.sum()),
        "val_pr_auc": pr_auc(y, probability),
        "val_roc_auc": roc_auc(y, probability),
        "val_brier_raw": brier_score(y, score),
        "val_brier": brier_score(y, probability),
        **{f"val_{name}": value for name, value in dice_per_class(outputs.confusion).items()},
        "val_soft_dice": soft_dice(outputs.soft_terms),
        "stages": {"train": {"best_epoch": result.best_epoch, "best_score": result.best_score,
                             "epochs_run": result.epochs_run}},
    }
    model = SegmentationModel(module=net.eval(), config=config, threshold=select_threshold_f1(y, probability),
                              training=training, calibrator=calibrator)
    return model, result


def participant_split(lesions: pd.DataFrame, train_index: np.ndarray, val_index: np.ndarray,
                      config: Config) -> tuple[list[str], list[str]]:
    """Training and validation participants of a development split; disjoint, because the network
    sees whole volumes (a lesion-level split is redone by participant with the same fraction and seed)."""
    if config.split.by != "lesion":
        train, val = lesions.loc[train_index], lesions.loc[val_index]
    else:
        dev = lesions.loc[np.r_[train_index, val_index]]
        train_rows, val_rows = split_development(dev, val_fraction=config.split.val_fraction, by="participant",
                                                 seed=config.split.seed)
        train, val = dev.loc[train_rows], dev.loc[val_rows]
    return sorted(train["participant_id"].unique()), sorted(val["participant_id"].unique())


def train_prlseg(job: TrainingJob) -> tuple[SegmentationModel, dict[str, FitResult]]:
    """The `prlseg` method for the cross-validation harness: every session of the development
    participants, split by participant into training and validation volumes."""
    config = job.config
    train_ids, val_ids = participant_split(job.patch_set.lesions, job.train_index, job.val_index, config)

    def volumes(participants: list[str]) -> list[SegmentVolume]:
        return [load_segment_volume(files, config) for files in job.patch_set.sessions
                if files.participant_id in participants]

    model, result = train_segmentation(volumes(train_ids), volumes(val_ids), config, job.run_dir / "train", job.device,
                                       resume=job.resume, progress=job.progress)
    return model, {"train": result}
