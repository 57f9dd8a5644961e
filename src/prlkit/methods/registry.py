"""Method name -> network builder and trainer, so every method runs through one harness.

A method is a network plus its training recipe. Ablations of the main method are methods too
(same network, another recipe), so `prlkit cv` puts them in the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prlkit.config import Config, FrodoConfig, config_from_dict, config_to_dict
from prlkit.errors import InputFileError, PrlkitError
from prlkit.models.frodo import FrodoNet


@dataclass(frozen=True)
class MethodSpec:
    """How to build and train one method; `overrides` patch the run's config for this method only."""

    network: str
    train: Callable
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def config_for(self, config: Config) -> Config:
        """The run's config with this method's overrides applied."""
        data = config_to_dict(config)
        for section, values in self.overrides.items():
            data[section] = data[section] | values
        return config_from_dict(data)


NETWORKS: dict[str, Callable[[dict[str, Any]], torch.nn.Module]] = {
    "frodo": lambda model_config: FrodoNet(FrodoConfig(**model_config)),
}


def _train_frodo(*args, **kwargs):
    from prlkit.methods.frodo import train_frodo

    return train_frodo(*args, **kwargs)


METHODS: dict[str, MethodSpec] = {
    "frodo": MethodSpec("frodo", _train_frodo, "two-stream QSM-FLAIR network, cross-modal pretraining (main method)"),
    "frodo_scratch": MethodSpec(
        "frodo", _train_frodo, "ablation: no pretraining, same fine-tuning", {"pretrain": {"kind": "none"}}
    ),
    "frodo_contrastive": MethodSpec(
        "frodo", _train_frodo, "ablation: NT-Xent pretraining instead of cross-modal regression",
        {"pretrain": {"kind": "contrastive"}},
    ),  # fmt: skip
}


def get_method(name: str) -> MethodSpec:
    """The registered method, or a one-line error listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise PrlkitError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None


def build_network(network: str, model_config: dict[str, Any], source: Path | None = None) -> torch.nn.Module:
    """The untrained network with `model_config`; `source` names the file for errors."""
    def fail(message: str) -> PrlkitError:
        return InputFileError(source, message) if source else PrlkitError(message)

    if network not in NETWORKS:
        raise fail(f"unknown network {network!r}; known: {', '.join(sorted(NETWORKS))}")
    try:
        return NETWORKS[network](model_config)
    except (TypeError, PrlkitError) as error:
        raise fail(f"invalid model_config for {network}: {error}") from None
