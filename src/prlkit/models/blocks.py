"""3D building blocks of the two-stream network: pre-activation residual blocks, spatial FiLM, SE.

Shapes and rules follow the authors' released code (veronicapignedoli/FRODO, ``frodo/model.py``);
the code is prlkit's own. Squeeze-and-excitation is MONAI's ``ChannelSELayer`` (GAP -> Linear
C->C//r -> ReLU -> Linear -> sigmoid -> channel scaling): a Linear on the pooled vector is the same
map as the authors' 1x1x1 convolution on the pooled 1x1x1 map (``prlkit.models.authors`` converts).
"""

from __future__ import annotations

import torch
from monai.networks.blocks import ChannelSELayer
from torch import nn

from prlkit.config import FRODO_NORMS

GROUP_CHOICES = (16, 8, 4, 2, 1)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with the largest of 16, 8, 4, 2, 1 groups that divides ``channels`` (the authors' rule)."""
    return nn.GroupNorm(next(g for g in GROUP_CHOICES if channels % g == 0), channels)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``group`` (:func:`group_norm`, per-sample statistics) or ``batch`` (BatchNorm3d, batch statistics).

    Per-sample normalisation rescales every patch by its own statistics, which removes the
    absolute susceptibility level that makes QSM quantitative; batch statistics keep it.
    """
    if kind == "group":
        return group_norm(channels)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    raise ValueError(f"norm must be one of {FRODO_NORMS}, not {kind!r}")


def squeeze_excite(channels: int, reduction: int = 16) -> ChannelSELayer:
    """SE with a bottleneck of max(1, channels // reduction) units (the authors' rule; MONAI's layer)."""
    return ChannelSELayer(spatial_dims=3, in_channels=channels, r=min(reduction, channels))


class ResidualBlock3D(nn.Module):
    """Pre-activation residual block (He et al. 2016): norm -> ReLU -> conv3 -> norm -> ReLU -> conv3, plus skip.

    The skip reads the block input before its normalisation: a 1x1x1 convolution without bias
    (same stride) when the stride or the width changes, the identity otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, norm: str = "group"):
        super().__init__()
        self.norm1 = norm_layer(norm, in_channels)
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm2 = norm_layer(norm, out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        if stride != 1 or in_channels != out_channels:
            self.skip: nn.Module = nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False)
        else:
            self.skip = nn.Identity()
        self.relu = nn.ReLU(inplace=True)  # on a norm's (or the folded conv's) fresh output: saves a copy

    def fold_batch_norm(self) -> None:
        """Fold ``norm2`` (BatchNorm in eval mode) into ``conv1`` (weights rescaled, bias added): inference only.

        Exact up to float rounding; ``norm1`` stays (it normalises the block input, which the skip also
        reads unnormalised). A no-op for GroupNorm, whose statistics depend on the sample.
        """
        if not isinstance(self.norm2, nn.BatchNorm3d):
            return
        if self.norm2.training:
            raise RuntimeError("fold_batch_norm needs the block in eval mode (running statistics)")
        self.conv1 = torch.nn.utils.fusion.fuse_conv_bn_eval(self.conv1, self.norm2)
        self.norm2 = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv1(self.relu(self.norm1(x)))
        residual = self.conv2(self.relu(self.norm2(residual)))
        return residual.add_(self.skip(x))  # in place: no operand is saved for backward


class SpatialFiLM(nn.Module):
    """Spatial FiLM: FLAIR map F modulates QSM map Q voxel-wise, then [Q', F] is mixed back to C channels.

    gamma(F), beta(F) are 1x1x1 convolutions (with bias) of F and Q' = Q * (1 + gamma) + beta.
    The gamma/beta convolutions are initialised to zero, so at initialisation Q' = Q
    (identity modulation) and QSM stays the dominant signal; FLAIR conditioning is learned.
    The mix is a 1x1x1 convolution with bias from 2C to C channels with PyTorch's default init.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Conv3d(channels, channels, 1)
        self.beta = nn.Conv3d(channels, channels, 1)
        self.mix = nn.Conv3d(2 * channels, channels, 1)
        for conv in (self.gamma, self.beta):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def modulate(self, q: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """Return Q' = Q * (1 + gamma(F)) + beta(F)."""
        return q * (1 + self.gamma(f)) + self.beta(f)

    def forward(self, q: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([self.modulate(q, f), f], dim=1))
