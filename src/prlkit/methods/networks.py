"""Network name -> its settings dataclass and module: how a saved model's network is rebuilt."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from prlkit.config import FrodoConfig
from prlkit.errors import InputFileError, PrlkitError
from prlkit.models.baselines.aprl import APRLModel, FittedAPRLConfig
from prlkit.models.baselines.deepprl import DeepPRL, DeepPRLConfig
from prlkit.models.baselines.qsmrimnet import QSMRimNetConfig, build_qsmrimnet
from prlkit.models.baselines.resnet import ResNet18Baseline, ResNet18Config
from prlkit.models.baselines.rimnet import RimNet, RimNetConfig
from prlkit.models.frodo import build_frodo

# network name -> (its config dataclass, the module built from it)
NETWORKS: dict[str, tuple[type, Callable[[Any], torch.nn.Module]]] = {
    "frodo": (FrodoConfig, build_frodo),
    "resnet18": (ResNet18Config, ResNet18Baseline),
    "rimnet": (RimNetConfig, RimNet),
    "deepprl": (DeepPRLConfig, DeepPRL),
    "qsmrimnet": (QSMRimNetConfig, build_qsmrimnet),
    "aprl": (FittedAPRLConfig, APRLModel),
}


def network_config(network: str, overrides: dict[str, Any] | None = None, config_class: type | None = None,
                   **fixed: Any) -> Any:
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
