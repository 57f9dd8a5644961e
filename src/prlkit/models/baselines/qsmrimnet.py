"""QSMRim-Net (Zhang et al., NeuroImage: Clinical 2022): 3D ResNet-18 + radiomics MLP + DeepSMOTE.

Image branch: ResNet-18 (BatchNorm, 7^3 stem with stride 2, max-pool, 1x1x1 + BN shortcuts without
bias) on the 2-channel QSM + FLAIR patch, global average pool -> 512. Radiomics branch: MLP
R -> 1024 (BatchNorm, SiLU = Swish, dropout 0.3) -> 512 (BatchNorm, SiLU), R = 527 with the
pyradiomics set (the default, as the paper), 25 with prlkit's built-in first-order set
(`features: first_order`; `radiomics_features` follows the set). Fusion, then the
DeepSMOTE MLP (Linear-BN-SiLU x 2 -> 512), oversampling of positives in the latent space during
training (`DeepSMOTE`), head 512 -> 128 (SiLU, dropout 0.5) -> 1. `QSMRimNetClassifier` adds the
standardisation of the raw lesion features (training-fold statistics, saved with the weights); it is
what the harness trains (`prlkit.methods.qsmrimnet`) and saves.

Paper vs released code (github.com/tinymilky/QSMRim-Net, `res18L4TwoRadsPlusSMOTENew`); the
released code is the default, `QSMRimNetConfig.paper()` gives the paper's variant:
- last ResNet stage: released code keeps stride 1 (`last_stage_stride=1`); the paper says ResNet-18
  (stride 2).
- fusion: released code sums the two 512-d vectors (`fusion="sum"`, DeepSMOTE MLP 512 -> 512); the
  paper concatenates them and "reduces 1024 to 512" with the first Linear of the DeepSMOTE MLP
  (`fusion="concat"`, MLP 1024 -> 512 -> 512).
- synthetic positives: paper, the 2 nearest other positives of each positive (N + 2n rows);
  released code, its 3 nearest positives including itself (N + 3n rows, n of them exact copies).
Paper and released code agree on the rest, which is the default: the 527 pyradiomics features and
the majority vote of 3 independently seeded networks (`seeds: 3`, `SeedVote`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from monai.networks.nets import ResNet
from torch import nn

from prlkit.errors import PrlkitError


@dataclass(frozen=True)
class QSMRimNetConfig:
    channels: tuple[int, ...] = (0, 1)  # patch channels: QSM, FLAIR
    radiomics_features: int = 527  # input width of the radiomics branch
    last_stage_stride: int = 1  # released code; the paper's ResNet-18 has 2
    fusion: str = "sum"  # "sum" (released code) or "concat" (paper)
    smote_neighbours: int = 3  # synthetic rows per positive
    smote_include_self: bool = True  # released code: the neighbours include the positive itself
    smote_min_positives: int = 3
    radiomics_dropout: float = 0.3
    head_hidden: int = 128
    head_dropout: float = 0.5
    features: str = "pyradiomics"  # lesion features (prlkit.data.features): pyradiomics (paper, 527) | first_order
    seeds: int = 3  # the paper's majority vote of three seeds (SeedVote); odd, 1 = a single network

    def __post_init__(self) -> None:
        if self.seeds < 1 or self.seeds % 2 == 0:
            raise PrlkitError(f"qsmrimnet seeds must be an odd number >= 1 (a majority vote), not {self.seeds}")

    @classmethod
    def paper(cls, **overrides) -> QSMRimNetConfig:
        """The variant the paper describes: stride-2 last stage, concatenation, 2 other neighbours."""
        paper = cls(last_stage_stride=2, fusion="concat", smote_neighbours=2, smote_include_self=False)
        return replace(paper, **overrides)


def linear_bn_silu(in_features: int, out_features: int) -> list[nn.Module]:
    """Linear, BatchNorm1d, SiLU (Swish): the unit of every QSMRim-Net MLP."""
    return [nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features), nn.SiLU()]


def resnet18_encoder(in_channels: int, last_stage_stride: int) -> ResNet:
    """MONAI ResNet-18 shaped as the released QSMRim-Net backbone: 512-d pooled features, no FC."""
    net = ResNet(
        "basic", [2, 2, 2, 2], [64, 128, 256, 512], spatial_dims=3, n_input_channels=in_channels,
        conv1_t_size=7, conv1_t_stride=2, shortcut_type="B", bias_downsample=False, feed_forward=False,
    )
    first = net.layer4[0]
    first.conv1.stride = first.downsample[0].stride = (last_stage_stride,) * 3
    return net


class DeepSMOTE(nn.Module):
    """Latent oversampling of positives: in training, appends rows alpha*x_p + (1-alpha)*x_nn labelled 1.

    For each positive (label > 0.5) its `neighbours` nearest positives in the batch (Euclidean; with
    `include_self` the positive itself counts as the first) give one synthetic row each, alpha ~ U(0, 1),
    appended after the batch with label 1. Identity in eval mode, without labels, or with fewer than
    `min_positives` positives.
    """

    def __init__(self, neighbours: int = 3, include_self: bool = True, min_positives: int = 3):
        super().__init__()
        self.neighbours, self.include_self, self.min_positives = neighbours, include_self, min_positives

    def forward(
        self, features: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """features (N, D), labels (N,) -> (N + k*n, D) features and labels."""
        if not self.training or labels is None:
            return features, labels
        positives = features[labels > 0.5]
        n = positives.shape[0]
        if n < max(self.min_positives, self.neighbours + 1 - self.include_self):
            return features, labels
        distances = torch.cdist(positives.detach(), positives.detach())
        distances.fill_diagonal_(float("inf"))
        others = self.neighbours - int(self.include_self)
        nearest = distances.topk(others, dim=1, largest=False).indices  # (n, others), nearest first
        if self.include_self:
            nearest = torch.cat([torch.arange(n, device=features.device)[:, None], nearest], dim=1)
        device = generator.device if generator is not None else features.device
        alpha = torch.rand(n, self.neighbours, 1, generator=generator, device=device).to(features)
        synthetic = alpha * positives[:, None, :] + (1 - alpha) * positives[nearest]
        synthetic = synthetic.reshape(n * self.neighbours, -1)
        return torch.cat([features, synthetic]), torch.cat([labels, labels.new_ones(synthetic.shape[0])])


class QSMRimNet(nn.Module):
    """Image + radiomics network; forward returns logits and the (possibly oversampled) labels."""

    def __init__(self, config: QSMRimNetConfig = QSMRimNetConfig()):
        super().__init__()
        if config.fusion not in ("sum", "concat"):
            raise ValueError(f"QSMRimNetConfig.fusion must be 'sum' or 'concat', not {config.fusion!r}")
        self.config = config
        self.encoder = resnet18_encoder(len(config.channels), config.last_stage_stride)
        self.radiomics = nn.Sequential(
            *linear_bn_silu(config.radiomics_features, 1024),
            nn.Dropout(config.radiomics_dropout),
            *linear_bn_silu(1024, 512),
        )
        fused = 512 if config.fusion == "sum" else 1024
        self.smote_mlp = nn.Sequential(*linear_bn_silu(fused, 512), *linear_bn_silu(512, 512))
        self.smote = DeepSMOTE(config.smote_neighbours, config.smote_include_self, config.smote_min_positives)
        self.head = nn.Sequential(
            nn.Linear(512, config.head_hidden), nn.SiLU(), nn.Dropout(config.head_dropout),
            nn.Linear(config.head_hidden, 1),
        )

    def forward(
        self,
        x: torch.Tensor,
        radiomics: torch.Tensor,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, C, S, S, S), radiomics (B, R) standardised, labels (B,) -> logits (B',), labels (B',).

        B' = B in eval mode or without labels; in training B' adds DeepSMOTE's synthetic positives,
        and the loss must use the returned labels.
        """
        image = self.encoder(x[:, list(self.config.channels)])
        rad = self.radiomics(radiomics)
        fused = image + rad if self.config.fusion == "sum" else torch.cat([image, rad], dim=1)
        latent, labels = self.smote(self.smote_mlp(fused), labels, generator)
        return self.head(latent).squeeze(1), labels


class QSMRimNetClassifier(nn.Module):
    """QSMRim-Net plus the standardisation of its radiomics input, so a saved model carries both.

    The mean and scale (float64 buffers) are set from the training rows only (`standardise_from`);
    `forward(x, features)` takes raw features and returns logits without oversampling (prediction),
    `training_logits` applies DeepSMOTE and returns the labels the loss must use.
    """

    takes_features = True

    def __init__(self, config: QSMRimNetConfig = QSMRimNetConfig()):
        super().__init__()
        self.net = QSMRimNet(config)
        width = config.radiomics_features
        self.register_buffer("feature_mean", torch.zeros(width, dtype=torch.float64))
        self.register_buffer("feature_scale", torch.ones(width, dtype=torch.float64))

    def standardise_from(self, train_features: np.ndarray) -> None:
        """Mean and population SD per feature of the training rows; constant features get scale 1."""
        features = np.asarray(train_features, dtype=np.float64)
        scale = features.std(axis=0)
        self.feature_mean.copy_(torch.from_numpy(features.mean(axis=0)))
        self.feature_scale.copy_(torch.from_numpy(np.where(scale > 0, scale, 1.0)))

    def standardise(self, features: torch.Tensor) -> torch.Tensor:
        """(features - training mean) / training SD, as float32."""
        return ((features.to(self.feature_mean) - self.feature_mean) / self.feature_scale).float()

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """x (B, C, S, S, S), raw features (B, R) -> logits (B,)."""
        return self.net(x, self.standardise(features))[0]

    def training_logits(
        self, x: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels with DeepSMOTE's synthetic positives appended (in training mode)."""
        return self.net(x, self.standardise(features), labels, generator)


class SeedVote(nn.Module):
    """The paper's majority vote of independently seeded QSMRim-Nets, as one continuous score.

    forward returns the median of the members' logits. For an odd number of members, thresholding
    the median at t gives exactly the majority vote of the members thresholded at t, for every t,
    so ROC/PR curves and the F1 threshold apply to the vote itself, not to a proxy.
    """

    takes_features = True

    def __init__(self, members: list[QSMRimNetClassifier]):
        super().__init__()
        if len(members) % 2 == 0:
            raise ValueError(f"a majority vote needs an odd number of seeds, not {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """x (B, C, S, S, S), raw features (B, R) -> median logit over the members (B,)."""
        return torch.stack([member(x, features) for member in self.members]).median(dim=0).values


def build_qsmrimnet(config: QSMRimNetConfig) -> nn.Module:
    """One classifier, or the vote of `config.seeds` of them (each initialised and trained with its own seed)."""
    if config.seeds == 1:
        return QSMRimNetClassifier(config)
    return SeedVote([QSMRimNetClassifier(config) for _ in range(config.seeds)])
