"""Deep-PRL (Spagnolo et al., ISMRM abstract): RimNet-style branches guided by the dilated lesion mask.

Three inputs: [dilated lesion mask, FLAIR, QSM] (the paper uses MP2RAGE and phase; the released code
takes FLAIR or T1 and QSM or phase). The mask goes through one ConvBlock (the released code's
"attention branch"); its output is concatenated into block 1's output of *both* image branches,
which are otherwise RimNet's VGG-like branches (widths 32/64/128, tanh, BatchNorm, 1x1x1
reduction). The flattened image-branch maps are concatenated and go through Linear layers
128 -> 32 -> 1 (128 = 2 x 4^3 at the 28^3 input). Loss (applied by the training harness, with the
class-balanced sampler as the released code's `WeightedRandomSampler`): focal, gamma 2, alpha 0.2.
The released code multiplies every sample's loss by alpha (`focal_weighting: uniform`, default);
`focal_weighting: class` is Lin et al.'s alpha_t, prlkit's earlier reading: alpha for Rim+ and
1 - alpha for Rim-, so Rim- counts 4x more on top of the balanced sampler; with it,
`focal_alpha: balanced` sets alpha to 1 - the training Rim+ fraction.

Paper vs released code (`rimnet_archs_mod.BinaryDeepPRL` / `modular_rimnet_mod.ModularRimNet`):
the abstract gives no layer details, so the released code is the default throughout, including
its head without activation between the Linear layers (`fc_tanh=False`; `True` adds tanh as in
RimNet's paper). The released code's 2-class softmax output is one logit here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prlkit.errors import PrlkitError
from prlkit.models.baselines.crop import crop_cubes
from prlkit.models.baselines.rimnet import (
    FLAIR,
    MASK,
    QSM,
    ConvBlock,
    VGGBranch,
    fc_head,
    init_rimnet_weights,
    pooled_voxels,
)
from prlkit.train.losses import FOCAL_WEIGHTINGS


@dataclass(frozen=True)
class DeepPRLConfig:
    input_size: int = 28
    widths: tuple[int, int, int] = (32, 64, 128)
    batch_norm: bool = True
    fc_widths: tuple[int, ...] = (32,)
    fc_tanh: bool = False  # released code: no activation between the Linear layers
    focal_alpha: float | str = 0.2  # released code: 0.2; "balanced" (class weighting only): 1 - Rim+ fraction
    focal_weighting: str = "uniform"  # uniform: every sample x alpha (released code) | class: alpha_t (prlkit)

    def __post_init__(self) -> None:
        if self.focal_weighting not in FOCAL_WEIGHTINGS:
            raise PrlkitError(f"deepprl focal_weighting must be one of {', '.join(FOCAL_WEIGHTINGS)}, "
                              f"not {self.focal_weighting!r}")
        if self.focal_alpha == "balanced":
            if self.focal_weighting != "class":
                raise PrlkitError("deepprl focal_alpha: balanced weighs the classes: it needs focal_weighting: class")
        elif not (isinstance(self.focal_alpha, (int, float)) and 0 < self.focal_alpha < 1):
            raise PrlkitError(f"deepprl focal_alpha must be in (0, 1) or 'balanced', not {self.focal_alpha!r}")


class DeepPRL(nn.Module):
    """Mask-guided two-branch network returning one logit per patch; needs the mask channel."""

    def __init__(self, config: DeepPRLConfig = DeepPRLConfig()):
        super().__init__()
        self.config = config
        w1 = config.widths[0]
        self.mask = ConvBlock(1, w1, config.batch_norm)
        self.flair = VGGBranch(config.widths, config.batch_norm, extra_channels=w1)
        self.qsm = VGGBranch(config.widths, config.batch_norm, extra_channels=w1)
        self.head = fc_head(2 * pooled_voxels(config.input_size), config.fc_widths, config.fc_tanh)
        init_rimnet_weights(self)

    def forward(self, x: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, 3, S, S, S) patches [QSM, FLAIR, mask] -> logits (B,); `shifts` (B, 3) moves the crop."""
        x = crop_cubes(x, self.config.input_size, shifts)
        mask = self.mask(x[:, MASK : MASK + 1])
        flair, _ = self.flair(x[:, FLAIR : FLAIR + 1], extra=mask)
        qsm, _ = self.qsm(x[:, QSM : QSM + 1], extra=mask)
        return self.head(torch.cat([flair, qsm], dim=1)).squeeze(1)
