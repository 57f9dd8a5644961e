"""Lesion-level QSM features of a session, from the raw map in ppm (not the normalised patch).

Computed once per session when the patch cache is built, and again at prediction time, by the
same function, so that methods which classify lesion features (APRL) or take them next to the
patch (QSMRim-Net) see identical inputs in training and use. The set is the built-in first-order
one (`prlkit.features.radiomics.FIRST_ORDER_FEATURES`, no extra dependency); pyradiomics' 527
QSMRim-Net features stay an explicit opt-in (`pyradiomics_features`), not part of the cache.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prlkit.data.session import SessionData
from prlkit.features.radiomics import FIRST_ORDER_FEATURES, lesion_feature_table

FEATURE_NAMES = FIRST_ORDER_FEATURES
FEATURE_DTYPE = np.float64  # exact: forests split on these values; a few hundred bytes per lesion


def voxel_volume_mm3(affine: np.ndarray) -> float:
    """Volume of one voxel: |det| of the affine's 3x3 part."""
    return float(abs(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3])))


def session_features(session: SessionData, lesions: pd.DataFrame) -> np.ndarray:
    """(n, len(FEATURE_NAMES)) features of the given lesion-table rows, from the session's QSM in ppm."""
    if lesions.empty:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=FEATURE_DTYPE)
    table = lesion_feature_table(session.qsm, session.instances, lesions["index"].to_numpy(),
                                 voxel_volume_mm3(session.affine))  # fmt: skip
    return table[list(FEATURE_NAMES)].to_numpy(dtype=FEATURE_DTYPE)
