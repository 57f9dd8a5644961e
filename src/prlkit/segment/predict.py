"""`prlkit predict` with prlseg models: the per-session lesion table, Rim+ maps and subjects.tsv of every method.

The lesion's `probability` is its calibrated PRL score (mean of the models' calibrated scores); lesions
excluded from classification (too small, ...) get none, exactly as with the patch methods. The class
maps themselves are `prlkit segment predict`'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from prlkit.config import Config
from prlkit.data.session import SessionData
from prlkit.segment.model import METHOD, segment_lesions
from prlkit.segment.outputs import SegmentationModels, load_segmentation_models
from prlkit.segment.volumes import segment_volume


def names_segmentation_models(folder: Path, method: str | None) -> bool:
    """Whether `--model folder [--method method]` of `prlkit predict` means prlseg models."""
    if method is not None:
        return method == METHOD
    try:
        return json.loads((folder / "model.json").read_text(encoding="utf-8")).get("method") == METHOD
    except (OSError, ValueError, AttributeError):
        return False  # not a model folder: the patch-model loader reports it


@dataclass
class SegmentationPredictor:
    """What `prlkit.predict.predict_sessions` needs of a model: its config and a session's lesion table."""

    models: SegmentationModels

    @property
    def config(self) -> Config:
        return self.models.models[0].config

    @property
    def provenance(self) -> list[dict[str, Any]]:
        return self.models.provenance

    def lesion_table(self, data: SessionData, device: torch.device) -> pd.DataFrame:
        """The session's lesion table with `probability` and `rim_pred` (NaN / 0 for excluded lesions)."""
        volume = segment_volume(data, self.config)
        _, table = segment_lesions(volume, self.models.for_participant(data.files.participant_id), device)
        excluded = (table["excluded"] != "").to_numpy()
        table["probability"] = np.where(excluded, np.nan, table["probability"])
        table["rim_pred"] = np.where(excluded, 0, table["rim_pred"])
        return table


def load_segmentation_predictor(folder: Path) -> SegmentationPredictor:
    """A `prlkit segment train` folder, or the prlseg fold models of a `prlkit cv` folder."""
    return SegmentationPredictor(load_segmentation_models(folder))
