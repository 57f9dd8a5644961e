"""Method name -> network builder and trainer, so every method runs through one harness.

A method is a network plus its training recipe. Ablations of the main method are methods too
(same network, another recipe), so `prlkit cv` puts them in the same table.

| method            | network   | trained by                         | input                          |
|-------------------|-----------|------------------------------------|--------------------------------|
| frodo (+ablations)| frodo     | methods.frodo (two stages)         | patch (QSM, FLAIR)             |
| frodo_ensemble    | frodo     | methods.frodo (3 seeds, stage 2)   | patch (QSM, FLAIR)             |
| frodo_simpretrained | frodo   | methods.frodo (shipped init, stage 2) | patch (QSM, FLAIR)          |
| resnet18          | resnet18  | methods.supervised                 | patch (QSM, FLAIR)             |
| rimnet            | rimnet    | methods.supervised                 | patch (QSM, FLAIR), 28^3 crop  |
| deepprl           | deepprl   | methods.supervised                 | patch (mask, FLAIR, QSM)       |
| qsmrimnet         | qsmrimnet | methods.qsmrimnet (DeepSMOTE)      | patch + lesion features        |
| aprl              | aprl      | methods.aprl (SMOTE + forest)      | lesion features only           |
| prlseg            | (segment) | segment.train (3D UNet)            | whole volumes (PatchSet.sessions) |

Lesion features are the cached first-order QSM statistics (`prlkit.data.features`); networks
that take them declare `takes_features = True` and are called as net(patches, features).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prlkit.config import Config, FinetuneConfig, FrodoConfig, config_from_dict, config_to_dict, get_profile
from prlkit.errors import InputFileError, PrlkitError
from prlkit.models.baselines.aprl import APRLModel, FittedAPRLConfig
from prlkit.models.baselines.deepprl import DeepPRL, DeepPRLConfig
from prlkit.models.baselines.qsmrimnet import QSMRimNetConfig, build_qsmrimnet
from prlkit.models.baselines.resnet import ResNet18Baseline, ResNet18Config
from prlkit.models.baselines.rimnet import RimNet, RimNetConfig
from prlkit.models.frodo import build_frodo


@dataclass(frozen=True)
class MethodSpec:
    """How to build and train one method; `overrides` patch the run's config for this method only
    (the published recipe: optimiser, learning rate, schedule); see `method_config`."""

    network: str
    train: Callable
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)


# network name -> (its config dataclass, the module built from it)
NETWORKS: dict[str, tuple[type, Callable[[Any], torch.nn.Module]]] = {
    "frodo": (FrodoConfig, build_frodo),
    "resnet18": (ResNet18Config, ResNet18Baseline),
    "rimnet": (RimNetConfig, RimNet),
    "deepprl": (DeepPRLConfig, DeepPRL),
    "qsmrimnet": (QSMRimNetConfig, build_qsmrimnet),
    "aprl": (FittedAPRLConfig, APRLModel),
}


def _deferred(module: str, function: str) -> Callable:
    """A trainer imported on first call (the method modules import the registry's networks)."""

    def train(*args, **kwargs):
        return getattr(importlib.import_module(module), function)(*args, **kwargs)

    return train


_train_frodo = _deferred("prlkit.methods.frodo", "train_frodo")
_train_prlseg = _deferred("prlkit.segment.train", "train_prlseg")


def _supervised(network: str, recipe_kwargs: dict[str, Any]) -> Callable:
    def train(*args, **kwargs):
        from prlkit.methods.supervised import Recipe, train_supervised

        return train_supervised(network, Recipe(**recipe_kwargs), *args, **kwargs)

    return train


# frodo_ensemble: measured with benchmarks/transfer.py (benchmarks/README.md, "Transfer to another cohort")
ENSEMBLE_RECIPE = {"frodo": {"seeds": 3}, "pretrain": {"kind": "none"},
                   "finetune": {"max_epochs": 40, "patience": 40, "keep": "last"}}

# The main paper trains its ResNet-18 baseline with the main method's recipe (its authors' train.py), fixed
# here so that the main method's own `quick` optimiser (lr 1e-3) does not reach the baseline: one fair budget.
MAIN_PAPER_OPTIMIZER = {name: getattr(FinetuneConfig(), name) for name in
                        ("optimizer", "learning_rate", "weight_decay", "weight_decay_all", "schedule")}  # fmt: skip

# frodo_simpretrained: weights from benchmarks/pretrain_simulated.py; recipe measured with benchmarks/transfer.py.
# The network is the shipped one (quick's widths with GroupNorm) whatever the profile
# (chosen before any held-out run: a gentle rate keeps what pretraining learned, a fixed budget avoids early
# stopping on a handful of validation Rim+)
SIMPRETRAINED_RECIPE = {"frodo": {"base_width": 8, "se_reduction": 16, "stem_stride": 2, "norm": "group"},
                        "pretrain": {"weights": "simulated"},
                        "finetune": {"learning_rate": 1e-4, "max_epochs": 10, "patience": 10, "keep": "last"}}

METHODS: dict[str, MethodSpec] = {
    "frodo": MethodSpec("frodo", _train_frodo, "the main method as its authors' code builds it: two-stream QSM-FLAIR "
                        "network, cross-modal pretraining, BCE + SupCon (profile paper = their recipe)"),
    "frodo_scratch": MethodSpec(
        "frodo", _train_frodo, "ablation: no pretraining, same fine-tuning", {"pretrain": {"kind": "none"}}
    ),
    "frodo_contrastive": MethodSpec(
        "frodo", _train_frodo, "ablation: NT-Xent pretraining instead of cross-modal regression",
        {"pretrain": {"kind": "contrastive"}},
    ),  # fmt: skip
    "frodo_ensemble": MethodSpec(
        "frodo", _train_frodo, "prlkit's data-efficient variant, not the authors': the same network trained from "
        "scratch for a fixed epoch budget (the last epoch kept, no early stopping on a few validation Rim+), three "
        "seeds averaged", ENSEMBLE_RECIPE,
    ),  # fmt: skip
    "frodo_simpretrained": MethodSpec(
        "frodo", _train_frodo, "prlkit's variant, not the authors': the quick network with GroupNorm starts from "
        "weights shipped with prlkit (trained on 300 domain-randomised simulated participants, prlkit.weights) and is "
        "fine-tuned on the cohort (AdamW 1e-4, a fixed 10 epochs, the last kept)", SIMPRETRAINED_RECIPE,
    ),  # fmt: skip
    "resnet18": MethodSpec(
        "resnet18", _supervised("resnet18", {"loss": "bce", "balanced": True}),
        "MONAI 3D ResNet-18 on QSM+FLAIR, BCE, class-balanced sampler (main paper's baseline), the main method's "
        "paper optimiser (AdamW 1e-4, weight decay 0.05 on every parameter)", {"finetune": MAIN_PAPER_OPTIMIZER},
    ),  # fmt: skip
    "rimnet": MethodSpec(
        "rimnet", _supervised("rimnet", {"loss": "weighted_bce", "balanced": False, "shift": 2}),
        "RimNet: two VGG-like branches (QSM main, FLAIR merged), class-weighted BCE, 28^3 crops shifted ±2, "
        "Adam 1e-4 stepped down on plateau",
        {"finetune": {"optimizer": "adam", "learning_rate": 1e-4, "weight_decay": 0.0, "schedule": "plateau"}},
    ),  # fmt: skip
    "deepprl": MethodSpec(
        "deepprl", _supervised("deepprl", {"loss": "focal", "balanced": True}),
        "Deep-PRL: lesion-mask attention branch into FLAIR and QSM branches, focal loss (gamma 2, alpha 0.2), "
        "Adam 1e-4, weight decay 3e-5 on every parameter (the released optimiser), polynomial decay",
        {"finetune": {"optimizer": "adam", "learning_rate": 1e-4, "weight_decay": 3e-5, "weight_decay_all": True,
                      "schedule": "poly"}},
    ),  # fmt: skip
    "qsmrimnet": MethodSpec(
        "qsmrimnet", _deferred("prlkit.methods.qsmrimnet", "train_qsmrimnet"),
        "QSMRim-Net: ResNet-18 on QSM+FLAIR + MLP on 527 pyradiomics lesion features, DeepSMOTE, Adam 1e-4, "
        "batch 64, a fixed 40 epochs with decay x0.1 at 50/70/90 % of them (last epoch kept), 3-seed majority vote",
        {"finetune": {"optimizer": "adam", "learning_rate": 1e-4, "batch_size": 64, "weight_decay": 0.0,
                      "schedule": "multistep", "lr_milestones": [0.5, 0.7, 0.9],
                      "max_epochs": 40, "patience": 40, "keep": "last"}},
    ),  # fmt: skip
    "aprl": MethodSpec(
        "aprl", _deferred("prlkit.methods.aprl", "train_aprl"),
        "APRL: first-order QSM lesion features, SMOTE + random forest (500 trees, mtry by inner CV)",
    ),  # fmt: skip
    "prlseg": MethodSpec(
        "prlseg", _train_prlseg, "PRLseg: whole-brain 3-class 3D UNet on lesion-centred 32^3 patches, Dice+CE; "
        "lesion score = mean voxel PRL probability (the `segment` config section)",
    ),  # fmt: skip
}


def get_method(name: str) -> MethodSpec:
    """The registered method, or a one-line error listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise PrlkitError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None


def method_config(name: str, config: Config) -> Config:
    """The run's config for one method: the registry's recipe (the paper's optimiser settings), then
    the config's own `methods.<name>` section, so a user's file has the last word."""
    unknown = sorted(set(config.methods) - set(METHODS))
    if unknown:
        raise PrlkitError(f"config methods.{unknown[0]}: unknown method; known: {', '.join(METHODS)}")
    data = config_to_dict(config)
    for section, values in [*get_method(name).overrides.items(), *config.methods.get(name, {}).items()]:
        data[section] = data[section] | values
    data["methods"] = {}  # applied: the method's saved config is self-contained
    own_section = {"frodo": "frodo", "prlseg": "segment"}.get(get_method(name).network)
    if data["network"] and own_section:
        raise PrlkitError(f"config network: {name}'s network settings are the `{own_section}` section")
    return config_from_dict(data)


def network_config(network: str, overrides: dict[str, Any] | None = None, config_class: type | None = None,
                   **fixed: Any) -> Any:  # fmt: skip
    """A baseline network's settings: its defaults, then the config's `network` section, then `fixed`
    (values the trainer derives from the data, e.g. the feature count). `config_class` replaces the
    registered one where a trainer takes fewer settings than the saved model records (APRL)."""
    config_class = config_class or NETWORKS[network][0]
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(overrides or {}) - known)
    if unknown:
        raise PrlkitError(f"config network.{unknown[0]}: not a {network} setting; known: {', '.join(sorted(known))}")
    try:
        return config_class(**((overrides or {}) | fixed))
    except (TypeError, ValueError) as error:
        raise PrlkitError(f"config network: invalid {network} settings: {error}") from None


def build_network(network: str, model_config: dict[str, Any], source: Path | None = None) -> torch.nn.Module:
    """The untrained network with `model_config`; `source` names the file for errors."""
    def fail(message: str) -> PrlkitError:
        return InputFileError(source, message) if source else PrlkitError(message)

    if network not in NETWORKS:
        raise fail(f"unknown network {network!r}; known: {', '.join(sorted(NETWORKS))}")
    try:
        config_class, module_class = NETWORKS[network]
        return module_class(config_class(**model_config))
    except (TypeError, PrlkitError) as error:
        raise fail(f"invalid model_config for {network}: {error}") from None


COMPARED_SECTIONS = ("lesions", "patches", "frodo", "network", "pretrain", "finetune", "split")


# the config sections a method's training reads, where they are not COMPARED_SECTIONS less frodo's own
SECTIONS_READ = {"frodo": COMPARED_SECTIONS, "aprl": ("lesions", "patches", "network", "split"),
                 "prlseg": ("lesions", "patches", "split", "segment")}  # fmt: skip


def deviations_from_paper(name: str, config: Config) -> list[str]:
    """The settings in which method `name` run with `config` differs from the same method under the `paper`
    profile (the authors' code for the main method), as 'section.key=value' ('segment.train.key=value');
    seeds are left out, and so are the sections the method does not read (`SECTIONS_READ`)."""
    ours, paper = (_flat(config_to_dict(method_config(name, c))) for c in (config, get_profile("paper")))
    network = get_method(name).network
    own = SECTIONS_READ.get(network, tuple(s for s in COMPARED_SECTIONS if s not in ("frodo", "pretrain")))
    return [f"{key}={value}" for key, value in ours.items()
            if key.split(".")[0] in own and not key.endswith(".seed") and paper.get(key) != value]  # fmt: skip


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config sections as 'section.key' (and 'section.sub.key') -> value."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out |= _flat(value, f"{prefix}{key}.")
        elif not isinstance(value, dict):
            out[f"{prefix}{key}"] = value
    return out
