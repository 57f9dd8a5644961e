"""RimNet (Barquero et al., NeuroImage: Clinical 2020): two VGG-like 3D branches, QSM main and FLAIR second.

Each branch: three blocks of two 3x3x3 convolutions (tanh, optional BatchNorm) and a 2^3 max-pool,
widths 32/64/128, then a 1x1x1 convolution to one channel. FLAIR's block-1 output is concatenated
into the QSM branch only (before its block 2). The two flattened maps are concatenated and go
through fully connected layers 256 -> 128 -> 64 -> 1. Input: 28^3 cubes (other patch sizes are
centre-cropped or zero-padded, see `crop.py`). Phase in the paper is QSM here.

Paper vs released code. Two released codes exist: the official TensorFlow/tflearn RimNet and the
PyTorch port (`ModularRimNet` / `BimodalRimNet` of the Streamline-RimNet/Deep-PRL repository).
- FC activations: the paper's figure shows tanh throughout; both released codes stack the Linear
  layers with no activation between them (the head is one affine map). Default: released code,
  `fc_tanh=False`; `True` is the paper's figure.
- Topology (`topology`): `torch` (default, the PyTorch port: BatchNorm, 2^3 max-pools with stride 2
  in ceil mode, 4^3 maps and 128 inputs to the first Linear at 28^3, 1,848,387 parameters) or `tf`
  (the TensorFlow code: tflearn's `max_pool_3d` has stride 1 with 'same' padding, so the maps stay
  28^3 and the first Linear takes 2 x 28^3 = 43,904 inputs; no BatchNorm; 13,053,251 parameters with
  one logit, 13,053,316 with their two outputs).
  `batch_norm` defaults to the topology's choice and can be set either way.
- Xavier-uniform 3x3x3 convolutions; truncated normals (std 0.02, tflearn's default) for the 1x1x1
  reductions and Linear layers, as in both released codes.
- Output: the paper/code use 2-class softmax; here one logit (BCE-equivalent: z1 - z0).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from monai.networks.blocks import Convolution
from torch import nn

from prlkit.errors import PrlkitError
from prlkit.models.baselines.crop import crop_cubes

QSM, FLAIR, MASK = 0, 1, 2  # patch channels (prlkit.data.patches)


TOPOLOGIES = ("torch", "tf")


@dataclass(frozen=True)
class RimNetConfig:
    input_size: int = 28
    widths: tuple[int, int, int] = (32, 64, 128)
    batch_norm: bool | None = None  # None: the topology's choice (torch: True, tf: False)
    fc_widths: tuple[int, ...] = (256, 128, 64)
    fc_tanh: bool = False  # released codes: no activation between the Linear layers; True: the paper's figure
    topology: str = "torch"  # torch: the PyTorch port (pool stride 2) | tf: the TensorFlow code (pool stride 1)

    def __post_init__(self) -> None:
        if self.topology not in TOPOLOGIES:
            raise PrlkitError(f"rimnet topology must be one of {', '.join(TOPOLOGIES)}, not {self.topology!r}")
        if self.batch_norm is None:
            object.__setattr__(self, "batch_norm", self.topology == "torch")

    @property
    def pool_stride(self) -> int:
        """Stride of the 2^3 max-pools: 2 in the PyTorch port, 1 in tflearn's `max_pool_3d` (TF code)."""
        return 2 if self.topology == "torch" else 1


def max_pool(stride: int) -> nn.Module:
    """2^3 max-pool: stride 2 in ceil mode (PyTorch port), or stride 1 with TF's 'same' padding (one
    trailing voxel per axis, padded with -inf so it never wins), which keeps the map size."""
    if stride == 2:
        return nn.MaxPool3d(kernel_size=2, ceil_mode=True)
    return nn.Sequential(nn.ConstantPad3d((0, 1) * 3, float("-inf")), nn.MaxPool3d(kernel_size=2, stride=1))


class ConvBlock(nn.Sequential):
    """Two 3x3x3 convolutions with tanh (BatchNorm before it when enabled), then a 2^3 max-pool."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool, pool_stride: int = 2):
        norm = "batch" if batch_norm else None
        super().__init__(
            Convolution(3, in_channels, out_channels, kernel_size=3, act="tanh", norm=norm),
            Convolution(3, out_channels, out_channels, kernel_size=3, act="tanh", norm=norm),
            max_pool(pool_stride),
        )


class VGGBranch(nn.Module):
    """Three ConvBlocks and a 1x1x1 reduction to one channel; `extra_channels` join before block 2."""

    def __init__(self, widths: tuple[int, int, int], batch_norm: bool, extra_channels: int = 0, pool_stride: int = 2):
        super().__init__()
        w1, w2, w3 = widths
        self.block1 = ConvBlock(1, w1, batch_norm, pool_stride)
        self.block2 = ConvBlock(w1 + extra_channels, w2, batch_norm, pool_stride)
        self.block3 = ConvBlock(w2, w3, batch_norm, pool_stride)
        self.reduce = nn.Conv3d(w3, 1, kernel_size=1)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 1, s, s, s) -> (flattened reduced map (B, pooled_voxels(s)), block-1 output)."""
        first = self.block1(x)
        hidden = first if extra is None else torch.cat([extra, first], dim=1)
        return self.reduce(self.block3(self.block2(hidden))).flatten(1), first


def pooled_voxels(size: int, pools: int = 3, stride: int = 2) -> int:
    """Voxels left of a size^3 cube after `pools` 2^3 max-pools of `stride` (ceil mode, or 'same' at stride 1)."""
    for _ in range(pools):
        size = math.ceil(size / stride)
    return size**3


def fc_head(in_features: int, widths: tuple[int, ...], tanh: bool) -> nn.Sequential:
    """Linear layers in_features -> widths... -> 1, with tanh between them or nothing (released code)."""
    dims = (in_features, *widths, 1)
    layers: list[nn.Module] = []
    for n, (a, b) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(a, b))
        if tanh and n < len(dims) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def init_rimnet_weights(module: nn.Module) -> None:
    """Xavier-uniform 3x3x3 convolutions, truncated-normal (std 0.02) 1x1x1 and Linear layers, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d) and m.kernel_size == (3, 3, 3):
            nn.init.xavier_uniform_(m.weight)
        elif isinstance(m, (nn.Conv3d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
        else:
            continue
        nn.init.zeros_(m.bias)


class RimNet(nn.Module):
    """Two-branch RimNet returning one logit per patch."""

    def __init__(self, config: RimNetConfig = RimNetConfig()):
        super().__init__()
        self.config = config
        stride = config.pool_stride
        self.flair = VGGBranch(config.widths, config.batch_norm, pool_stride=stride)
        self.qsm = VGGBranch(config.widths, config.batch_norm, extra_channels=config.widths[0], pool_stride=stride)
        self.head = fc_head(2 * pooled_voxels(config.input_size, stride=stride), config.fc_widths, config.fc_tanh)
        init_rimnet_weights(self)

    def forward(self, x: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C>=2, S, S, S) patches -> logits (B,); `shifts` (B, 3) moves the 28^3 crop (training)."""
        x = crop_cubes(x, self.config.input_size, shifts)
        flair, flair_first = self.flair(x[:, FLAIR : FLAIR + 1])
        qsm, _ = self.qsm(x[:, QSM : QSM + 1], extra=flair_first)
        return self.head(torch.cat([flair, qsm], dim=1)).squeeze(1)
