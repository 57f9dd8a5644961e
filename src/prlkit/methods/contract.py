"""What every method's trainer takes and returns: one `TrainingJob` in, a model that scores lesions out.

The cross-validation harness and `prlkit train` build a job (the cohort's patches, the development split
into training and validation lesions, the method's config, where to checkpoint) and call the method's
trainer with it; the registry (`prlkit.methods.registry`) names the trainer of every method.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from prlkit.config import Config
from prlkit.data.cache import PatchSet
from prlkit.train.loop import FitResult


@dataclass(frozen=True)
class TrainingJob:
    """One method trained on one development split; validation lesions drive stopping, threshold and
    calibration, and the test lesions are never here."""

    method: str  # the registered method name (recorded in the saved model)
    patch_set: PatchSet
    train_index: np.ndarray  # lesion-table rows to train on
    val_index: np.ndarray  # lesion-table rows to validate on
    config: Config  # the method's config (`registry.method_config`)
    run_dir: Path  # checkpoints and training logs
    device: torch.device
    resume: bool = False  # continue from checkpoints in run_dir
    progress: bool = True  # progress bars


class LesionModel(Protocol):
    """A trained model as the harness and `prlkit predict` use it (TrainedModel, SegmentationModel)."""

    threshold: float  # calibrated P(Rim+) >= threshold means Rim+
    training: dict[str, Any]  # what training saw and reached (model.json "training")

    def lesion_probabilities(self, patch_set: PatchSet, index: np.ndarray, device: torch.device) -> np.ndarray:
        """Calibrated P(Rim+) of lesion-table rows `index`."""
        ...

    def save(self, folder: Path) -> None:
        """model.safetensors + model.json (prlkit.modelfile)."""
        ...


class Trainer(Protocol):
    """A method's training: the model and the fit of each of its stages (for training curves)."""

    def __call__(self, job: TrainingJob) -> tuple[LesionModel, dict[str, FitResult]]: ...
