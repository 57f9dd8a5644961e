"""MONAI 3D ResNet-18 on the (gated) QSM + FLAIR patch: the main paper's generic CNN baseline.

`monai.networks.nets.resnet18(spatial_dims=3, n_input_channels=2, num_classes=1)` with MONAI's
defaults (7^3 stem with stride 1, max-pool, BatchNorm, shortcut type B): 33,183,361 parameters.
No paper/released-code split: this is the library model exactly as the main paper's baseline uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.networks.nets import resnet18
from torch import nn


@dataclass(frozen=True)
class ResNet18Config:
    channels: tuple[int, ...] = (0, 1)  # patch channels fed to the network: QSM, FLAIR


class ResNet18Baseline(nn.Module):
    """MONAI ResNet-18 returning one logit per patch."""

    def __init__(self, config: ResNet18Config = ResNet18Config()):
        super().__init__()
        self.config = config
        self.net = resnet18(spatial_dims=3, n_input_channels=len(config.channels), num_classes=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, S, S, S) patches -> logits (B,)."""
        return self.net(x[:, list(self.config.channels)]).squeeze(1)
