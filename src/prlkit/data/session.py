"""Load one session: read and cross-check its images, derive lesion instances and labels."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prlkit.config import LesionConfig
from prlkit.data.bids import PrlkitWarning, SessionFiles
from prlkit.data.images import (
    Volume,
    check_same_grid,
    read_grid,
    read_label_volume,
    read_volume,
    replace_non_finite,
)
from prlkit.data.lesions import attach_rim_labels, instance_map, lesion_table
from prlkit.data.plausibility import QSM_UNITS, Finding, flair_findings, qsm_findings
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
    qsm = in_ppm(replace_non_finite(qsm, lesion_mask), files.qsm_unit)
    flair = replace_non_finite(flair, lesion_mask)
    report_findings(qsm.path, qsm_findings(qsm.data, qsm.integer_storage))
    report_findings(flair.path, flair_findings(flair.data))
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


def in_ppm(qsm: Volume, unit: str) -> Volume:
    """The QSM volume converted from `unit` (a key of QSM_UNITS) to ppm."""
    if unit not in QSM_UNITS:
        raise InputFileError(qsm.path, f"unknown QSM unit {unit!r}; known: {', '.join(QSM_UNITS)}")
    factor = QSM_UNITS[unit]
    return qsm if factor == 1 else dataclasses.replace(qsm, data=qsm.data * np.float32(factor))


def report_findings(path: Path, findings: list[Finding]) -> None:
    """Raise the first error of an image's plausibility findings; warn (one line naming the file) for the rest."""
    for finding in findings:
        if finding.level == "error":
            raise InputFileError(path, finding.message)
    for finding in findings:
        warnings.warn(f"{path}: {finding.message}", PrlkitWarning, stacklevel=3)
