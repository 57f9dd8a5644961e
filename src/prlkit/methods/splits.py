"""Patches, labels and lesion features of chosen lesions, as tensors for training and prediction."""

from __future__ import annotations

import numpy as np
import torch

from prlkit.data.cache import PatchSet
from prlkit.train.loop import Split


def lesion_split(patch_set: PatchSet, index: np.ndarray, channels: int | None = None) -> Split:
    """The patches (float16, as cached; the first `channels` channels, all by default), rim labels and
    lesion features (float64) of lesion-table rows `index`."""
    rows = patch_set.lesions.loc[index]
    if (rows["patch"] < 0).any():
        raise ValueError("lesions without a patch (excluded) cannot be used for training")
    x = torch.from_numpy(np.ascontiguousarray(patch_set.patches[rows["patch"].to_numpy(), :channels]))
    y = torch.tensor(rows["rim"].astype(int).to_numpy())
    features = torch.from_numpy(np.asarray(patch_set.features[rows.index.to_numpy()], dtype=np.float64))
    return Split(x=x, y=y, features=features)
