"""Configuration as data: dataclasses with named profiles, saved next to every output.

Profiles: `paper` follows the authors' released code (64³ patches, their network and recipe);
`quick` is a smaller, faster variant that makes CPU demos and tests practical (24³ patches). A
YAML or JSON file may override any field; unknown keys are errors so that a typo never silently
falls back to a default, and every value is checked against its field's type (pydantic), so that
YAML 1.1's string `1e-4` becomes the float it means and `max_epochs: ten` is an error naming the key.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml

from prlkit.atomic import write_text_atomic
from prlkit.data.plausibility import QSM_UNITS
from prlkit.errors import InputFileError, PrlkitError


@dataclass(frozen=True)
class LesionConfig:
    """How lesion instances are derived from the lesion map."""

    connectivity: int = 26  # 6, 18 or 26: neighbourhood for connected components of a binary mask
    min_voxels: int = 110  # smaller lesions are kept in the table with excluded=too_small
    min_volume_mm3: float = 0.0  # prlkit's option: also too_small under this volume (0 = off), for any voxel size
    map_kind: str = "auto"  # auto | binary | instance (auto: instance if labels > 1 or a rim table exists)

    def __post_init__(self) -> None:
        if self.connectivity not in (6, 18, 26):
            raise PrlkitError(f"lesions.connectivity must be 6, 18 or 26, not {self.connectivity}")
        if self.map_kind not in ("auto", "binary", "instance"):
            raise PrlkitError(f"lesions.map_kind must be auto, binary or instance, not {self.map_kind!r}")
        if self.min_voxels < 0:
            raise PrlkitError(f"lesions.min_voxels must be >= 0, not {self.min_voxels}")
        if not self.min_volume_mm3 >= 0:
            raise PrlkitError(f"lesions.min_volume_mm3 must be >= 0, not {self.min_volume_mm3}")


@dataclass(frozen=True)
class PatchConfig:
    """Lesion-centred cubes: size, per-participant intensity normalisation and gating.

    Defaults are the authors' released code (``patches_extraction.py``, ``frodo/dataset.py``): 64^3
    cubes; QSM clipped to +-0.3 ppm (their +-300 ppb) and mapped linearly to [0, 1]
    (``qsm_scale: unit``); every channel multiplied by the lesion mask dilated
    r = round(clip(0.75 rho, 5, 16)) times with a 6-connected element, rho = (3V / 4 pi)^(1/3)
    (``gate_rule: authors``). prlkit's own choices (the ``quick`` profile): ``qsm_scale: signed``
    (clip, then divide by the window's largest magnitude, so 0 ppm and the zero padding agree) and
    ``gate_rule: cbrt`` (r = ceil(k V^(1/3)), Euclidean ball, no bounds).
    """

    size: int = 64  # cube edge in voxels, centred on the lesion's rounded centre of mass
    flair_percentiles: tuple[float, float] = (0.5, 99.5)  # mapped to [0, 1] over brain voxels
    qsm_window_ppm: tuple[float, float] = (-0.3, 0.3)  # clipped, then scaled by qsm_scale
    qsm_scale: str = "unit"  # unit: window -> [0, 1] (authors) | signed: divided by max(|low|, |high|) (prlkit)
    # the window of phase input (`susceptibility: phase`), as local field shift in ppm of B0 (prlkit's choice,
    # docs/data.md "Phase input"): the field of a lesion is smaller than its susceptibility
    phase_window_ppm: tuple[float, float] = (-0.05, 0.05)
    gate: bool = True  # zero everything outside the dilated lesion mask
    gate_rule: str = "authors"  # authors | cbrt (see the class docstring)
    gate_k: float = 0.75  # radius factor of either rule
    gate_bounds: tuple[int, int] = (5, 16)  # authors rule: the radius is clipped to these voxels
    # > 0: cut every cube on a grid of this spacing (mm) along the image axes, linearly interpolated (labels:
    # nearest), so a lesion spans the same cube whatever the acquisition's voxel size (prlkit's choice); 0: the
    # image's own voxels (the authors' code)
    voxel_mm: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "gate_bounds", tuple(int(b) for b in self.gate_bounds))
        if self.size < 4 or self.size % 2:
            raise PrlkitError(f"patches.size must be an even number >= 4, not {self.size}")
        low, high = self.flair_percentiles
        if not 0 <= low < high <= 100:
            raise PrlkitError(f"patches.flair_percentiles must satisfy 0 <= low < high <= 100, not {low}, {high}")
        for name in ("qsm_window_ppm", "phase_window_ppm"):
            low, high = getattr(self, name)
            if not low < 0 < high:
                raise PrlkitError(f"patches.{name} must satisfy low < 0 < high, not {low}, {high}")
        if self.qsm_scale not in QSM_SCALES:
            raise PrlkitError(f"patches.qsm_scale must be one of {', '.join(QSM_SCALES)}, not {self.qsm_scale!r}")
        if self.gate_rule not in GATE_RULES:
            raise PrlkitError(f"patches.gate_rule must be one of {', '.join(GATE_RULES)}, not {self.gate_rule!r}")
        if self.gate_k <= 0:
            raise PrlkitError(f"patches.gate_k must be > 0, not {self.gate_k}")
        if self.voxel_mm < 0:
            raise PrlkitError(f"patches.voxel_mm must be >= 0 (0: the image's own voxels), not {self.voxel_mm}")
        if len(self.gate_bounds) != 2 or not 0 <= self.gate_bounds[0] <= self.gate_bounds[1]:
            raise PrlkitError(f"patches.gate_bounds must be two radii 0 <= low <= high, not {self.gate_bounds}")


QSM_SCALES = ("unit", "signed")
SUSCEPTIBILITY_INPUTS = ("qsm", "phase")
PHASE_SIGNS = ("auto", "positive", "negative")
GATE_RULES = ("authors", "cbrt")
FRODO_NORMS = ("group", "batch")
TEST_TIME_SYMMETRIES = ("none", "flips", "cube")
OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("constant", "multistep", "poly", "plateau")
THRESHOLD_SCALES = ("raw", "calibrated")


@dataclass(frozen=True)
class FrodoConfig:
    """Hyper-parameters of :class:`FrodoNet`; the defaults are the authors' released network.

    base_width: encoder widths base and 2 x base, deep stages 4 x and 8 x base (16: the authors'
      ``MultiModalClassifier(base_filters=16)``, 2,213,645 parameters, 47.2 GFLOP per 64^3 lesion).
      The head's hidden layer has max(32, 4 x base) units, as in their code.
    norm: ``group`` (GroupNorm, largest of 16/8/4/2/1 groups dividing the width: the authors) or
      ``batch`` (BatchNorm3d, prlkit's choice for ``quick``). GroupNorm normalises each patch by
      its own statistics and so removes the absolute susceptibility level; measured on small
      synthetic cohorts, BatchNorm learns from far fewer Rim+ lesions (``benchmarks/learning_curve.py``).
    se_reduction: SE bottleneck reduction r (16 in the authors' code).
    dropout: dropout in the head (0.5: the authors' ``train.py``; their model's own default is 0.3).
    stem_stride: stride of the 3x3x3 stem convolution (1: the authors; 2 = 8x fewer voxels in every
      later layer, prlkit's ``quick``).
    seeds: prlkit's variant (method ``frodo_ensemble``), not the authors': train this many
      independently seeded networks and average their logits (the authors train one).
    test_time_symmetries: prlkit's choice (the ``quick`` profile and method ``frodo_simpretrained``), not the
      authors': average the logits over mirror images of each patch: ``none`` (the authors), ``flips`` (the 8
      mirror images along the axes) or ``cube`` (all 48 symmetries of the cube, as the training augmentation
      draws them). Prediction costs that many forward passes.
    """

    base_width: int = 16
    norm: str = "group"
    se_reduction: int = 16
    dropout: float = 0.5
    stem_stride: int = 1
    seeds: int = 1
    test_time_symmetries: str = "none"

    def __post_init__(self) -> None:
        for name in ("base_width", "se_reduction", "seeds"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise PrlkitError(f"frodo {name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.stem_stride not in (1, 2):
            raise PrlkitError(f"frodo stem_stride must be 1 or 2, got {self.stem_stride}")
        if not 0.0 <= self.dropout < 1.0:
            raise PrlkitError(f"frodo dropout must be in [0, 1), got {self.dropout}")
        if self.norm not in FRODO_NORMS:
            raise PrlkitError(f"frodo norm must be group or batch, got {self.norm!r}")
        if self.test_time_symmetries not in TEST_TIME_SYMMETRIES:
            raise PrlkitError(f"frodo test_time_symmetries must be one of {', '.join(TEST_TIME_SYMMETRIES)}, "
                              f"got {self.test_time_symmetries!r}")

    @property
    def widths(self) -> tuple[int, int, int, int]:
        """Channel widths: encoder stage 1, encoder stage 2 (= FiLM), deep stage 3, deep stage 4."""
        return tuple(self.base_width * m for m in (1, 2, 4, 8))  # type: ignore[return-value]


@dataclass(frozen=True)
class TrainConfig:
    """One training stage: AdamW (or Adam), a learning-rate schedule, gradient clipping, early stopping."""

    max_epochs: int = 200
    batch_size: int = 10
    learning_rate: float = 1e-4
    weight_decay: float = 1e-2
    weight_decay_all: bool = False  # True: decay every parameter (the authors' AdamW); False: weights only
    grad_clip_norm: float = 1.0
    patience: int = 20  # epochs without improvement of the validation score before stopping
    # early stopping and the best epoch by the mean validation score of the last `score_window` epochs (prlkit's
    # choice against a noisy score on few validation Rim+; 1: the score itself, as every paper)
    score_window: int = 1
    keep: str = "best"  # best: the best validation epoch's weights (early stopping) | last: the final epoch's
    # a fixed budget kept last only, prlkit's choice: keep the mean of the weights after each epoch of the last
    # `average_fraction` of the budget (0.25 of 40 epochs: the last 10; at least the last epoch; stochastic weight
    # averaging, Izmailov et al. 2018; BatchNorm statistics averaged alike); 0: off
    average_fraction: float = 0.0
    seed: int = 0
    optimizer: str = "adamw"  # adamw (decoupled weight decay) | adam (weight decay as L2, as the baselines' papers)
    schedule: str = "constant"  # constant | multistep | poly | plateau (see prlkit.train.schedule)
    lr_milestones: tuple[float, ...] = (0.5, 0.7, 0.9)  # multistep: fractions of max_epochs
    lr_factor: float = 0.1  # multistep and plateau: the rate is multiplied by this at each step
    lr_power: float = 0.9  # poly: rate x (1 - epoch / max_epochs) ** power
    lr_plateau_patience: int = 3  # plateau: epochs without improvement before a step down
    # intensity augmentation of the training patches, prlkit's option (0: off, as every paper): each patch's
    # susceptibility and FLAIR channels are multiplied by exp(u), u ~ U(-intensity_scale, intensity_scale), one
    # draw per channel (sites and dipole inversions differ in contrast), and the susceptibility channel gets
    # Gaussian noise of a standard deviation drawn from U(0, susceptibility_noise) (normalised units) inside the
    # gated region (a noisier site); see prlkit.train.augment
    intensity_scale: float = 0.0
    susceptibility_noise: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr_milestones", tuple(float(m) for m in self.lr_milestones))
        if not (0 <= self.intensity_scale <= 1 and 0 <= self.susceptibility_noise <= 1):
            raise PrlkitError("train.intensity_scale and train.susceptibility_noise must lie in [0, 1]")
        for name in ("max_epochs", "batch_size", "patience", "score_window"):
            if getattr(self, name) < 1:
                raise PrlkitError(f"train.{name} must be >= 1, not {getattr(self, name)}")
        if self.keep not in ("best", "last"):
            raise PrlkitError(f"train.keep must be best or last, not {self.keep!r}")
        if not 0 <= self.average_fraction <= 1:
            raise PrlkitError(f"train.average_fraction must lie in [0, 1], not {self.average_fraction}")
        if self.average_fraction and not (self.keep == "last" and self.max_epochs <= self.patience):
            raise PrlkitError(f"train.average_fraction ({self.average_fraction}) averages the last epochs of a fixed "
                              "budget: it needs keep: last and patience >= max_epochs; set average_fraction: 0 to "
                              "stop early")
        if self.optimizer not in OPTIMIZERS:
            raise PrlkitError(f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise PrlkitError(f"train.schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if not all(0 < m < 1 for m in self.lr_milestones) or not 0 < self.lr_factor <= 1:
            raise PrlkitError("train.lr_milestones must lie in (0, 1) and train.lr_factor in (0, 1]")
        if self.lr_power <= 0 or self.lr_plateau_patience < 0:
            raise PrlkitError("train.lr_power must be > 0 and train.lr_plateau_patience >= 0")

    @property
    def averaged_epochs(self) -> int:
        """How many final epochs `average_fraction` averages (0: none, the last epoch's weights kept as they are)."""
        epochs = math.ceil(round(self.average_fraction * self.max_epochs, 9))  # 0.1 x 30 is 3, not 4
        return max(1, epochs) if self.average_fraction else 0


@dataclass(frozen=True)
class PretrainConfig(TrainConfig):
    """Stage 1, self-supervised: `regression` (FLAIR embedding -> QSM embedding, MSE; the method),
    `contrastive` (NT-Xent between the modalities; ablation) or `none` (from scratch; ablation).

    Defaults are the authors' ``train_ssl.py``: AdamW lr 5e-5, weight decay 0.05 on every
    parameter, batch 10, patience 20 on the validation loss, validation = `val_fraction` (15 %)
    of the participants; no stop-gradient (both encoders learn). prlkit pretrains on the
    development participants of each fold only (theirs splits every participant of the data).
    stop_gradient: True makes the QSM embedding a fixed target: no constant-embedding collapse is
    possible, but the QSM encoder then keeps its initialisation in stage 1.
    """

    learning_rate: float = 5e-5
    weight_decay: float = 0.05
    weight_decay_all: bool = True
    kind: str = "regression"
    stop_gradient: bool = False
    temperature: float = 0.5  # NT-Xent temperature of the contrastive ablation
    val_fraction: float = 0.15  # participants held out for stage-1 early stopping
    encoders: str = ""  # a safetensors file of pretrained encoders (convert-checkpoint of best.pt): replaces stage 1
    # a safetensors file of a whole frodo network with the same frodo settings (e.g. another model folder's
    # model.safetensors), or the name of shipped weights (`simulated`, `simulated_core_balanced`,
    # `simulated_anatomy`: prlkit.weights): every layer starts from it and stage 1 is skipped; a list gives one
    # per network of a `frodo.seeds` ensemble
    weights: str | tuple[str, ...] = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind not in ("regression", "contrastive", "none"):
            raise PrlkitError(f"pretrain.kind must be regression, contrastive or none, not {self.kind!r}")
        if not 0 < self.val_fraction < 1:
            raise PrlkitError(f"pretrain.val_fraction must be in (0, 1), not {self.val_fraction}")


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    """Stage 2, supervised: BCE + λ·SupCon, class-balanced sampler, early stopping on validation PR-AUC.

    Defaults are the authors' ``train.py``: AdamW lr 1e-4, weight decay 0.05 on every parameter,
    batch 16, gradient clipping 1.0, at most 200 epochs, patience 20, SupCon temperature 0.1.
    threshold_on: ``raw`` (the authors' ``evaluate.py``: F1-optimal t over 0.00-1.00 in steps of
    0.01 on the uncalibrated validation probabilities, Rim+ if p > t) or ``calibrated`` (prlkit: the
    same search on calibrated probabilities, grid 0.01-0.99, Rim+ if p >= t). Either way the saved
    threshold applies to calibrated probabilities with p >= threshold (calibrators are increasing).
    calibration (prlkit's addition, for expected Rim+ counts): prior | platt | temperature.
    """

    batch_size: int = 16
    weight_decay: float = 0.05
    weight_decay_all: bool = True
    supcon_temperature: float = 0.1
    calibration: str = "prior"  # prior | platt | temperature: maps sampler-inflated scores to probabilities
    threshold_on: str = "raw"
    # balanced (every paper) | size_matched (prlkit's option, the main method only: classes balanced within
    # quartiles of Rim+ volume, so size alone cannot separate the sampled classes; prlkit.train.sampling)
    sampler: str = "balanced"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.calibration not in ("prior", "platt", "temperature"):
            raise PrlkitError(f"finetune.calibration must be prior, platt or temperature, not {self.calibration!r}")
        if self.sampler not in ("balanced", "size_matched"):
            raise PrlkitError(f"finetune.sampler must be balanced or size_matched, not {self.sampler!r}")
        if self.threshold_on not in THRESHOLD_SCALES:
            raise PrlkitError(f"finetune.threshold_on must be one of {', '.join(THRESHOLD_SCALES)}, "
                              f"not {self.threshold_on!r}")


# development train/validation splits: the authors' code, prlkit's Rim+-stratified one, the paper text
VAL_SPLITS = ("participant", "participant_stratified", "lesion")


@dataclass(frozen=True)
class SplitConfig:
    """Validation split of the development data, and outer folds for cross-validation.

    by: ``participant`` (the authors' code: `val_fraction` of the development participants, redrawn
    until the validation set holds a Rim+ participant), ``participant_stratified`` (prlkit's choice: whole
    participants holding about `val_fraction` of the Rim+ lesions) or ``lesion`` (the paper text:
    `val_fraction` of the lesions, stratified by label).
    """

    val_fraction: float = 0.2
    by: str = "participant"
    n_folds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise PrlkitError(f"split.val_fraction must be in (0, 1), not {self.val_fraction}")
        if self.by not in VAL_SPLITS:
            raise PrlkitError(f"split.by must be one of {', '.join(VAL_SPLITS)}, not {self.by!r}")
        if self.n_folds < 2:
            raise PrlkitError(f"split.n_folds must be >= 2, not {self.n_folds}")


@dataclass(frozen=True)
class SegmentConfig:
    """Whole-brain PRL segmentation (El Yamani et al., MIDL 2025): a 3-class 3D UNet on patches.

    Per loop epoch, `rounds_per_epoch` times: `lesion_patches` cubes per training session centred
    on random lesion voxels (the paper: 3 per subject, whose subjects have 5 sessions; per session is
    prlkit's choice), `prl_patches` more on PRL-lesion voxels of sessions with a Rim+ lesion (0 in the
    paper) and `background_patches` on random brain voxels (1: prlkit's addition; 0 is the paper's
    sampling). The paper trains 3000 such rounds at learning rate 1e-4; its text gives no loss or
    normalisation: unweighted Dice + CE (`class_weights` 1, 1, 1) and MONAI's InstanceNorm are prlkit's
    choices; `paper` = 300 loop epochs x 10 rounds. `network: unetr` (MONAI UNETR, needs
    einops) takes `hidden_size`, `num_heads`, `mlp_dim`, `feature_size` and a patch_size multiple of 16.
    Validation (early stopping) on whole held-out-participant volumes: `val_score` soft_dice (default;
    mean soft Dice of the non-PRL and PRL classes, pooled voxels: above 0 before the rare PRL class wins
    any argmax) or pr_auc (lesion level; few validation Rim+ lesions, saturates early on easy data).
    A lesion's raw PRL score is the `lesion_score` (mean or max) of the voxel PRL probabilities over its
    voxels; `calibration` (the main method's calibrators) maps it to P(Rim+) on the validation lesions:
    temperature by default (one bounded parameter; unregularised Platt overfitted the 1-3 validation
    Rim+ of small cohorts). `quick` (CPU): 24^3 patches, UNet widths 8/16/32, 2 rounds per epoch,
    BatchNorm (InstanceNorm removes QSM's absolute level per patch). Measurements: the prlseg
    section of benchmarks/README.md.
    """

    patch_size: int = 32
    lesion_patches: int = 3
    prl_patches: int = 0  # more centres on PRL-lesion voxels per Rim+ session and round (0: the paper)
    background_patches: int = 1
    rounds_per_epoch: int = 10
    lesion_channel: bool = False  # add the binary lesion mask as an input channel (the paper's UNet_lesion)
    network: str = "unet"  # unet (MONAI UNet: channels, strides, res_units) | basicunet (6 channels) | unetr
    hidden_size: int = 768  # unetr: transformer width (ViT-B, MONAI's default), split over num_heads heads
    num_heads: int = 12
    mlp_dim: int = 3072  # unetr: transformer feed-forward width
    feature_size: int = 16  # unetr: width of the convolutional decoder
    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    res_units: int = 2
    norm: str = "instance"  # instance (MONAI's default, per-patch statistics) | batch (keeps QSM's absolute level)
    dropout: float = 0.0
    class_weights: tuple[float, ...] = (1.0, 1.0, 1.0)  # background, non-PRL, PRL in Dice and CE (1, 1, 1: the paper)
    flips: bool = True  # random axis flips, identical for image and target
    overlap: float = 0.5  # sliding-window overlap at inference
    blend: str = "gaussian"  # gaussian | constant
    sw_batch_size: int = 4
    lesion_score: str = "mean"  # mean | max PRL probability over the lesion's voxels
    calibration: str = "temperature"  # temperature | platt | none: the lesion score -> P(Rim+), fitted on validation
    val_score: str = "soft_dice"  # soft_dice | pr_auc
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(max_epochs=300, batch_size=8, learning_rate=1e-4, patience=30)
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))
        object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))
        if len(self.class_weights) != 3 or min(self.class_weights) <= 0:
            raise PrlkitError(f"segment.class_weights must be 3 positive numbers, not {self.class_weights}")
        if self.patch_size < 8 or self.patch_size % 8:
            raise PrlkitError(f"segment.patch_size must be a multiple of 8, not {self.patch_size}")
        if self.lesion_patches < 1 or min(self.background_patches, self.prl_patches) < 0 or self.rounds_per_epoch < 1:
            raise PrlkitError("segment: lesion_patches and rounds_per_epoch must be >= 1, background_patches and "
                              "prl_patches >= 0")
        if self.network not in ("unet", "basicunet", "unetr"):
            raise PrlkitError(f"segment.network must be unet, basicunet or unetr, not {self.network!r}")
        if self.network == "unetr" and (self.patch_size % 16 or self.hidden_size % self.num_heads):
            raise PrlkitError(f"segment: unetr needs patch_size a multiple of 16 (its 16^3 tokens) and hidden_size "
                              f"divisible by num_heads, not {self.patch_size}, {self.hidden_size}, {self.num_heads}")
        if self.network == "unet" and (len(self.strides) != len(self.channels) - 1 or min(self.channels) < 1):
            raise PrlkitError("segment: unet needs len(strides) = len(channels) - 1, "
                              f"not {self.channels}, {self.strides}")
        if self.network == "basicunet" and len(self.channels) != 6:
            raise PrlkitError(f"segment: basicunet needs 6 channels (features), got {self.channels}")
        if not 0 <= self.overlap < 1 or not 0 <= self.dropout < 1:
            raise PrlkitError("segment.overlap and segment.dropout must be in [0, 1)")
        for name, allowed in (("blend", ("gaussian", "constant")), ("lesion_score", ("mean", "max")),
                              ("norm", ("instance", "batch")), ("calibration", ("platt", "temperature", "none")),
                              ("val_score", ("soft_dice", "pr_auc"))):
            if getattr(self, name) not in allowed:
                raise PrlkitError(f"segment.{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")


@dataclass(frozen=True)
class Config:
    """Everything a run decided; written next to its outputs."""

    profile: str = "paper"
    qsm_unit: str = "ppm"  # unit of the input QSM files: ppm, or ppb (divided by 1000 when read)
    susceptibility: str = "qsm"  # the susceptibility image a run reads: qsm (_Chimap) | phase (_part-phase_T2starw)
    phase_sign: str = "auto"  # phase input: auto (decided from the veins) | positive | negative (paramagnetic sign)
    lesions: LesionConfig = field(default_factory=LesionConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)
    frodo: FrodoConfig = field(default_factory=FrodoConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    # settings of a comparison method's network (e.g. {"fusion": "concat"} for QSMRim-Net; see its
    # config dataclass in prlkit.models.baselines); the main method's are `frodo`
    network: dict[str, Any] = field(default_factory=dict)
    # per method name, a partial config applied to that method only, on top of the registry's recipe,
    # e.g. {"qsmrimnet": {"finetune": {"learning_rate": 3e-4}, "network": {"fusion": "concat"}}}
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.qsm_unit not in QSM_UNITS:
            raise PrlkitError(f"qsm_unit must be one of {', '.join(QSM_UNITS)}, not {self.qsm_unit!r}")
        if self.susceptibility not in SUSCEPTIBILITY_INPUTS:
            raise PrlkitError(f"susceptibility must be qsm or phase, not {self.susceptibility!r}")
        if self.phase_sign not in PHASE_SIGNS:
            raise PrlkitError(f"phase_sign must be auto, positive or negative, not {self.phase_sign!r}")
        if isinstance(self.pretrain.weights, tuple) and len(self.pretrain.weights) != self.frodo.seeds:
            raise PrlkitError(f"pretrain.weights lists {len(self.pretrain.weights)} files for frodo.seeds: "
                              f"{self.frodo.seeds} networks; list one per network, or give one for all")
        for name, overrides in self.methods.items():
            if not isinstance(overrides, dict):
                raise PrlkitError(f"config methods.{name} must be a mapping of config sections")
            shared = sorted(set(overrides) & set(SHARED_SECTIONS))
            if shared:
                raise PrlkitError(f"config methods.{name}.{shared[0]}: every method of a run shares "
                                  f"{', '.join(SHARED_SECTIONS)}; set it for the whole run")
            # keys and types only: checks across sections (pretrain.weights against frodo.seeds) wait for
            # `method_config`, which applies the method's own recipe first
            _merged_fields(dataclasses.replace(self, methods={}), overrides, prefix=f"methods.{name}.")


# one patch set and one fold plan per run
SHARED_SECTIONS = ("profile", "qsm_unit", "susceptibility", "phase_sign", "lesions", "patches", "split", "methods")


# `paper`: the authors' released code (network, both stages, patches, split, threshold); see
# docs/main_method.md. `quick`: a smaller, faster CPU variant of the same network with prlkit's
# deviations (BatchNorm, base width 8, stride-2 stem, 24^3 patches, prlkit's QSM scaling and gating,
# larger steps, short budgets, threshold on calibrated probabilities, logits averaged over the 48 cube
# symmetries: benchmarks/README.md, "`frodo` (`quick`) at 88 participants"; fine-tuning for a fixed 40 epochs
# with the weights of the last 10 averaged instead of early stopping on a few validation Rim+: "Early stopping
# on 3-8 validation Rim+").
# One fair budget: `quick` gives every supervised comparison method the same 40 fine-tuning epochs, the same
# weight average and 24^3 patches, and each keeps its own paper's optimiser and learning rate (the registry's
# recipes: ResNet-18 the main paper's AdamW 1e-4, RimNet, Deep-PRL and QSMRim-Net Adam 1e-4). The
# `finetune` optimiser below (AdamW 1e-3, weight decay 1e-2 on weights only) is the main method's own
# `quick` deviation, listed in each frodo row of results.md: every `quick` figure of frodo in
# benchmarks/README.md was measured with it. prlseg has its own unit of budget (`segment.train`: 20
# epochs of 2 rounds, lr 3e-3, as measured there), also listed in its row.
PROFILES: dict[str, Config] = {
    "paper": Config(profile="paper"),
    "quick": Config(
        profile="quick",
        patches=PatchConfig(size=24, qsm_window_ppm=(-0.15, 0.25), qsm_scale="signed", gate_rule="cbrt", gate_k=0.5),
        frodo=FrodoConfig(base_width=8, stem_stride=2, norm="batch", test_time_symmetries="cube"),
        pretrain=PretrainConfig(max_epochs=8, patience=3, batch_size=16, learning_rate=1e-3, weight_decay=1e-2,
                                weight_decay_all=False),
        finetune=FinetuneConfig(max_epochs=40, patience=40, keep="last", average_fraction=0.25, batch_size=16,
                                learning_rate=1e-3, weight_decay=1e-2, weight_decay_all=False,
                                threshold_on="calibrated"),
        segment=SegmentConfig(patch_size=24, channels=(8, 16, 32), strides=(2, 2), res_units=1, rounds_per_epoch=2,
                              norm="batch", overlap=0.25, sw_batch_size=8,
                              train=TrainConfig(max_epochs=20, batch_size=8, learning_rate=3e-3, patience=6)),
    ),
}


def get_profile(name: str) -> Config:
    """The named profile (`paper` or `quick`)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise PrlkitError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) ready for JSON or YAML."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(data: dict[str, Any], base: Config | None = None, source: Path | None = None) -> Config:
    """Apply `data` (possibly partial) on top of `base` (default: its `profile`, else `paper`).

    `source`: the file `data` came from; errors then name it.
    """
    try:
        if base is None:
            base = get_profile(data.get("profile", "paper") if isinstance(data, dict) else "paper")
        return _merge(base, data, prefix="")
    except PrlkitError as error:
        if source is None:
            raise
        raise InputFileError(source, str(error)) from None


# config keys added since model files were first written, with the value every file without them was trained
# under: a saved config is complete, so a missing key must not take today's profile default
SAVED_CONFIG_LEGACY = {"finetune": {"average_fraction": 0.0}}


def saved_config_from_dict(data: dict[str, Any], source: Path) -> Config:
    """The config a model file was trained with (its model.json's `config`), keys it predates filled in."""
    filled = dict(data)
    for section, defaults in SAVED_CONFIG_LEGACY.items():
        if isinstance(filled.get(section), dict):
            filled[section] = defaults | filled[section]
    return config_from_dict(filled, source=source)


def _merge(obj: Any, data: dict[str, Any], prefix: str) -> Any:
    """`obj` with the fields `data` names replaced, each value checked against its field's type.

    `prefix` is the dotted path of `obj` in the config (e.g. ``segment.train.``); errors name the full key.
    """
    changes = _merged_fields(obj, data, prefix)
    try:
        return dataclasses.replace(obj, **changes)
    except PrlkitError as error:  # a section's own check; name its full path where it names a shorter one
        section = prefix.rstrip(".")
        if not section or str(error).startswith(section):
            raise
        raise PrlkitError(f"config {section}: {error}") from None


def _merged_fields(obj: Any, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The new values of the fields of `obj` that `data` names, each checked (nested sections merged whole)."""
    if not isinstance(data, dict):
        raise PrlkitError(f"config section {prefix.rstrip('.') or '(top)'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in data.items():
        if key not in fields:
            raise PrlkitError(f"unknown config key {prefix}{key}; known: {', '.join(fields)}")
        current = getattr(obj, key)
        if isinstance(current, dict) and not isinstance(value, dict):
            raise PrlkitError(f"config {prefix}{key} must be a mapping")
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value, prefix=f"{prefix}{key}.")
        elif isinstance(current, dict):  # `network` and `methods`: checked where they are applied
            changes[key] = value
        else:
            changes[key] = _typed(type(obj), key, value, f"{prefix}{key}")
    return changes


@functools.cache
def _field_validator(cls: type, name: str) -> pydantic.TypeAdapter:
    """pydantic's validator for one field's annotated type (resolved: this module postpones annotations)."""
    return pydantic.TypeAdapter(typing.get_type_hints(cls)[name])


def _typed(cls: type, name: str, value: Any, key: str) -> Any:
    """`value` as field `name` of `cls` types it (lax: the string '1e-4' becomes a float, a list a tuple),
    or a one-line error naming `key` (the dotted path in the config). A yes/no value (YAML `yes`, `true`) is a
    bool only: pydantic's lax mode would read it as 1 where a number belongs."""
    annotation = typing.get_type_hints(cls)[name]
    if isinstance(value, bool) and bool not in (annotation, *typing.get_args(annotation)):
        raise PrlkitError(f"config {key}: a yes/no value where a {getattr(annotation, '__name__', annotation)} "
                          f"belongs (got {value!r})")
    try:
        return _field_validator(cls, name).validate_python(value)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"])
        raise PrlkitError(f"config {key}{where}: {first['msg'][0].lower()}{first['msg'][1:]} "
                          f"(got {first['input']!r})") from None


def load_config(path: Path | str, profile: str | None = None, default_profile: str = "paper") -> Config:
    """Read a YAML or JSON config file; it overrides the fields it names, on top of a profile.

    The profile is the file's own `profile` key, else `profile` (the command line's `--profile`),
    else `default_profile`. A file naming another profile than a given `profile` is an error.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputFileError(path, f"cannot read config: {error.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise InputFileError(path, f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {error}") from None
    data = {} if data is None else data
    named = data.get("profile") if isinstance(data, dict) else None
    if named is not None and profile is not None and named != profile:
        raise InputFileError(path, f"says profile: {named} but --profile {profile} was given; drop one of them")
    try:
        base = get_profile(named or profile or default_profile)
    except PrlkitError as error:
        raise InputFileError(path, str(error)) from None
    return config_from_dict(data, base=base, source=path)


def save_config(config: Config, path: Path | str) -> None:
    """Write the config as YAML (or JSON when the name ends in .json), atomically."""
    path = Path(path)
    data = config_to_dict(config)
    text = json.dumps(data, indent=2) + "\n" if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
    write_text_atomic(path, text)
