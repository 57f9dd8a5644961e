"""The CNN baselines (ResNet-18, RimNet, Deep-PRL) trained by the same loop as the main method.

One honest protocol: every method gets the same patches, folds, validation split, epoch budget,
early stopping on validation PR-AUC, augmentation (cube symmetries), calibration and F1 threshold
(the `finetune` section of the config). What stays method-specific is the network, its input
channels, its loss and its sampling: ResNet-18 — BCE with the class-balanced sampler (main paper's
baseline); RimNet — class-weighted BCE, random batches, ±2-voxel crop shifts (RimNet §2.4);
Deep-PRL — focal loss γ=2 with every sample weighted by α=0.2 (released code; `network.focal_weighting:
class` for α on Rim+ and 1 − α on Rim-) with the balanced sampler. Optimiser, learning
rate and schedule are each paper's (the registry's recipe: RimNet Adam 1e-4 stepped down on
plateau, Deep-PRL Adam 1e-4 with weight decay 3e-5 and polynomial decay; ResNet-18 the main
method's AdamW); a config's `methods.<name>.finetune` changes them, `network` the architecture.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prlkit.methods.contract import TrainingJob
from prlkit.methods.finalize import finalize
from prlkit.methods.networks import build_network, network_config
from prlkit.methods.splits import lesion_split
from prlkit.methods.trained import TrainedModel
from prlkit.models.baselines.crop import random_shifts
from prlkit.train.augment import training_augmentation
from prlkit.train.loop import FitResult, fit
from prlkit.train.losses import focal_loss
from prlkit.train.sampling import balanced_batches, shuffled_batches
from prlkit.train.stages import validation_pr_auc


@dataclass(frozen=True)
class Recipe:
    """What differs between the CNN baselines' training."""

    loss: str  # bce | weighted_bce | focal
    balanced: bool  # class-balanced sampler (else random batches)
    shift: int = 0  # crop shift in voxels (networks with a fixed input size)


class SupervisedTraining:
    """A network whose forward gives logits, trained with the recipe's loss and sampling."""

    monitor = "max"
    score_name = "val_pr_auc"

    def __init__(self, net: nn.Module, train_labels: np.ndarray, batch_size: int, recipe: Recipe):
        self.net = self.module = net
        self.train_labels, self.batch_size, self.recipe = np.asarray(train_labels), batch_size, recipe
        positives = max(int(self.train_labels.sum()), 1)
        self.pos_weight = torch.tensor((len(self.train_labels) - positives) / positives)
        alpha = getattr(getattr(net, "config", None), "focal_alpha", 0.2)
        self.focal_alpha = 1.0 - positives / len(self.train_labels) if alpha == "balanced" else float(alpha)
        self.focal_weighting = getattr(getattr(net, "config", None), "focal_weighting", "uniform")

    def batches(self, generator: torch.Generator) -> list[torch.Tensor]:
        if self.recipe.balanced:
            return balanced_batches(self.train_labels, self.batch_size, generator)
        return shuffled_batches(len(self.train_labels), self.batch_size, generator)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.recipe.shift:
            logits = self.net(x, shifts=random_shifts(len(x), self.recipe.shift)).float()
        else:
            logits = self.net(x).float()
        target = y.float()
        if self.recipe.loss == "focal":
            return focal_loss(logits, target, gamma=2.0, alpha=self.focal_alpha, weighting=self.focal_weighting)
        pos_weight = self.pos_weight.to(logits.device) if self.recipe.loss == "weighted_bce" else None
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)

    def score(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return validation_pr_auc(self.net, x, y)


def train_supervised(job: TrainingJob, *, network: str, recipe: Recipe) -> tuple[TrainedModel, dict[str, FitResult]]:
    """Train one CNN baseline on the job's training lesions; validation drives stopping, threshold, calibration."""
    config = job.config
    model_config = network_config(network, config.network)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.finetune.seed)  # reproducible initialisation
        net = build_network(network, dataclasses.asdict(model_config))
    train, val = lesion_split(job.patch_set, job.train_index), lesion_split(job.patch_set, job.val_index)
    stage = SupervisedTraining(net, train.y.numpy(), config.finetune.batch_size, recipe)
    fits = {"train": fit(stage, train, val, config.finetune, job.run_dir / "train", job.device,
                         augment=training_augmentation(config.finetune), resume=job.resume, progress=job.progress,
                         description=network)}
    return finalize(job, net, network=network, model_config=model_config, val=val, fits=fits), fits
