"""T2*-weighted phase by physics: the measured local field seen through the echo time, high-pass filtered.

Most centres read paramagnetic rims on unwrapped, high-pass-filtered gradient-echo phase rather than on
QSM. The synthetic phase comes from the same noisy local field as the synthetic QSM
(`prlkit.synth.qsm.measured_field`), so both are views of one acquisition: phase (rad) =
sign · 2π · γ̄ · B0 · TE · field (ppm) · 1e-6, then the slowly varying part is removed as a
homodyne filter does. No wrapping is applied: prlkit's input contract is unwrapped phase.

Sign convention. Whether a paramagnetic source (positive local field, e.g. a vein) gives positive or
negative phase depends on the scanner's handedness and on the reconstruction pipeline, and published
statements about which vendor does which disagree; prlkit does not attribute a sign to a vendor. The
default, "negative" (paramagnetic = negative phase, veins and rims dark), is prlkit's choice, matching
the "hypointense phase rim" wording of much of the rim literature; it implies no vendor, and
`prlkit simulate --phase-sign positive` writes the other convention.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from prlkit.data.phase import ppm_to_phase

PHASE_SIGNS = {"positive": 1, "negative": -1}  # the phase sign of a paramagnetic (positive) local field
DEFAULT_PHASE_SIGN = "negative"
# High-pass filter width. A homodyne filter divides the complex image by a low-pass copy of itself;
# for small phase that is phase minus low-pass phase. The common SWI homodyne filter, a 64-point Hann
# window on a 256 mm field of view at 1 mm, halves the power at 0.0625 cycles/mm, as a Gaussian of
# σ = sqrt(ln 2 / 2) / (π · 0.0625) ≈ 3 mm does. That keeps the 1–2 mm rims and the 5–15 mm lesions and
# removes the residual background field (correlation length 20 mm) and slow tissue-scale phase.
HIGHPASS_SIGMA_MM = 3.0


def highpass(phase: np.ndarray, mask: np.ndarray, sigma_mm: float = HIGHPASS_SIGMA_MM,
             voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """`phase` minus its Gaussian-smoothed copy inside `mask`, zero outside.

    The smoothing is a normalised convolution (smoothed masked phase over smoothed mask), so voxels
    outside the mask do not pull the low-pass estimate towards zero at the brain edge.
    """
    sigma = np.asarray(sigma_mm, dtype=float) / np.asarray(voxel_size, dtype=float)
    weight = ndimage.gaussian_filter(mask.astype(np.float32), sigma, mode="constant")
    low = ndimage.gaussian_filter(np.where(mask, phase, 0.0).astype(np.float32), sigma, mode="constant")
    low /= np.maximum(weight, 1e-6)
    return np.where(mask, phase - low, 0.0).astype(np.float32)


def simulate_phase(field_ppm: np.ndarray, mask: np.ndarray, field_strength_t: float, echo_time_s: float,
                   sign: str = DEFAULT_PHASE_SIGN) -> np.ndarray:
    """The phase a rim reader sees (rad, float32): the field through the echo time, high-pass filtered in `mask`."""
    return highpass(ppm_to_phase(field_ppm, echo_time_s, field_strength_t, PHASE_SIGNS[sign]), mask)
