"""Method name -> network builder, so every method runs through one harness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from prlkit.config import FrodoConfig
from prlkit.errors import InputFileError, PrlkitError
from prlkit.models.frodo import FrodoNet


def _frodo(model_config: dict[str, Any]) -> torch.nn.Module:
    return FrodoNet(FrodoConfig(**model_config))


NETWORKS = {"frodo": _frodo}


def build_network(method: str, model_config: dict[str, Any], source: Path | None = None) -> torch.nn.Module:
    """The untrained network of `method` with `model_config`; `source` names the file for errors."""
    if method not in NETWORKS:
        message = f"unknown method {method!r}; known: {', '.join(sorted(NETWORKS))}"
        raise InputFileError(source, message) if source else PrlkitError(message)
    try:
        return NETWORKS[method](model_config)
    except (TypeError, PrlkitError) as error:
        message = f"invalid model_config for {method}: {error}"
        raise InputFileError(source, message) if source else PrlkitError(message) from None
