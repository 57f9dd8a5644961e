"""Method name -> network and trainer: the one place that knows every method, so all run through one harness.

A method is a network (`methods.networks`) plus its training recipe; every trainer takes a
`methods.contract.TrainingJob`. Ablations of the main method are methods too
(same network, another recipe), so `prlkit cv` puts them in the same table.

| method            | network   | trained by                         | input                          |
|-------------------|-----------|------------------------------------|--------------------------------|
| frodo (+ablations)| frodo     | methods.frodo (two stages)         | patch (QSM, FLAIR)             |
| frodo_ensemble    | frodo     | methods.frodo (3 seeds, stage 2)   | patch (QSM, FLAIR)             |
| frodo_simpretrained | frodo   | methods.frodo (shipped init, stage 2) | patch (QSM, FLAIR)          |
| frodo_simpretrained_pair | frodo | methods.frodo (2 shipped inits, stage 2) | patch (QSM, FLAIR)   |
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

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from prlkit.config import Config, FinetuneConfig, config_from_dict, config_to_dict, get_profile
from prlkit.errors import PrlkitError
from prlkit.methods.aprl import train_aprl
from prlkit.methods.contract import Trainer
from prlkit.methods.frodo import train_frodo
from prlkit.methods.qsmrimnet import train_qsmrimnet
from prlkit.methods.supervised import Recipe, train_supervised
from prlkit.segment.train import train_prlseg


@dataclass(frozen=True)
class MethodSpec:
    """How to build and train one method; `overrides` patch the run's config for this method only
    (the published recipe: optimiser, learning rate, schedule); see `method_config`."""

    network: str
    train: Trainer
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)


def _supervised(network: str, **recipe: Any) -> Trainer:
    """The shared CNN trainer bound to one network and its loss and sampling recipe."""
    return partial(train_supervised, network=network, recipe=Recipe(**recipe))


# frodo_ensemble: measured with benchmarks/transfer.py (benchmarks/README.md, "Transfer to another cohort")
ENSEMBLE_RECIPE = {"frodo": {"seeds": 3}, "pretrain": {"kind": "none"},
                   "finetune": {"max_epochs": 40, "patience": 40, "keep": "last", "average_fraction": 0.0}}

# The main paper trains its ResNet-18 baseline with the main method's recipe (its authors' train.py), fixed
# here so that the main method's own `quick` optimiser (lr 1e-3) does not reach the baseline: one fair budget.
MAIN_PAPER_OPTIMIZER = {name: getattr(FinetuneConfig(), name) for name in
                        ("optimizer", "learning_rate", "weight_decay", "weight_decay_all", "schedule")}

# frodo_simpretrained: weights from benchmarks/pretrain_simulated.py; recipe measured with benchmarks/transfer.py.
# The network is the shipped one (quick's widths with GroupNorm) whatever the profile
# (chosen before any held-out run: a gentle rate keeps what pretraining learned, a fixed budget avoids early
# stopping on a handful of validation Rim+; the 48-symmetry average chosen on cohorts 101 -> 202 / 303 with
# benchmarks/symmetry_averaging.py before its held-out run; the `simulated_anatomy` start since 2026-12-08: on
# real-brain splits +0.02 to +0.07 PR-AUC on every training seed, level on the phantom's learning-curve cohorts)
SIMPRETRAINED_RECIPE = {"frodo": {"base_width": 8, "se_reduction": 16, "stem_stride": 2, "norm": "group",
                                  "test_time_symmetries": "cube"},
                        "pretrain": {"weights": "simulated_anatomy"},
                        "finetune": {"learning_rate": 1e-4, "max_epochs": 10, "patience": 10, "keep": "last",
                                     "average_fraction": 0.0}}

# frodo_simpretrained_pair: two networks of the recipe above, one from each shipped start (with and without the
# simulator's dark-core cue), logits averaged; chosen from per-lesion averages of runs that had been made for
# comparing the two starts (benchmarks/README.md, "Pretraining without the core cue at the shipped scale")
PAIR_RECIPE = {**SIMPRETRAINED_RECIPE, "frodo": {**SIMPRETRAINED_RECIPE["frodo"], "seeds": 2},
               "pretrain": {"weights": ["simulated", "simulated_core_balanced"]}}

METHODS: dict[str, MethodSpec] = {
    "frodo": MethodSpec("frodo", train_frodo, "the main method as its authors' code builds it: two-stream QSM-FLAIR "
                        "network, cross-modal pretraining, BCE + SupCon (profile paper = their recipe)"),
    "frodo_scratch": MethodSpec(
        "frodo", train_frodo, "ablation: no pretraining, same fine-tuning", {"pretrain": {"kind": "none"}}
    ),
    "frodo_contrastive": MethodSpec(
        "frodo", train_frodo, "ablation: NT-Xent pretraining instead of cross-modal regression",
        {"pretrain": {"kind": "contrastive"}},
    ),
    "frodo_ensemble": MethodSpec(
        "frodo", train_frodo, "prlkit's data-efficient variant, not the authors': the same network trained from "
        "scratch for a fixed epoch budget (the last epoch kept, no early stopping on a few validation Rim+), three "
        "seeds averaged", ENSEMBLE_RECIPE,
    ),
    "frodo_simpretrained": MethodSpec(
        "frodo", train_frodo, "prlkit's variant, not the authors': the quick network with GroupNorm starts from "
        "weights shipped with prlkit (trained on 300 domain-randomised simulated participants, then on 60 drawn on the "
        "MNI152 template: pretrain.weights simulated_anatomy, prlkit.weights) and is "
        "fine-tuned on the cohort (AdamW 1e-4, a fixed 10 epochs, the last kept); its logits are averaged over the 48 "
        "symmetries of the patch cube", SIMPRETRAINED_RECIPE,
    ),
    "frodo_simpretrained_pair": MethodSpec(
        "frodo", train_frodo, "prlkit's variant, not the authors': frodo_simpretrained twice, one network fine-tuned "
        "from each shipped start (pretrained with and without the simulator's dark Rim+ cores), logits averaged",
        PAIR_RECIPE,
    ),
    "resnet18": MethodSpec(
        "resnet18", _supervised("resnet18", loss="bce", balanced=True),
        "MONAI 3D ResNet-18 on QSM+FLAIR, BCE, class-balanced sampler (main paper's baseline), the main method's "
        "paper optimiser (AdamW 1e-4, weight decay 0.05 on every parameter)", {"finetune": MAIN_PAPER_OPTIMIZER},
    ),
    "rimnet": MethodSpec(
        "rimnet", _supervised("rimnet", loss="weighted_bce", balanced=False, shift=2),
        "RimNet: two VGG-like branches (QSM main, FLAIR merged), class-weighted BCE, 28^3 crops shifted ±2, "
        "Adam 1e-4 stepped down on plateau",
        {"finetune": {"optimizer": "adam", "learning_rate": 1e-4, "weight_decay": 0.0, "schedule": "plateau"}},
    ),
    "deepprl": MethodSpec(
        "deepprl", _supervised("deepprl", loss="focal", balanced=True),
        "Deep-PRL: lesion-mask attention branch into FLAIR and QSM branches, focal loss (gamma 2, alpha 0.2), "
        "Adam 1e-4, weight decay 3e-5 on every parameter (the released optimiser), polynomial decay",
        {"finetune": {"optimizer": "adam", "learning_rate": 1e-4, "weight_decay": 3e-5, "weight_decay_all": True,
                      "schedule": "poly"}},
    ),
    "qsmrimnet": MethodSpec(
        "qsmrimnet", train_qsmrimnet,
        "QSMRim-Net: ResNet-18 on QSM+FLAIR + MLP on 527 pyradiomics lesion features, DeepSMOTE, Adam 1e-4, "
        "batch 64, a fixed 40 epochs with decay x0.1 at 50/70/90 % of them (last epoch kept), 3-seed majority vote",
        {"finetune": {"optimizer": "adam", "learning_rate": 1e-4, "batch_size": 64, "weight_decay": 0.0,
                      "schedule": "multistep", "lr_milestones": [0.5, 0.7, 0.9],
                      "max_epochs": 40, "patience": 40, "keep": "last", "average_fraction": 0.0}},
    ),
    "aprl": MethodSpec(
        "aprl", train_aprl,
        "APRL: first-order QSM lesion features, SMOTE + random forest (500 trees, mtry by inner CV)",
    ),
    "prlseg": MethodSpec(
        "prlseg", train_prlseg, "PRLseg: whole-brain 3-class 3D UNet on lesion-centred 32^3 patches, Dice+CE; "
        "lesion score = mean voxel PRL probability (the `segment` config section)",
    ),
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


COMPARED_SECTIONS = ("lesions", "patches", "frodo", "network", "pretrain", "finetune", "split")

# the stage-1 settings still read when a network starts from given weights or encoders
STAGE1_START_KEYS = {"pretrain.weights", "pretrain.encoders"}


# the config sections a method's training reads, where they are not COMPARED_SECTIONS less frodo's own
SECTIONS_READ = {"frodo": COMPARED_SECTIONS, "aprl": ("lesions", "patches", "network", "split"),
                 "prlseg": ("lesions", "patches", "split", "segment")}


def deviations_from_paper(name: str, config: Config) -> list[str]:
    """The settings in which method `name` run with `config` differs from the same method under the `paper`
    profile (the authors' code for the main method), as 'section.key=value' ('segment.train.key=value');
    seeds are left out, and so are the sections the method does not read (`SECTIONS_READ`) and the stage-1
    settings of a network that starts from given weights or encoders (stage 1 is skipped)."""
    ours, paper = (_flat(config_to_dict(method_config(name, c))) for c in (config, get_profile("paper")))
    network = get_method(name).network
    own = SECTIONS_READ.get(network, tuple(s for s in COMPARED_SECTIONS if s not in ("frodo", "pretrain")))
    stage1_skipped = any(ours.get(key) for key in STAGE1_START_KEYS)
    return [f"{key}={value}" for key, value in ours.items()
            if key.split(".")[0] in own and not key.endswith(".seed") and paper.get(key) != value
            and not (stage1_skipped and key.startswith("pretrain.") and key not in STAGE1_START_KEYS)]


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config sections as 'section.key' (and 'section.sub.key') -> value."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out |= _flat(value, f"{prefix}{key}.")
        elif not isinstance(value, dict):
            out[f"{prefix}{key}"] = value
    return out
