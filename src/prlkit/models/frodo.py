"""The main method's network ("frodo"): the authors' two-stream QSM/FLAIR classifier, in prlkit's code.

Pignedoli et al. §2.1 as released in their code (veronicapignedoli/FRODO, ``frodo/model.py``,
``MultiModalClassifier``): per modality a stem convolution and four pre-activation residual blocks
(the third downsamples); FLAIR modulates QSM through spatial FiLM and [Q', F] is mixed back;
two deep stages, each a stride-2 residual block, a residual block and squeeze-and-excitation on
the stage output; global average pooling; a head Linear -> ReLU -> Dropout -> Linear whose hidden
vector is the SupCon embedding. Input patches are (B, C, S, S, S) with channel 0 = QSM and
channel 1 = FLAIR; further channels (the gating mask) are ignored. With ``FrodoConfig()`` (the
``paper`` profile) the network has the authors' 2,213,645 parameters and reproduces their outputs
(tests/test_models_authors.py); ``prlkit.models.authors`` converts their checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prlkit.config import FrodoConfig
from prlkit.data.patches import IMAGE_CHANNELS  # frodo reads QSM and FLAIR, not the gating-mask channel
from prlkit.errors import PrlkitError
from prlkit.models.blocks import ResidualBlock3D, SpatialFiLM, squeeze_excite
from prlkit.train.augment import apply_symmetry, named_symmetries

QSM_CHANNEL = 0
FLAIR_CHANNEL = 1


@contextlib.contextmanager
def seeded_construction(seed: int | None) -> Iterator[None]:
    """Build modules under a fixed torch seed without touching the caller's global RNG state."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class Encoder(nn.Sequential):
    """One modality's encoder: 3x3x3 stem conv (no bias), two residual blocks, a stride-2 residual block, one more."""

    def __init__(self, width1: int, width2: int, stem_stride: int = 1, norm: str = "group"):
        super().__init__(
            nn.Conv3d(1, width1, 3, stride=stem_stride, padding=1, bias=False),
            ResidualBlock3D(width1, width1, norm=norm),
            ResidualBlock3D(width1, width1, norm=norm),
            ResidualBlock3D(width1, width2, stride=2, norm=norm),
            ResidualBlock3D(width2, width2, norm=norm),
        )


class DeepStage(nn.Sequential):
    """A stride-2 residual block, a residual block, then squeeze-and-excitation of the stage output."""

    def __init__(self, in_channels: int, out_channels: int, se_reduction: int = 16, norm: str = "group"):
        super().__init__(
            ResidualBlock3D(in_channels, out_channels, stride=2, norm=norm),
            ResidualBlock3D(out_channels, out_channels, norm=norm),
            squeeze_excite(out_channels, se_reduction),
        )


class ClassifierHead(nn.Module):
    """Pooled features -> Linear(C, max(32, C // 2)) -> ReLU -> Dropout -> Linear(., 1).

    ``forward`` returns the logit (B, 1) and the hidden vector after ReLU and dropout, which the
    authors' code feeds to the supervised contrastive loss.
    """

    def __init__(self, in_features: int, dropout: float):
        super().__init__()
        self.hidden_dim = max(32, in_features // 2)
        self.hidden = nn.Sequential(nn.Linear(in_features, self.hidden_dim), nn.ReLU(), nn.Dropout(dropout))
        self.out = nn.Linear(self.hidden_dim, 1)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.hidden(pooled)
        return self.out(hidden), hidden


class FrodoOutput(NamedTuple):
    """Logits (B,) and the raw (not L2-normalised) SupCon embeddings (B, embedding_dim): the head's hidden vector."""

    logit: torch.Tensor
    embedding: torch.Tensor


class FrodoNet(nn.Module):
    """Two-stream network: QSM/FLAIR encoders -> spatial FiLM + mix -> two SE stages -> pooled -> head.

    ``seed`` makes the initialisation reproducible without changing the global RNG state.
    ``forward`` returns logits (B,); :meth:`forward_features` also returns the SupCon embedding.
    On CPU, ``model.to(memory_format=torch.channels_last_3d)`` (and the same for the input)
    is faster for the ``paper`` widths; results are the same.
    """

    def __init__(self, config: FrodoConfig | None = None, seed: int | None = None):
        super().__init__()
        self.config = config or FrodoConfig()
        c1, c2, c3, c4 = self.config.widths
        norm = self.config.norm
        with seeded_construction(seed):
            self.qsm_encoder = Encoder(c1, c2, self.config.stem_stride, norm)
            self.flair_encoder = Encoder(c1, c2, self.config.stem_stride, norm)
            self.film = SpatialFiLM(c2)
            self.deep = nn.Sequential(
                DeepStage(c2, c3, self.config.se_reduction, norm),
                DeepStage(c3, c4, self.config.se_reduction, norm),
            )
            self.pool = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten())
            self.head = ClassifierHead(c4, self.config.dropout)

    @property
    def embedding_dim(self) -> int:
        """Size of the SupCon embedding (the head's hidden layer)."""
        return self.head.hidden_dim

    @property
    def encoder_dim(self) -> int:
        """Size of each modality's pooled bottleneck embedding (the FiLM width)."""
        return self.config.widths[1]

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 5 or x.shape[1] < IMAGE_CHANNELS:
            raise PrlkitError(f"frodo expects patches shaped (B, C>=2, S, S, S), got {tuple(x.shape)}")
        return x[:, QSM_CHANNEL : QSM_CHANNEL + 1], x[:, FLAIR_CHANNEL : FLAIR_CHANNEL + 1]

    def _encode_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, f = self._split(x)
        return self.qsm_encoder(q), self.flair_encoder(f)

    def forward_features(self, x: torch.Tensor) -> FrodoOutput:
        """Logits (B,) and SupCon embeddings (B, embedding_dim)."""
        q, f = self._encode_maps(x)
        logit, hidden = self.head(self.pool(self.deep(self.film(q, f))))
        return FrodoOutput(logit.squeeze(1), hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).logit

    def encode_modalities(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Globally pooled encoder outputs (z_q, z_f), each (B, encoder_dim): stage-1 SSL targets/inputs."""
        q, f = self._encode_maps(x)
        return self.pool(q), self.pool(f)

    def pretrained_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights stage 1 trains and stage 2 inherits: both encoders, i.e. everything before the FiLM layer."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(("qsm_encoder.", "flair_encoder."))}

    def load_pretrained_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Copy encoder weights from :meth:`pretrained_state_dict` of another model; FiLM/deep/head are untouched."""
        expected = self.pretrained_state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or unexpected:
            raise PrlkitError(f"pretrained encoder weights do not match: missing {missing}, unexpected {unexpected}")
        for key, tensor in expected.items():
            got = tuple(state[key].shape)
            if got != tuple(tensor.shape):
                raise PrlkitError(f"pretrained encoder weight {key} has shape {got}, expected {tuple(tensor.shape)}")
        self.load_state_dict(dict(state), strict=False)


class FrodoEnsemble(nn.Module):
    """Independently seeded networks whose logits are averaged (prlkit's variant, ``frodo.seeds > 1``)."""

    def __init__(self, members: list[FrodoNet]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)


class SymmetryAveraged(nn.Module):
    """A network whose logits are averaged over symmetries of the input patch (prlkit's test-time
    averaging, ``frodo.test_time_symmetries``); the wrapped network is ``net``."""

    def __init__(self, net: nn.Module, symmetries: str):
        super().__init__()
        self.net, self.symmetries = net, symmetries

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        group = named_symmetries(self.symmetries, tuple(x.shape[2:]))
        return torch.stack([self.net(apply_symmetry(x, symmetry)) for symmetry in group]).mean(dim=0)


def with_test_time_symmetries(net: nn.Module, symmetries: str) -> nn.Module:
    """`net` itself for ``none``, else `net` wrapped to average its logits over the named symmetries."""
    return net if symmetries == "none" else SymmetryAveraged(net, symmetries)


def build_frodo(config: FrodoConfig) -> nn.Module:
    """One network, or the ensemble of `config.seeds` of them (each trained with its own seed), averaged
    over `config.test_time_symmetries`."""
    net = FrodoNet(config) if config.seeds == 1 else FrodoEnsemble([FrodoNet(config) for _ in range(config.seeds)])
    return with_test_time_symmetries(net, config.test_time_symmetries)


class CrossModalPredictor(nn.Module):
    """Stage-1 MLP g mapping the FLAIR embedding z_f into the QSM embedding space (discarded after stage 1)."""

    def __init__(self, dim: int, hidden: int | None = None, seed: int | None = None):
        super().__init__()
        with seeded_construction(seed):
            self.net = nn.Sequential(nn.Linear(dim, hidden or dim), nn.ReLU(), nn.Linear(hidden or dim, dim))

    def forward(self, z_f: torch.Tensor) -> torch.Tensor:
        return self.net(z_f)


def inference_model(net: nn.Module) -> nn.Module:
    """An eval-mode copy of ``net`` for fast CPU prediction; ``net`` itself (and its state_dict) is untouched.

    For a :class:`FrodoNet`: each residual block's second BatchNorm is folded into the convolution
    before it, and weights are stored channels_last_3d (1.6x for the earlier 32^3 ``paper`` network; not yet
    re-measured for the authors' 64^3 network on an idle machine: benchmarks/README.md). Ensembles: per member.
    Probabilities agree with ``net`` within float rounding (tests/test_speed_inference.py). Other
    networks have nothing to fold and are returned as they are, in eval mode (no copy: QSMRim-Net
    and ResNet-18 hold 33 M parameters).
    """
    if isinstance(net, SymmetryAveraged):
        return SymmetryAveraged(inference_model(net.net), net.symmetries).eval()
    if isinstance(net, FrodoEnsemble):
        return FrodoEnsemble([inference_model(member) for member in net.members]).eval()
    if not isinstance(net, FrodoNet):
        return net.eval()
    fast = copy.deepcopy(net).eval()
    for block in fast.modules():
        if isinstance(block, ResidualBlock3D):
            block.fold_batch_norm()
    return fast.to(memory_format=torch.channels_last_3d)


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs of ``model`` on a zero tensor of ``input_shape`` (torch's FlopCounterMode: a multiply-add = 2).

    Only convolutions and matrix products are counted (norms, activations, pooling are not).
    The model is run in eval mode without gradients; its training flag is restored.
    """
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        x = torch.zeros(input_shape, device=None if param is None else param.device)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
