"""Training the segmentation network as a `Stage` of the shared loop (checkpoints, resume, bf16)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from monai.losses import DiceCELoss
from torch import nn

from prlkit.config import SegmentConfig
from prlkit.eval.metrics import pr_auc
from prlkit.segment.inference import class_probabilities, lesion_region
from prlkit.segment.readout import confusion_matrix, dice_per_class, lesion_scores
from prlkit.segment.sampling import PatchSampler
from prlkit.segment.volumes import PRL, SegmentVolume


def scored_lesions(volume: SegmentVolume, probabilities: np.ndarray, config: SegmentConfig,
                   threshold: float | None = None) -> pd.DataFrame:  # fmt: skip
    """The volume's lesion table with prl_mean, prl_max and `probability` (the configured lesion score);
    with a `threshold`, also `rim_pred` (1 where probability >= threshold)."""
    scores = lesion_scores(probabilities[PRL], volume.instances, volume.lesions["index"].to_numpy())
    table = volume.lesions.merge(scores, on="index", how="left")
    table = table.assign(probability=table[f"prl_{config.lesion_score}"])
    if threshold is not None:
        table["rim_pred"] = (table["probability"].fillna(0.0) >= threshold).astype(int)
    return table


def validation_outputs(net: nn.Module, volumes: list[SegmentVolume], config: SegmentConfig,
                       device: torch.device) -> tuple[pd.DataFrame, np.ndarray]:  # fmt: skip
    """Scored labelled, included lesions of all volumes and the pooled 3x3 voxel confusion matrix
    (inference restricted to each volume's lesion box plus one patch of margin)."""
    tables, confusion = [], 0
    for volume in volumes:
        probabilities = class_probabilities(net, volume.image, config, device,
                                            lesion_region(volume.instances, config.patch_size))  # fmt: skip
        confusion = confusion + confusion_matrix(volume.target, probabilities.argmax(0))
        table = scored_lesions(volume, probabilities, config)
        tables.append(table[(table["excluded"] == "") & table["rim"].notna()])
    return pd.concat(tables, ignore_index=True), np.asarray(confusion)


class SegmentationTraining:
    """Dice + cross-entropy (MONAI DiceCELoss, softmax, Dice over the whole batch) on sampled patches.

    Validation is whole-volume: `score` receives the indices of the validation volumes it holds and
    returns the lesion-level PR-AUC of the PRL score, or the mean of the non-PRL and PRL Dice.
    """

    monitor = "max"

    def __init__(self, net: nn.Module, sampler: PatchSampler, val_volumes: list[SegmentVolume], config: SegmentConfig):
        self.net = self.module = net
        self.sampler, self.val_volumes, self.config = sampler, val_volumes, config
        self.criterion = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
        self.score_name = f"val_{config.val_score}"

    def batches(self, generator: torch.Generator) -> list[torch.Tensor]:
        return self.sampler.batches(generator, self.config.train.batch_size)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.net(x).float(), y.unsqueeze(1))

    def score(self, x: torch.Tensor, y: torch.Tensor) -> float:
        device = next(self.net.parameters()).device
        lesions, confusion = validation_outputs(self.net, [self.val_volumes[i] for i in y.tolist()], self.config, device)
        if self.config.val_score == "dice":
            return float(np.nanmean(list(dice_per_class(confusion).values())))
        return pr_auc(lesions["rim"].astype(int).to_numpy(), lesions["probability"].to_numpy())
