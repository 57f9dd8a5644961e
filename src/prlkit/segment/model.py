"""A trained segmentation model: network, settings and the lesion-score threshold; saved like every prlkit model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from prlkit.config import Config, config_from_dict, config_to_dict
from prlkit.data.cache import PatchSet
from prlkit.errors import InputFileError
from prlkit.modelfile import load_weights, read_model, save_model
from prlkit.segment.inference import class_probabilities
from prlkit.segment.network import build_segmentation_network
from prlkit.segment.stage import scored_lesions
from prlkit.segment.volumes import SegmentVolume, load_segment_volume

METHOD = "prlseg"


@dataclass
class SegmentationModel:
    """What `prlkit segment train` saves; `threshold` applies to the lesion score (p >= threshold: PRL)."""

    module: nn.Module
    config: Config
    threshold: float
    training: dict[str, Any]
    method: str = METHOD

    def probabilities(self, volume: SegmentVolume, device: torch.device) -> np.ndarray:
        """Class probabilities (3, X, Y, Z) over the whole volume."""
        return class_probabilities(self.module.to(device), volume.image, self.config.segment, device)

    def lesion_probabilities(self, patch_set: PatchSet, index: np.ndarray, device: torch.device) -> np.ndarray:
        """Lesion scores of lesion-table rows `index`: each of their sessions is segmented whole, once."""
        rows = patch_set.lesions.loc[index]
        scores = pd.Series(np.nan, index=rows.index)
        for (participant, session), group in rows.groupby(["participant_id", "session_id"], sort=False):
            volume = load_segment_volume(patch_set.session_files(participant, session), self.config)
            table = scored_lesions(volume, self.probabilities(volume, device), self.config.segment)
            scores[group.index] = group["index"].map(table.set_index("index")["probability"]).to_numpy()
        return scores.to_numpy()

    def save(self, folder: Path) -> None:
        """model.safetensors + model.json (see prlkit.modelfile); model_config is the `segment` section."""
        config = config_to_dict(self.config)
        save_model(folder, self.module, {"method": self.method, "model_config": config["segment"], "config": config,
                                         "threshold": float(self.threshold), "training": self.training})  # fmt: skip


def load_segmentation_model(folder: Path) -> SegmentationModel:
    """Rebuild a saved segmentation model from its JSON and weights (never executes code from the folder)."""
    meta, tensors = read_model(folder)
    if meta["method"] != METHOD:
        raise InputFileError(folder / "model.json", f"a {meta['method']} model, not a {METHOD} segmentation model")
    config = config_from_dict(meta["config"])
    module = build_segmentation_network(config.segment)
    load_weights(module, tensors, folder / "model.safetensors")
    return SegmentationModel(module=module.eval(), config=config, threshold=meta["threshold"], training=meta["training"])
