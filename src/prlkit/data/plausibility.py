"""Plausibility of QSM and FLAIR intensities: catch a wrong unit or a wrong file before it trains or predicts.

Pure functions on voxel arrays; each returns `Finding`s (an `error` refuses the image, a `warning` lets
it through with one line). Statistics are taken over the "brain": finite, non-zero voxels (QSM and
skull-stripped FLAIR are 0 or NaN outside it). Thresholds leave a wide margin around real data:
|χ| of real QSM in ppm has a 99th percentile of about 0.05–0.3 (prlkit's synthetic cohorts 0.10–0.15),
the same map in ppb about 50–300; QSM is signed (about half the brain below 0 ppm) while magnitude
images (T1w, FLAIR) are positive apart from a few interpolation undershoots (below 1 % in real FLAIR).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prlkit.data.bids import PrlkitWarning
from prlkit.errors import InputFileError

QSM_UNITS = {"ppm": 1.0, "ppb": 1e-3}  # factor that converts a map in this unit to ppm
QSM_PPB_P99 = 5.0  # 99th percentile of |χ| (ppm) above which the map is taken to be in ppb (or unscaled)
QSM_TINY_P99 = 0.005  # below this the map is implausibly flat (e.g. ppm data declared as ppb)
QSM_MIN_NEGATIVE = 0.05  # a signed map has far more of its brain voxels below 0 than this
FLAIR_MAX_NEGATIVE = 0.05  # a magnitude image has far fewer of its non-zero voxels below 0 than this
FEW_LEVELS = 16  # an integer map with fewer distinct values than this was rounded to whole units


@dataclass(frozen=True)
class Finding:
    """One implausible statistic of an image: `level` is "error" (refuse) or "warning"."""

    level: str
    message: str


def brain_values(data: np.ndarray) -> np.ndarray:
    """The finite, non-zero voxel values (the brain of a masked or skull-stripped image), as float64."""
    values = np.asarray(data, dtype=np.float64).ravel()
    return values[np.isfinite(values) & (values != 0)]


def qsm_findings(data: np.ndarray, integer_storage: bool = False) -> list[Finding]:
    """What looks wrong with a QSM map meant to be in ppm (`integer_storage`: integers with no scale factor)."""
    brain = brain_values(data)
    if brain.size == 0:
        return [Finding("error", "QSM is zero (or NaN) in every voxel")]
    p99 = float(np.percentile(np.abs(brain), 99))
    negative = float(np.mean(brain < 0))
    stored = " (stored as integers with no scale factor)" if integer_storage else ""
    if negative < QSM_MIN_NEGATIVE and p99 > 1:
        return [Finding("warning", f"only {negative:.1%} of the non-zero voxels are negative and the 99th percentile "
                                   f"is {p99:.4g}: QSM is signed around 0 ppm; is this a magnitude image such as a "
                                   "T1w?")]
    if p99 > QSM_PPB_P99:
        return [Finding("warning", f"99th percentile of |QSM| in the brain is {p99:.4g}{stored}: is it in ppb? "
                                   "prlkit expects ppm (--qsm-unit ppb converts)")]
    levels = np.unique(brain).size if integer_storage else FEW_LEVELS
    if levels < FEW_LEVELS:
        return [Finding("warning", f"only {levels} distinct values in the brain{stored}: was QSM rounded to whole "
                                   "ppm? store it as float, or as integers with scl_slope")]
    if p99 < QSM_TINY_P99:
        return [Finding("warning", f"99th percentile of |QSM| in the brain is {p99:.2g} ppm, far below real QSM "
                                   "(0.05-0.3 ppm): is it already in ppm but read with --qsm-unit ppb?")]
    return []


def flair_findings(data: np.ndarray) -> list[Finding]:
    """What looks wrong with a FLAIR image (a non-negative magnitude image)."""
    brain = brain_values(data)
    if brain.size == 0:
        return [Finding("error", "FLAIR is zero (or NaN) in every voxel")]
    negative = float(np.mean(brain < 0))
    if negative > FLAIR_MAX_NEGATIVE:
        return [Finding("warning", f"{negative:.0%} of the non-zero voxels are negative (minimum {brain.min():.4g}): "
                                   "FLAIR is a non-negative magnitude image; is it inverted, z-scored or not a "
                                   "FLAIR?")]
    return []


def report_findings(path: Path, findings: list[Finding]) -> None:
    """Raise the first error of an image's plausibility findings; warn (one line naming the file) for the rest."""
    for finding in findings:
        if finding.level == "error":
            raise InputFileError(path, finding.message)
    for finding in findings:
        warnings.warn(f"{path}: {finding.message}", PrlkitWarning, stacklevel=3)
