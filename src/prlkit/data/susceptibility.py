"""The susceptibility channel of a session: QSM in ppm, or T2*-weighted phase as local field shift in ppm.

A run reads one of them for every session (`Config.susceptibility`). Phase is checked
(`prlkit.data.phase.check_phase_image`), its sign convention forced (`phase_sign: positive|negative`) or
read from the veins (`auto`), and converted with the echo time and field strength of its sidecar, so that
positive always means paramagnetic, as in QSM. What was decided is returned for the outputs to record.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from prlkit.data.bids import PrlkitWarning, SessionFiles
from prlkit.data.images import Volume, read_volume, replace_non_finite
from prlkit.data.phase import (
    PhaseAcquisition,
    check_phase_image,
    detect_phase_sign,
    phase_to_ppm,
    read_phase_sidecar,
    sidecar_path,
)
from prlkit.data.plausibility import QSM_UNITS, qsm_findings, report_findings
from prlkit.errors import InputFileError, PrlkitError

#: where a phase sidecar lacks EchoTime or MagneticFieldStrength: a typical 3 T T2*-weighted phase
#: (prlkit's assumption, said in a warning; only the scale of the field shift depends on it)
ASSUMED_ACQUISITION = PhaseAcquisition(echo_time_s=0.02, field_strength_t=3.0)

#: what reading phase decided, as lesion-table columns (patch cache, `prlkit train`'s lesions.tsv, predict outputs)
READING_COLUMNS = ("susceptibility", "phase_sign", "phase_sign_from", "echo_time_s", "field_strength_t",
                   "acquisition_from")


def read_susceptibility(files: SessionFiles, lesion_mask: np.ndarray) -> tuple[Volume, dict[str, str]]:
    """The session's susceptibility channel in ppm (float32, finite; positive = paramagnetic) and what was
    decided reading it (empty for QSM; for phase: sign, how it was decided, echo time, field strength)."""
    if files.susceptibility == "phase":
        return read_phase_field(files, lesion_mask)
    qsm = in_ppm(replace_non_finite(read_volume(files.qsm), lesion_mask), files.qsm_unit)
    report_findings(qsm.path, qsm_findings(qsm.data, qsm.integer_storage))
    return qsm, {}


def read_phase_field(files: SessionFiles, lesion_mask: np.ndarray) -> tuple[Volume, dict[str, str]]:
    """The session's phase (radians) as local field shift in ppm, paramagnetic positive (see the module)."""
    phase = replace_non_finite(read_volume(files.phase), lesion_mask)
    brain = phase.data != 0  # phase is zero (or NaN, made 0) outside the brain, as QSM is
    check_phase_image(phase.data, brain, phase.path)
    if files.phase_sign == "auto":
        try:
            found = detect_phase_sign(phase.data, brain, b0_in_voxel_axes(phase.affine))
        except PrlkitError as error:
            raise InputFileError(phase.path, str(error)) from None
        sign, decided = found.sign, f"veins (p = {found.p_value:.1g}, {found.n_vessel_voxels} vessel voxels)"
    else:
        sign, decided = (1 if files.phase_sign == "positive" else -1), "given (phase_sign)"
    acquisition = read_phase_sidecar(files.phase)
    echo_time = acquisition.echo_time_s or ASSUMED_ACQUISITION.echo_time_s
    field_strength = acquisition.field_strength_t or ASSUMED_ACQUISITION.field_strength_t
    assumed = acquisition.echo_time_s is None or acquisition.field_strength_t is None
    if assumed:
        warnings.warn(f"{sidecar_path(files.phase)}: no EchoTime and MagneticFieldStrength (or no sidecar): the phase "
                      f"is converted to ppm assuming TE {echo_time * 1000:g} ms at {field_strength:g} T",
                      PrlkitWarning, stacklevel=2)
    field = phase_to_ppm(phase.data, echo_time, field_strength, sign).astype(np.float32)
    record = {"susceptibility": "phase", "phase_sign": "positive" if sign > 0 else "negative",
              "phase_sign_from": decided, "echo_time_s": f"{echo_time:g}", "field_strength_t": f"{field_strength:g}",
              "acquisition_from": "assumed" if assumed else "sidecar"}
    return dataclasses.replace(phase, data=field), record


def b0_in_voxel_axes(affine: np.ndarray) -> tuple[float, float, float]:
    """The scanner's B0 direction (world z of the NIfTI affine) in the image's voxel axes, unit length."""
    direction = np.linalg.solve(np.asarray(affine, dtype=np.float64)[:3, :3], np.array([0.0, 0.0, 1.0]))
    return tuple(float(v) for v in direction / np.linalg.norm(direction))


def in_ppm(qsm: Volume, unit: str) -> Volume:
    """The QSM volume converted from `unit` (a key of QSM_UNITS) to ppm."""
    if unit not in QSM_UNITS:
        raise InputFileError(qsm.path, f"unknown QSM unit {unit!r}; known: {', '.join(QSM_UNITS)}")
    factor = QSM_UNITS[unit]
    return qsm if factor == 1 else dataclasses.replace(qsm, data=qsm.data * np.float32(factor))
