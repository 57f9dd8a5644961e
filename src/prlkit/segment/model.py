"""A trained segmentation model: network, settings, lesion-score calibration and threshold (saved as every model)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from prlkit.config import Config, config_to_dict, saved_config_from_dict
from prlkit.data.cache import PatchSet
from prlkit.errors import InputFileError
from prlkit.eval.calibration import Calibrator, TemperatureScaling, calibrator_from_dict, calibrator_to_dict
from prlkit.modelfile import check_patch_size, load_weights, read_model, save_model
from prlkit.segment.inference import class_probabilities
from prlkit.segment.network import build_segmentation_network
from prlkit.segment.stage import scored_lesions
from prlkit.segment.volumes import SegmentVolume, load_segment_volume

METHOD = "prlseg"
UNCALIBRATED = TemperatureScaling(1.0)  # the identity map: `segment.calibration: none`, and models saved without one


@dataclass
class SegmentationModel:
    """What `prlkit segment train` saves. `calibrator` maps the raw lesion score (mean or max voxel PRL
    probability) to P(Rim+); `threshold` applies to that calibrated probability (p >= threshold: PRL)."""

    module: nn.Module
    config: Config
    threshold: float
    training: dict[str, Any]
    calibrator: Calibrator = UNCALIBRATED
    method: str = METHOD
    network: str = METHOD  # the UNet or UNETR itself is `config.segment.network`

    def probabilities(self, volume: SegmentVolume, device: torch.device) -> np.ndarray:
        """Class probabilities (3, X, Y, Z) over the whole volume."""
        return class_probabilities(self.module.to(device), volume.image, self.config.segment, device)

    def calibrated(self, score: np.ndarray) -> np.ndarray:
        """P(Rim+) of raw lesion scores; NaN (a lesion without voxels) stays NaN."""
        score = np.asarray(score, dtype=float)
        result = np.full(score.shape, np.nan)
        finite = np.isfinite(score)
        result[finite] = self.calibrator.apply(score[finite])
        return result

    def lesion_probabilities(self, patch_set: PatchSet, index: np.ndarray, device: torch.device) -> np.ndarray:
        """Calibrated P(Rim+) of lesion-table rows `index`: each of their sessions is segmented whole, once."""
        rows = patch_set.lesions.loc[index]
        probability = pd.Series(np.nan, index=rows.index)
        for (participant, session), group in rows.groupby(["participant_id", "session_id"], sort=False):
            volume = load_segment_volume(patch_set.session_files(participant, session), self.config)
            _, table = segment_lesions(volume, [self], device)
            probability[group.index] = group["index"].map(table.set_index("index")["probability"]).to_numpy()
        return probability.to_numpy()

    def save(self, folder: Path) -> None:
        """model.safetensors + model.json (see prlkit.modelfile); model_config is the `segment` section."""
        config = config_to_dict(self.config)
        save_model(folder, self.module, {"method": self.method, "network": self.network,
                                         "model_config": config["segment"], "config": config,
                                         "threshold": float(self.threshold),
                                         "calibration": calibrator_to_dict(self.calibrator),
                                         "training": self.training})


def segment_lesions(volume: SegmentVolume, models: list[SegmentationModel],
                    device: torch.device) -> tuple[np.ndarray, pd.DataFrame]:
    """Mean class probabilities of `models` over the volume, and its lesion table: prl_mean, prl_max and `score`
    of that mean map, `probability` = mean of each model's calibrated score, `rim_pred` at their mean threshold."""
    maps = [model.probabilities(volume, device) for model in models]
    probabilities = np.mean(maps, axis=0)
    table = scored_lesions(volume, probabilities, models[0].config.segment)
    table["probability"] = np.mean([model.calibrated(scored_lesions(volume, own, model.config.segment)["score"])
                                    for model, own in zip(models, maps)], axis=0)
    threshold = float(np.mean([model.threshold for model in models]))
    table["rim_pred"] = (table["probability"].fillna(0.0) >= threshold).astype(int)
    return probabilities, table


def load_segmentation_model(folder: Path) -> SegmentationModel:
    """Rebuild a saved segmentation model from its JSON and weights (never executes code from the folder)."""
    meta, tensors = read_model(folder)
    if meta["method"] != METHOD:
        raise InputFileError(folder / "model.json", f"a {meta['method']} model, not a {METHOD} segmentation model")
    config = saved_config_from_dict(meta["config"], source=folder / "model.json")
    check_patch_size(folder / "model.json", config.segment.patch_size, meta["model_config"].get("patch_size"))
    module = build_segmentation_network(config.segment)
    load_weights(module, tensors, folder / "model.safetensors")
    return SegmentationModel(module=module.eval(), config=config, threshold=meta["threshold"],
                             training=meta["training"], calibrator=calibrator_from_dict(meta.get("calibration"),
                                                                                        UNCALIBRATED))
