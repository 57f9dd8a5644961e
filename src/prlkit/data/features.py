"""Lesion-level QSM features of a session, from the raw map in ppm (not the normalised patch).

Computed by the same function when the patch cache is built and at prediction time, so methods
which classify lesion features (APRL) or take them next to the patch (QSMRim-Net) see identical
inputs in training and use. Two sets:
- `first_order` (default, no extra dependency): `prlkit.features.radiomics.FIRST_ORDER_FEATURES`,
  stored in every patch cache;
- `pyradiomics`: QSMRim-Net's 527 features (extra `[radiomics]`), computed on demand for the
  lesions that have a patch and cached next to the patches (`prlkit.data.cache.with_feature_set`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prlkit.data.session import SessionData
from prlkit.errors import PrlkitError
from prlkit.features.radiomics import (
    FIRST_ORDER_FEATURES,
    lesion_feature_table,
    pyradiomics_feature_names,
    pyradiomics_features,
)

FEATURE_SETS = ("first_order", "pyradiomics")
FEATURE_NAMES = FIRST_ORDER_FEATURES  # the set every patch cache holds
FEATURE_DTYPE = np.float64  # exact: forests split on these values; a few hundred bytes per lesion


def feature_names(feature_set: str = "first_order") -> tuple[str, ...]:
    """Column names of a feature set, in order."""
    if feature_set not in FEATURE_SETS:
        raise PrlkitError(f"unknown lesion feature set {feature_set!r}; known: {', '.join(FEATURE_SETS)}")
    return FIRST_ORDER_FEATURES if feature_set == "first_order" else tuple(pyradiomics_feature_names())


def voxel_volume_mm3(affine: np.ndarray) -> float:
    """Volume of one voxel: |det| of the affine's 3x3 part."""
    return float(abs(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3])))


def voxel_spacing_mm(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel edge lengths along the array axes: norms of the affine's first three columns."""
    spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    return float(spacing[0]), float(spacing[1]), float(spacing[2])


def session_features(session: SessionData, lesions: pd.DataFrame, feature_set: str = "first_order") -> np.ndarray:
    """(n, len(feature_names(feature_set))) features of the given lesion-table rows, from the QSM in ppm."""
    names = feature_names(feature_set)
    if lesions.empty:
        return np.zeros((0, len(names)), dtype=FEATURE_DTYPE)
    labels = lesions["index"].to_numpy()
    if feature_set == "pyradiomics":
        table = pyradiomics_features(session.qsm, session.instances, labels, voxel_spacing_mm(session.affine))
    else:
        table = lesion_feature_table(session.qsm, session.instances, labels, voxel_volume_mm3(session.affine))
    return table[list(names)].to_numpy(dtype=FEATURE_DTYPE)
