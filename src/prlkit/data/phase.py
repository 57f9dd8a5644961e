"""Phase input: radians to ppm, the guardrails against wrong phase images, and the sign convention.

Rim readers use unwrapped, high-pass-filtered T2*-weighted phase in radians. This module converts
it to a local field shift in ppm (with the echo time and field strength of the BIDS sidecar),
refuses images that are not such a phase (raw wrapped phase, magnitude/SWI, scanner units), warns
about a phase that still carries its background field, and tells the sign convention (whether
paramagnetic tissue has positive or negative phase) from the veins. Not yet read by the pipeline.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage, stats

from prlkit.data.bids import PrlkitWarning
from prlkit.errors import InputFileError, PrlkitError

GYROMAGNETIC_MHZ_PER_T = 42.577478  # γ̄ = γ/2π of 1H (CODATA 2018)

# Wrapped phase. Raw phase is confined to [-π, π) and reaches both ends; unwrapped phase of any kind is
# either not confined (veins at 7 T exceed π) or never reaches π (3 T high-pass-filtered phase: |φ| < ~2).
# A wrapped image jumps by ~2π between neighbours along every wrap line; in unwrapped phase with an SNR
# above ~3 a neighbour difference above π is essentially impossible. Measured on the 64³ test volumes: vein
# phase plus a background of 2-20 rad, wrapped, has 3-15 % such jumps; vein phase ×2, wrapped, 0.4 %; unwrapped 0.
WRAP_RANGE_TOLERANCE = 0.02  # max |φ| within 2 % of π (float32 storage and 12-bit rescaling stay inside 1 %)
WRAP_JUMP_FRACTION = 0.001  # neighbour pairs in the brain with |Δφ| > π above which the image is wrapped

# Magnitude, SWI or scanner units. Filtered phase is signed around 0 (about half the brain below 0);
# magnitude and SWI are non-negative apart from interpolation undershoots (< 1 % in real FLAIR/T2*w).
MAGNITUDE_MAX_NEGATIVE = 0.01  # fraction of brain voxels below 0 under which the image is taken as intensity
# High-pass-filtered phase stays under ~10 rad (veins at 7 T, TE 30 ms), unfiltered unwrapped phase under
# ~60 rad (1 ppm of background at 7 T, TE 30 ms); scanner units are ±3142 (mrad) or ±4096 (12-bit).
PHASE_MAX_P99_RAD = 100.0  # 99th percentile of |φ| in the brain above which the values are not radians

# Background field left in. Veins, lesions and noise live at scales of 1-3 voxels; a residual background
# varies over tens. After a Gaussian low pass of LOWPASS_SIGMA_VOXELS (about the radius of a V-SHARP
# kernel's smallest sphere at 1 mm) the test volumes' vein phase keeps 1-3 % of its energy; with a smooth
# background of 0.4× its own RMS added it keeps ~60 %, of 1× ~80 %. Half is the line between them.
LOWPASS_SIGMA_VOXELS = 4.0
LOWPASS_MAX_ENERGY_FRACTION = 0.5  # share of the brain's phase energy (mean φ²) in the low-pass image

# Sign detection from veins.
HESSIAN_SCALES_VOXELS = (1.0, 1.5)  # Gaussian scales of the Hessian: veins of radius ~1-3 voxels
TUBE_AXIS_RATIO = 0.5  # a tube curves along its axis less than half as much as across it: |λ1| < 0.5 |λ2|
# Measured on the 64³ test volumes (phase noise 0.05-0.2 rad): white noise and smooth blobs give 0-2 vessel
# voxels, eight veins of radius 1.2-1.5 about 3000-4500 (lumen plus the field's lobes), one vein 4 voxels
# long ~160; the eight veins' slope has p ~ 1e-5 to 1e-6, veins all at the magic angle p ~ 0.2.
VESSEL_CONTRAST = 4.0  # a vessel voxel's cross-section curvature |λ2| is above 4× the brain's median |λ2|
MIN_VESSEL_VOXELS = 100  # fewer vessel voxels than this: no veins to tell the sign from
SIGN_BLOCK_VOXELS = 8  # vessel voxels are grouped in cubic blocks (independent units) for the slope's error
SIGN_MAX_P_VALUE = 1e-3  # the slope must be this significant (two-sided, block-robust) to decide


def phase_to_ppm(phase: np.ndarray, echo_time_s: float, field_strength_t: float, sign: int) -> np.ndarray:
    """Local field shift in ppm from phase in radians: φ / (sign · 2π · γ̄ · B0 · TE) · 1e6.

    `sign` is +1 when paramagnetic tissue has positive phase, -1 when negative (see `detect_phase_sign`).
    """
    return np.asarray(phase, dtype=np.float32) / np.float32(_radians_per_ppm(echo_time_s, field_strength_t, sign))


def ppm_to_phase(field_ppm: np.ndarray, echo_time_s: float, field_strength_t: float, sign: int) -> np.ndarray:
    """Phase in radians accumulated at `echo_time_s` by a local field shift in ppm; inverse of `phase_to_ppm`."""
    return np.asarray(field_ppm, dtype=np.float32) * np.float32(_radians_per_ppm(echo_time_s, field_strength_t, sign))


def _radians_per_ppm(echo_time_s: float, field_strength_t: float, sign: int) -> float:
    """Phase (rad) of a 1 ppm field shift: sign · 2π · γ̄ · B0 · TE · 1e-6."""
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, not {sign!r}")
    if not (echo_time_s > 0 and field_strength_t > 0):
        raise ValueError(f"echo time and field strength must be positive: {echo_time_s!r} s, {field_strength_t!r} T")
    return sign * 2 * math.pi * GYROMAGNETIC_MHZ_PER_T * 1e6 * field_strength_t * echo_time_s * 1e-6


@dataclass(frozen=True)
class PhaseAcquisition:
    """Echo time (s) and field strength (T) of a phase image, each None where its sidecar does not say."""

    echo_time_s: float | None
    field_strength_t: float | None


MAX_ECHO_TIME_S = 1.0  # BIDS EchoTime is in seconds; T2*-weighted TEs are 5-40 ms, so ≥ 1 is milliseconds


def sidecar_path(nifti_path: Path | str) -> Path:
    """The BIDS JSON sidecar of an image: same folder and stem, `.json` (`x.nii.gz` -> `x.json`)."""
    path = Path(nifti_path)
    stem = path.name.removesuffix(".gz").removesuffix(".nii")
    return path.with_name(stem + ".json")


def read_phase_sidecar(nifti_path: Path | str) -> PhaseAcquisition:
    """`EchoTime` and `MagneticFieldStrength` from the image's JSON sidecar (no sidecar: both None).

    One-line InputFileError for a sidecar that is not a JSON object, or a value that is not a positive number.
    """
    path = sidecar_path(nifti_path)
    if not path.exists():
        return PhaseAcquisition(None, None)
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputFileError(path, f"sidecar cannot be read as JSON ({type(error).__name__}: {error})") from None
    if not isinstance(sidecar, dict):
        raise InputFileError(path, "sidecar is not a JSON object")
    echo_time = _positive_field(sidecar, "EchoTime", path, "s")
    if echo_time is not None and echo_time >= MAX_ECHO_TIME_S:
        raise InputFileError(path, f"EchoTime is {echo_time:g}: BIDS wants seconds (e.g. 0.02 for 20 ms)")
    return PhaseAcquisition(echo_time, _positive_field(sidecar, "MagneticFieldStrength", path, "T"))


def _positive_field(sidecar: dict, key: str, path: Path, unit: str) -> float | None:
    """sidecar[key] as a positive float, None when absent; an InputFileError for anything else."""
    value = sidecar.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise InputFileError(path, f"{key} must be a positive number in {unit}, found {value!r}")
    return float(value)


def check_phase_image(phase: np.ndarray, brain_mask: np.ndarray, path: Path | str) -> None:
    """Refuse what is not an unwrapped phase in radians (one-line InputFileError naming `path`); warn
    (PrlkitWarning) when the phase still carries a large smooth background field."""
    mask = np.asarray(brain_mask, dtype=bool) & np.isfinite(phase)
    values = np.asarray(phase, dtype=np.float64)[mask]
    if values.size == 0:
        raise InputFileError(path, "no finite phase value inside the brain mask")
    _refuse_intensity_scale(values, path)
    _refuse_wrapped(phase, mask, path)
    smooth = low_frequency_fraction(phase, mask)
    if smooth > LOWPASS_MAX_ENERGY_FRACTION:
        warnings.warn(f"{path}: {smooth:.0%} of the phase in the brain is a smooth background (scales above "
                      f"{LOWPASS_SIGMA_VOXELS:g} voxels): was it high-pass filtered (e.g. V-SHARP or homodyne)?",
                      PrlkitWarning, stacklevel=2)


def _refuse_intensity_scale(values: np.ndarray, path: Path | str) -> None:
    """Refuse brain values that are non-negative (magnitude, SWI) or far beyond radians (scanner units)."""
    negative = float(np.mean(values < 0))
    if negative < MAGNITUDE_MAX_NEGATIVE and values.mean() > 0:
        raise InputFileError(path, f"only {negative:.1%} of the brain voxels are negative (mean {values.mean():.4g}): "
                                   "this looks like a magnitude or SWI image, not phase; give the unwrapped, "
                                   "high-pass-filtered phase in radians")
    p99 = float(np.percentile(np.abs(values), 99))
    if p99 > PHASE_MAX_P99_RAD:
        raise InputFileError(path, f"99th percentile of |phase| in the brain is {p99:.4g}, not radians: this looks "
                                   "like phase in scanner units (e.g. ±4096); scale it to radians, unwrap and "
                                   "high-pass filter it")


def _refuse_wrapped(phase: np.ndarray, mask: np.ndarray, path: Path | str) -> None:
    """Refuse raw wrapped phase: confined to ±π, reaching it, and jumping by ~2π between neighbours."""
    largest = float(np.abs(np.asarray(phase, dtype=np.float64)[mask]).max())
    jumps = wrap_jump_fraction(phase, mask)
    if abs(largest - math.pi) <= WRAP_RANGE_TOLERANCE * math.pi and jumps > WRAP_JUMP_FRACTION:
        raise InputFileError(path, f"looks like raw wrapped phase: values fill ±π (max |φ| {largest:.3f}) with 2π "
                                   f"jumps between {jumps:.2%} of neighbouring brain voxels; unwrap and high-pass "
                                   "filter it first (e.g. ROMEO/Laplacian unwrapping + V-SHARP or homodyne filtering)")


def wrap_jump_fraction(phase: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of face-neighbour voxel pairs, both inside `mask`, whose phase differs by more than π."""
    data = np.asarray(phase, dtype=np.float64)
    jumps = pairs = 0
    for axis in range(data.ndim):
        ahead = [slice(None)] * data.ndim
        behind = [slice(None)] * data.ndim
        ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
        both = mask[tuple(ahead)] & mask[tuple(behind)]
        jumps += int(np.count_nonzero(np.abs(data[tuple(ahead)] - data[tuple(behind)])[both] > math.pi))
        pairs += int(np.count_nonzero(both))
    return jumps / pairs if pairs else 0.0


def low_frequency_fraction(phase: np.ndarray, mask: np.ndarray) -> float:
    """Share of the phase energy (mean φ² in `mask`) left after a Gaussian low pass inside the mask.

    The low pass is a normalised convolution (smoothed φ·mask / smoothed mask), so the zeros outside
    the brain do not pull the edge towards 0. A constant offset counts as low frequency.
    """
    weights = mask.astype(np.float64)
    data = np.where(mask, np.asarray(phase, dtype=np.float64), 0.0)
    smooth = ndimage.gaussian_filter(data, LOWPASS_SIGMA_VOXELS) / np.maximum(
        ndimage.gaussian_filter(weights, LOWPASS_SIGMA_VOXELS), 1e-6)
    energy = float(np.mean(data[mask] ** 2))
    return float(np.mean(smooth[mask] ** 2)) / energy if energy > 0 else 0.0


@dataclass(frozen=True)
class PhaseSign:
    """The sign convention read from the veins: `sign` +1 (paramagnetic positive) or -1 (negative).

    `slope` is the regression slope of phase (rad) on 3cos²θ - 1 over the vessel voxels; `t_statistic`
    and `p_value` its block-robust test against 0.
    """

    sign: int
    n_vessel_voxels: int
    slope: float
    t_statistic: float
    p_value: float


def detect_phase_sign(
    phase: np.ndarray, brain_mask: np.ndarray, b0_direction: tuple[float, float, float] = (0.0, 0.0, 1.0)
) -> PhaseSign:
    """The sign convention of a phase image, from how the venous phase depends on vessel orientation.

    Inside a long cylinder at angle θ to B0 the field shift is Δχ/6 · (3cos²θ - 1), and veins are
    paramagnetic (Δχ > 0): positive for veins along B0, negative (half as strong) across it. Vessel
    voxels come from the Hessian (`vessel_axes`); phase is regressed on g = 3cos²θ - 1 and the slope's
    sign is the convention. `b0_direction` is in voxel axes, and angles are measured in voxel space, so
    voxels should be near-isotropic. A PrlkitError when there are too few vessel voxels or the slope is
    not significant.
    """
    b0 = np.asarray(b0_direction, dtype=np.float64)
    b0 = b0 / np.linalg.norm(b0)
    give_up = "cannot tell the phase sign convention from veins: {}; pass --phase-sign positive|negative"
    vessels, axes = vessel_axes(phase, brain_mask)
    n = int(vessels.sum())
    if n < MIN_VESSEL_VOXELS:
        raise PrlkitError(give_up.format(f"only {n} vessel voxels in the field of view (need {MIN_VESSEL_VOXELS})"))
    g = 3 * (axes @ b0) ** 2 - 1
    blocks = np.ravel_multi_index(tuple(np.argwhere(vessels).T // SIGN_BLOCK_VOXELS),
                                  tuple(-(-s // SIGN_BLOCK_VOXELS) for s in vessels.shape))
    slope, t, p = block_robust_slope(g, np.asarray(phase, dtype=np.float64)[vessels], blocks)
    if not p < SIGN_MAX_P_VALUE:
        raise PrlkitError(give_up.format(f"the phase of {n} vessel voxels does not depend on their orientation "
                                         f"(slope {slope:.3g} rad, p = {p:.2g})"))
    return PhaseSign(sign=1 if slope > 0 else -1, n_vessel_voxels=n, slope=slope, t_statistic=t, p_value=p)


def vessel_axes(phase: np.ndarray, brain_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tube-shaped voxels of the phase (bright or dark alike) and each one's axis (unit vectors, one row each).

    A Frangi-type test on the Hessian eigenvalues |λ1| ≤ |λ2| ≤ |λ3| at each scale of
    HESSIAN_SCALES_VOXELS: λ2 and λ3 share a sign (curved the same way across the tube), |λ1| <
    TUBE_AXIS_RATIO·|λ2| (straight along it) and |λ2| > VESSEL_CONTRAST × the brain's median |λ2|. The
    axis is the eigenvector of λ1 at the scale with the strongest contrast. Both polarities count, so
    negating the phase finds the same voxels. The brain mask is eroded by the filter's reach first. As
    with Frangi's filter, the flank of a sharp blob passes too (its axis radial, so orientations average out).
    """
    mask = np.asarray(brain_mask, dtype=bool) & np.isfinite(phase)
    inside = ndimage.binary_erosion(mask, iterations=math.ceil(2 * max(HESSIAN_SCALES_VOXELS)))
    data = np.where(mask, np.asarray(phase, dtype=np.float32), np.float32(0))
    best = np.zeros(int(inside.sum()))
    axes = np.zeros((best.size, 3))
    for sigma in HESSIAN_SCALES_VOXELS:
        eigenvalues, eigenvectors = _hessian_eigen(data, inside, sigma)
        l1, l2 = np.abs(eigenvalues[:, 0]), np.abs(eigenvalues[:, 1])
        tube = (eigenvalues[:, 1] * eigenvalues[:, 2] > 0) & (l1 < TUBE_AXIS_RATIO * l2)
        contrast = np.where(tube, l2 / max(float(np.median(l2)), 1e-12), 0.0)
        stronger = contrast > best
        best[stronger] = contrast[stronger]
        axes[stronger] = eigenvectors[stronger, :, 0]
    vessel = best > VESSEL_CONTRAST
    vessels = np.zeros(mask.shape, dtype=bool)
    vessels[inside] = vessel
    return vessels, axes[vessel]


def _hessian_eigen(data: np.ndarray, inside: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Hessian eigenvalues (n, 3) sorted by |λ| and eigenvectors (n, 3, 3; column k for λk) at `inside`."""
    hessian = np.empty((int(inside.sum()), 3, 3), dtype=np.float32)  # float32: whole-brain volumes stay small
    for i in range(3):
        for j in range(i, 3):
            order = [0, 0, 0]
            order[i] += 1
            order[j] += 1
            hessian[:, i, j] = hessian[:, j, i] = ndimage.gaussian_filter(data, sigma, order=order)[inside]
    eigenvalues, eigenvectors = np.linalg.eigh(hessian)
    order = np.argsort(np.abs(eigenvalues), axis=1)
    eigenvalues = np.take_along_axis(eigenvalues, order, axis=1)
    eigenvectors = np.take_along_axis(eigenvectors, order[:, None, :], axis=2)
    return eigenvalues, eigenvectors


def block_robust_slope(x: np.ndarray, y: np.ndarray, blocks: np.ndarray) -> tuple[float, float, float]:
    """Least-squares slope of y on x, its t statistic and two-sided p-value, with a cluster-robust error.

    Neighbouring vessel voxels share their noise (the Hessian smooths), so voxels are not independent;
    the error treats each block as one unit (sandwich variance, df = blocks - 1).
    """
    xc = x - x.mean()
    sxx = float(np.sum(xc**2))
    if sxx == 0:
        return 0.0, 0.0, 1.0
    slope = float(np.sum(xc * (y - y.mean())) / sxx)
    residual = (y - y.mean()) - slope * xc
    _, block_index = np.unique(blocks, return_inverse=True)
    n_blocks = int(block_index.max()) + 1
    if n_blocks < 2:
        return slope, 0.0, 1.0
    scores = np.bincount(block_index, weights=xc * residual, minlength=n_blocks)
    variance = n_blocks / (n_blocks - 1) * float(np.sum(scores**2)) / sxx**2
    t = slope / math.sqrt(variance) if variance > 0 else math.copysign(math.inf, slope)
    return slope, float(t), float(2 * stats.t.sf(abs(t), df=n_blocks - 1))
