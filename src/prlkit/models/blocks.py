"""3D building blocks of the two-stream network: pre-activation residual blocks, spatial FiLM, SE.

Squeeze-and-excitation is MONAI's ``ChannelSELayer`` (GAP -> Linear C->C//r -> ReLU ->
Linear C//r->C -> sigmoid -> channel scaling; a Linear on the pooled vector is the same
map as the paper's 1x1x1 convolution on the pooled 1x1x1 map).
"""

from __future__ import annotations

import math

import torch
from monai.networks.blocks import ChannelSELayer
from torch import nn

from prlkit.config import FRODO_NORMS


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with ``gcd(groups, channels)`` groups, so any channel width is accepted."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def norm_layer(kind: str, channels: int, groups: int) -> nn.Module:
    """``group`` (:func:`group_norm`, per-sample statistics) or ``batch`` (BatchNorm3d, batch statistics).

    Per-sample normalisation rescales every patch by its own statistics, which removes the
    absolute susceptibility level that makes QSM quantitative; batch statistics keep it.
    """
    if kind == "group":
        return group_norm(channels, groups)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    raise ValueError(f"norm must be one of {FRODO_NORMS}, not {kind!r}")


class ResidualBlock3D(nn.Module):
    """Pre-activation residual block (He et al. 2016): norm -> ReLU -> conv3 -> norm -> ReLU -> conv3, plus skip.

    The skip is a 1x1x1 convolution (same stride) when the stride or the width changes,
    the identity otherwise. ``norm`` is ``group`` (GroupNorm with ``groups`` groups, see
    :func:`group_norm`) or ``batch`` (see :func:`norm_layer`).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 8, norm: str = "group"):
        super().__init__()
        self.norm1 = norm_layer(norm, in_channels, groups)
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm2 = norm_layer(norm, out_channels, groups)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        if stride != 1 or in_channels != out_channels:
            self.skip: nn.Module = nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False)
        else:
            self.skip = nn.Identity()
        self.recalibrate: nn.Module = nn.Identity()
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
        return self.recalibrate(residual).add_(self.skip(x))  # in place: no operand is saved for backward


class SEResidualBlock3D(ResidualBlock3D):
    """Pre-activation residual block whose residual branch is recalibrated by squeeze-and-excitation.

    SE sits on the residual branch before the addition, as in SE-ResNet (Hu et al. 2018).
    The bottleneck has ``max(1, out_channels // se_reduction)`` units (reduction clamped to
    the width so small test widths still build).
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 8, se_reduction: int = 16,
        norm: str = "group",
    ):
        super().__init__(in_channels, out_channels, stride=stride, groups=groups, norm=norm)
        self.recalibrate = ChannelSELayer(spatial_dims=3, in_channels=out_channels, r=min(se_reduction, out_channels))


class SpatialFiLM(nn.Module):
    """Spatial FiLM: FLAIR map F modulates QSM map Q voxel-wise, then [Q', F] is mixed back to C channels.

    gamma(F), beta(F) are 1x1x1 convolutions of F and Q' = Q * (1 + gamma) + beta.
    The gamma/beta convolutions are initialised to zero, so at initialisation Q' = Q
    (identity modulation) and QSM stays the dominant signal; FLAIR conditioning is learned.
    The mix is a 1x1x1 convolution from 2C to C channels with PyTorch's default init.
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
