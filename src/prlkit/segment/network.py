"""The segmentation network: MONAI UNet (or BasicUNet) with 3 output classes."""

from __future__ import annotations

from monai.networks.nets import BasicUNet, UNet
from torch import nn

from prlkit.config import SegmentConfig
from prlkit.segment.volumes import CLASS_NAMES


def input_channels(config: SegmentConfig) -> int:
    """QSM and FLAIR, plus the binary lesion mask when `lesion_channel` is set."""
    return 3 if config.lesion_channel else 2


def build_segmentation_network(config: SegmentConfig) -> nn.Module:
    """An untrained 3D network mapping (B, C, X, Y, Z) to (B, 3, X, Y, Z) class logits."""
    if config.network == "basicunet":
        return BasicUNet(spatial_dims=3, in_channels=input_channels(config), out_channels=len(CLASS_NAMES),
                         features=config.channels, dropout=config.dropout,
                         norm=(config.norm, {"affine": True}) if config.norm == "instance" else config.norm)  # fmt: skip
    return UNet(spatial_dims=3, in_channels=input_channels(config), out_channels=len(CLASS_NAMES),
                channels=config.channels, strides=config.strides, num_res_units=config.res_units,
                norm=config.norm, dropout=config.dropout)  # fmt: skip
