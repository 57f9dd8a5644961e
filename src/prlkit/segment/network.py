"""The segmentation network: MONAI UNet, BasicUNet or UNETR with 3 output classes."""

from __future__ import annotations

import importlib.util

from monai.networks.nets import UNETR, BasicUNet, UNet
from torch import nn

from prlkit.config import SegmentConfig
from prlkit.errors import PrlkitError
from prlkit.segment.volumes import CLASS_NAMES


def input_channels(config: SegmentConfig) -> int:
    """QSM and FLAIR, plus the binary lesion mask when `lesion_channel` is set."""
    return 3 if config.lesion_channel else 2


def build_segmentation_network(config: SegmentConfig) -> nn.Module:
    """An untrained 3D network mapping (B, C, X, Y, Z) to (B, 3, X, Y, Z) class logits."""
    if config.network == "basicunet":
        return BasicUNet(spatial_dims=3, in_channels=input_channels(config), out_channels=len(CLASS_NAMES),
                         features=config.channels, dropout=config.dropout,
                         norm=(config.norm, {"affine": True}) if config.norm == "instance" else config.norm)
    if config.network == "unetr":  # a ViT encoder on 16^3 tokens of one patch_size^3 window
        if importlib.util.find_spec("einops") is None:
            raise PrlkitError("segment.network unetr needs the einops package: pip install einops "
                              "(or the prlkit[unetr] extra)")
        return UNETR(in_channels=input_channels(config), out_channels=len(CLASS_NAMES), img_size=config.patch_size,
                     feature_size=config.feature_size, hidden_size=config.hidden_size, mlp_dim=config.mlp_dim,
                     num_heads=config.num_heads, norm_name=config.norm, dropout_rate=config.dropout,
                     spatial_dims=3)
    return UNet(spatial_dims=3, in_channels=input_channels(config), out_channels=len(CLASS_NAMES),
                channels=config.channels, strides=config.strides, num_res_units=config.res_units,
                norm=config.norm, dropout=config.dropout)
