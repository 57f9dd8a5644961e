"""Load one session: read and cross-check its images, derive lesion instances and labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from prlkit.config import LesionConfig
from prlkit.data.bids import SessionFiles
from prlkit.data.images import check_same_grid, read_grid, read_label_volume, read_volume, replace_non_finite
from prlkit.data.lesions import attach_rim_labels, instance_map, lesion_table
from prlkit.errors import InputFileError


@dataclass(frozen=True)
class SessionData:
    """A validated session: QSM and FLAIR (float32, finite), lesion instances, lesion table."""

    files: SessionFiles
    qsm: np.ndarray
    flair: np.ndarray
    instances: np.ndarray
    affine: np.ndarray
    lesions: pd.DataFrame


def load_session(files: SessionFiles, config: LesionConfig) -> SessionData:
    """Read every image of a session and check the contract; raises InputFileError on the first problem."""
    for role, path in files.missing():
        raise InputFileError(path, f"missing {role} file for {files.name}")
    labels = read_label_volume(files.lesions)
    qsm = read_volume(files.qsm)
    flair = read_volume(files.flair)
    prl_mask = read_label_volume(files.prl_mask) if files.prl_mask else None
    for other in [qsm, flair, *([prl_mask] if prl_mask else [])]:
        check_same_grid(labels.grid, other.grid)
    if files.t1w is not None:  # only its grid matters here: it is the registration reference
        check_same_grid(labels.grid, read_grid(files.t1w))
    lesion_mask = labels.data > 0
    qsm = replace_non_finite(qsm, lesion_mask)
    flair = replace_non_finite(flair, lesion_mask)
    instances = instance_map(labels.data, config, has_rim_table=files.rim_table is not None)
    table = lesion_table(instances, labels.affine, config)
    table = attach_rim_labels(
        table, instances, files.rim_table, prl_mask.data if prl_mask else None, files.lesions
    )
    return SessionData(
        files=files,
        qsm=qsm.data,
        flair=flair.data,
        instances=instances,
        affine=labels.affine,
        lesions=table,
    )
