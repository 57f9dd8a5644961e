"""A trained model in memory: network, decision threshold and probability calibration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prlkit.config import Config, config_to_dict, saved_config_from_dict
from prlkit.data.cache import PatchSet, with_feature_set
from prlkit.data.features import feature_names
from prlkit.errors import InputFileError
from prlkit.eval.calibration import Calibrator, PriorShift, calibrator_from_dict, calibrator_to_dict
from prlkit.methods.networks import NETWORKS, build_network
from prlkit.methods.splits import lesion_split
from prlkit.modelfile import check_patch_size, load_weights, read_model, save_model
from prlkit.train.stages import predict_probabilities, takes_features

#: the calibration of model files saved before calibration was recorded: none (a prior 0.5 -> 0.5 shift)
UNCALIBRATED = PriorShift(train_prior=0.5, target_prior=0.5)


@dataclass
class TrainedModel:
    """What `prlkit train` saves and `prlkit predict` loads.

    `threshold` applies to calibrated probabilities: p >= threshold means Rim+. `network` is the
    architecture (`methods.networks.NETWORKS`), `method` the registered method that trained it
    (e.g. `frodo_scratch` trains a `frodo` network).
    """

    network: str
    method: str
    module: torch.nn.Module
    model_config: dict[str, Any]
    config: Config
    threshold: float
    calibrator: Calibrator
    training: dict[str, Any]

    def probabilities(
        self,
        patches: np.ndarray | torch.Tensor,
        device: torch.device,
        features: np.ndarray | torch.Tensor | None = None,
    ) -> np.ndarray:
        """Calibrated P(Rim+) per patch ((N, C, S, S, S) arrays in the patch-cache channel order).

        `features` (N, F): the lesions' features (`prlkit.data.features`), needed by methods that
        take them (QSMRim-Net, APRL: see `needs_features`) and ignored by the others.
        """
        # own copies: inputs may be read-only memory maps
        x = patches if torch.is_tensor(patches) else torch.from_numpy(np.array(patches, dtype=np.float32))
        if features is not None and not torch.is_tensor(features):
            features = torch.from_numpy(np.array(features, dtype=np.float64))
        return self.calibrator.apply(predict_probabilities(self.module, x, device, features=features))

    @property
    def needs_features(self) -> bool:
        """Whether `probabilities` needs the lesion features next to the patches."""
        return takes_features(self.module)

    @property
    def feature_set(self) -> str:
        """The lesion feature set the model was trained on (`prlkit.data.features.FEATURE_SETS`)."""
        return self.model_config.get("features", "first_order")

    def lesion_probabilities(self, patch_set: PatchSet, index: np.ndarray, device: torch.device) -> np.ndarray:
        """Calibrated P(Rim+) of lesion-table rows `index` (the harness's call; whole-volume methods differ)."""
        if self.needs_features:
            patch_set = with_feature_set(patch_set, self.feature_set, self.config.lesions, progress=False)
        split = lesion_split(patch_set, index)
        return self.probabilities(split.x, device, split.features)

    def save(self, folder: Path) -> None:
        """model.safetensors + model.json (see prlkit.modelfile)."""
        save_model(
            folder,
            self.module,
            {
                "method": self.method,
                "network": self.network,
                "model_config": self.model_config,
                "config": config_to_dict(self.config),
                "threshold": float(self.threshold),
                "calibration": calibrator_to_dict(self.calibrator),
                "training": self.training,
                "trained_patch_size": self.config.patches.size,
            },
        )


# settings whose default changed since model files without them were written: those files keep the old value
LEGACY_DEFAULTS = {"qsmrimnet": {"features": "first_order", "seeds": 1}}


def load_trained_model(folder: Path) -> TrainedModel:
    """Rebuild a saved model from its JSON and weights (never executes code from the folder).

    Model files written before `network` was recorded hold the network name in `method`."""
    meta, tensors = read_model(folder)
    network = meta.get("network", meta["method"])
    if network not in NETWORKS:
        raise InputFileError(folder / "model.json", f"a {network} model, not a lesion-patch classifier (a segmentation "
                             "model? run it with `prlkit segment predict`)")
    model_config = LEGACY_DEFAULTS.get(network, {}) | meta["model_config"]
    module = build_network(network, model_config, folder / "model.json")
    load_weights(module, tensors, folder / "model.safetensors")
    feature_set = model_config.get("features", "first_order")
    if takes_features(module) and meta["training"].get("features") != list(feature_names(feature_set)):
        raise InputFileError(folder / "model.json",
                             "trained on other lesion features than this prlkit version computes")
    config = saved_config_from_dict(meta["config"], source=folder / "model.json")
    check_patch_size(folder / "model.json", config.patches.size, meta.get("trained_patch_size"))
    return TrainedModel(
        network=network,
        method=meta["method"],
        module=module.eval(),
        model_config=model_config,
        config=config,
        threshold=meta["threshold"],
        calibrator=calibrator_from_dict(meta.get("calibration"), UNCALIBRATED),
        training=meta["training"],
    )
