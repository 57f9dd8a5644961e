"""QSMRim-Net trained by the shared loop: patch + standardised lesion features, DeepSMOTE in training.

Follows the harness protocol of `prlkit.methods.supervised` (same patches, folds, validation split,
cube-symmetry augmentation, calibration, F1 threshold). Method-specific, as the paper: the network
(`QSMRimNetClassifier`, released-code variant by default), its radiomics input (the paper's 527
pyradiomics features by default, standardised with the training rows' statistics only), random
batches (the paper balances by DeepSMOTE, not by sampling), BCE on the labels DeepSMOTE returns, the
paper's optimiser and schedule (registry recipe: Adam, lr 1e-4, batch 64, no weight decay, a fixed
40 epochs with x0.1 at 50/70/90 % of them, no early stopping: the last epoch is kept) and its
majority vote of 3 seeds (`seeds`, see `SeedVote`). `network: {features: first_order}` selects
prlkit's 25 built-in first-order features (no pyradiomics needed); without pyradiomics the default
is an error, never a silent switch.
"""

from __future__ import annotations

import dataclasses
from importlib.util import find_spec

import numpy as np
import torch
import torch.nn.functional as F

from prlkit.data.cache import with_feature_set
from prlkit.errors import PrlkitError
from prlkit.methods.contract import TrainingJob
from prlkit.methods.finalize import finalize
from prlkit.methods.networks import network_config
from prlkit.methods.splits import lesion_split
from prlkit.methods.trained import TrainedModel
from prlkit.models.baselines.qsmrimnet import QSMRimNetClassifier, SeedVote
from prlkit.train.augment import training_augmentation
from prlkit.train.loop import FitResult, fit
from prlkit.train.sampling import shuffled_batches
from prlkit.train.stages import validation_pr_auc


class QSMRimNetTraining:
    """BCE on QSMRim-Net's logits and DeepSMOTE-extended labels, random batches."""

    monitor = "max"
    score_name = "val_pr_auc"
    takes_features = True

    def __init__(self, net: QSMRimNetClassifier, n_train: int, batch_size: int):
        self.net = self.module = net
        self.n_train, self.batch_size = n_train, batch_size

    def batches(self, generator: torch.Generator) -> list[torch.Tensor]:
        """Random batches (a remainder of one sample joins the batch before it: BatchNorm1d needs two rows)."""
        return shuffled_batches(self.n_train, self.batch_size, generator)

    def loss(self, x: torch.Tensor, y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        logits, labels = self.net.training_logits(x, features, y.float())
        return F.binary_cross_entropy_with_logits(logits.float(), labels)

    def score(self, x: torch.Tensor, y: torch.Tensor, features: torch.Tensor) -> float:
        return validation_pr_auc(self.net, x, y, features)


def require_feature_set(features: str) -> None:
    """One clear error before any work when the paper's pyradiomics features are asked for but not installed."""
    if features == "pyradiomics" and find_spec("radiomics") is None:
        raise PrlkitError(
            "qsmrimnet uses the paper's 527 pyradiomics features, and pyradiomics is not installed: "
            "`pip install numpy setuptools wheel versioneer` then `pip install --no-build-isolation "
            "pyradiomics==3.0.1`, or choose prlkit's 25 first-order features explicitly with "
            "`methods: {qsmrimnet: {network: {features: first_order}}}` in a --config file"
        )


def smote_prior(labels: np.ndarray, per_positive: int) -> float:
    """Rim+ prior seen by the loss when DeepSMOTE adds `per_positive` rows per positive: (1+k)π / (1+kπ)."""
    prevalence = float(np.mean(labels))
    return (1 + per_positive) * prevalence / (1 + per_positive * prevalence)


def train_qsmrimnet(job: TrainingJob) -> tuple[TrainedModel, dict[str, FitResult]]:
    """Train QSMRim-Net on the job's training lesions; validation drives stopping, threshold and calibration."""
    config = job.config
    settings = network_config("qsmrimnet", config.network)
    require_feature_set(settings.features)
    patch_set = with_feature_set(job.patch_set, settings.features, config.lesions, progress=job.progress)
    train, val = lesion_split(patch_set, job.train_index), lesion_split(patch_set, job.val_index)
    model_config = dataclasses.replace(settings, radiomics_features=train.features.shape[1])
    members, fits = [], {}
    for k in range(model_config.seeds):  # the paper's vote: each member with its own seed
        recipe = dataclasses.replace(config.finetune, seed=config.finetune.seed + k)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)  # reproducible initialisation
            net = QSMRimNetClassifier(model_config)
        net.standardise_from(train.features.numpy())  # training rows only
        stage = QSMRimNetTraining(net, len(train.y), recipe.batch_size)
        name = "train" if model_config.seeds == 1 else f"train-seed{k}"
        fits[name] = fit(stage, train, val, recipe, job.run_dir / name, job.device,
                         augment=training_augmentation(recipe), resume=job.resume, progress=job.progress,
                         description=f"qsmrimnet {name}")
        members.append(net)
    module = members[0] if model_config.seeds == 1 else SeedVote(members)
    prior = smote_prior(train.y.numpy(), model_config.smote_neighbours)
    model = finalize(dataclasses.replace(job, patch_set=patch_set), module, network="qsmrimnet",
                     model_config=model_config, val=val, fits=fits, train_prior=prior)
    model.training["features"] = list(patch_set.feature_names)
    return model, fits
