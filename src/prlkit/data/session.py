"""Load one session: read and cross-check its images, derive lesion instances and labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prlkit.config import LesionConfig
from prlkit.data.bids import SessionFiles
from prlkit.data.images import check_same_grid, read_grid, read_label_volume, read_volume, replace_non_finite
from prlkit.data.lesions import attach_rim_labels, instance_map, lesion_table
from prlkit.data.plausibility import flair_findings, report_findings
from prlkit.data.susceptibility import read_susceptibility
from prlkit.errors import InputFileError


@dataclass(frozen=True)
class SessionData:
    """A validated session: the susceptibility channel and FLAIR (float32, finite), lesion instances, lesion table.

    `qsm` is the susceptibility channel in ppm: the QSM, or with phase input the local field shift
    (`prlkit.data.susceptibility`); `reading` says what was decided reading phase (empty for QSM).
    """

    files: SessionFiles
    qsm: np.ndarray
    flair: np.ndarray
    instances: np.ndarray
    affine: np.ndarray
    lesions: pd.DataFrame
    reading: dict[str, str] = field(default_factory=dict)


def load_session(files: SessionFiles, config: LesionConfig) -> SessionData:
    """Read every image of a session and check the contract; raises InputFileError on the first problem."""
    for role, path in files.missing():
        raise InputFileError(path, f"missing {role} file for {files.name}")
    labels = read_label_volume(files.lesions)
    flair = read_volume(files.flair)
    prl_mask = read_label_volume(files.prl_mask) if files.prl_mask else None
    susceptibility_file = files.phase if files.susceptibility == "phase" else files.qsm
    for grid in [read_grid(susceptibility_file), flair.grid, *([prl_mask.grid] if prl_mask else [])]:
        check_same_grid(labels.grid, grid)
    if files.t1w is not None:  # only its grid matters here: it is the registration reference
        check_same_grid(labels.grid, read_grid(files.t1w))
    lesion_mask = labels.data > 0
    susceptibility, reading = read_susceptibility(files, lesion_mask)
    flair = replace_non_finite(flair, lesion_mask)
    report_findings(flair.path, flair_findings(flair.data))
    instances = instance_map(labels.data, config, has_rim_table=files.rim_table is not None)
    table = lesion_table(instances, labels.affine, config)
    table = attach_rim_labels(
        table, instances, files.rim_table, prl_mask.data if prl_mask else None, files.lesions
    )
    return SessionData(
        files=files,
        qsm=susceptibility.data,
        flair=flair.data,
        instances=instances,
        affine=labels.affine,
        lesions=table,
        reading=reading,
    )
