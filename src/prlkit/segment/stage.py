"""Training the segmentation network as a `Stage` of the shared loop (checkpoints, resume, bf16)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from monai.losses import DiceCELoss
from torch import nn

from prlkit.config import SegmentConfig
from prlkit.eval.metrics import pr_auc
from prlkit.segment.inference import class_probabilities, lesion_region
from prlkit.segment.readout import confusion_matrix, lesion_scores, soft_dice, soft_dice_terms
from prlkit.segment.sampling import PatchSampler
from prlkit.segment.volumes import PRL, SegmentVolume


def scored_lesions(volume: SegmentVolume, probabilities: np.ndarray, config: SegmentConfig) -> pd.DataFrame:
    """The volume's lesion table with prl_mean, prl_max and `score` (the configured, uncalibrated lesion score)."""
    scores = lesion_scores(probabilities[PRL], volume.instances, volume.lesions["index"].to_numpy())
    table = volume.lesions.merge(scores, on="index", how="left")
    return table.assign(score=table[f"prl_{config.lesion_score}"])


@dataclass(frozen=True)
class ValidationOutputs:
    """Scored labelled, included lesions of the validation volumes; pooled voxel confusion and soft-Dice terms."""

    lesions: pd.DataFrame
    confusion: np.ndarray
    soft_terms: np.ndarray


def validation_outputs(net: nn.Module, volumes: list[SegmentVolume], config: SegmentConfig,
                       device: torch.device) -> ValidationOutputs:
    """Everything validation needs, from one inference per volume restricted to its lesion box plus
    one patch of margin."""
    tables, confusion, soft = [], 0, 0
    for volume in volumes:
        probabilities = class_probabilities(net, volume.image, config, device,
                                            lesion_region(volume.instances, config.patch_size))
        confusion = confusion + confusion_matrix(volume.target, probabilities.argmax(0))
        soft = soft + soft_dice_terms(volume.target, probabilities)
        table = scored_lesions(volume, probabilities, config)
        tables.append(table[(table["excluded"] == "") & table["rim"].notna()])
    return ValidationOutputs(pd.concat(tables, ignore_index=True), np.asarray(confusion), np.asarray(soft))


class SegmentationTraining:
    """Dice + cross-entropy (MONAI DiceCELoss, softmax, Dice over the whole batch, `class_weights`) on sampled patches.

    Validation is whole-volume: `score` receives the indices of the validation volumes it holds and
    returns the mean soft Dice of the non-PRL and PRL classes, or the lesion-level PR-AUC of the PRL score.
    """

    monitor = "max"

    def __init__(self, net: nn.Module, sampler: PatchSampler, val_volumes: list[SegmentVolume], config: SegmentConfig):
        self.net = self.module = net
        self.sampler, self.val_volumes, self.config = sampler, val_volumes, config
        self.criterion = DiceCELoss(to_onehot_y=True, softmax=True, batch=True,
                                    weight=torch.tensor(config.class_weights))
        self.score_name = f"val_{config.val_score}"

    def batches(self, generator: torch.Generator) -> list[torch.Tensor]:
        return self.sampler.batches(generator, self.config.train.batch_size)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion.to(x.device)(self.net(x).float(), y.unsqueeze(1))

    def score(self, x: torch.Tensor, y: torch.Tensor) -> float:
        device = next(self.net.parameters()).device
        outputs = validation_outputs(self.net, [self.val_volumes[i] for i in y.tolist()], self.config, device)
        if self.config.val_score == "soft_dice":
            return soft_dice(outputs.soft_terms)
        return pr_auc(outputs.lesions["rim"].astype(int).to_numpy(), outputs.lesions["score"].to_numpy())
