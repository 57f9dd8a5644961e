"""QSM by physics: dipole kernel, forward field, field noise, and a TKD inversion.

The synthetic QSM is not painted: susceptibility is convolved with the unit dipole (B0 along
the last axis) in k-space, noise and a residual background field are added to the local field
inside the brain, and the field is inverted by thresholded k-space division (TKD). The result
carries the streaking, underestimation and noise amplification of real reconstructions.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft

# Zero-padding of the synthetic subjects' FFTs: the brain fills most of the grid, so a few voxels
# suffice against wrap-around.
BRAIN_PAD = 8


def padded_shape(shape: tuple[int, ...], pad: int) -> tuple[int, ...]:
    """`shape` plus `pad` voxels on each side, rounded up to a size the FFT handles fast."""
    return tuple(fft.next_fast_len(int(n) + 2 * pad, real=True) for n in shape)


@lru_cache(maxsize=4)
def dipole_kernel(shape: tuple[int, int, int], voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """The unit dipole kernel D(k) = 1/3 - kz²/|k|² (D(0) = 0) on the rfftn half-grid of `shape`.

    B0 lies along the last array axis. D is the Fourier transform of the Lorentz-corrected
    field of a unit point susceptibility, so `irfftn(D * rfftn(chi))` is the local field in ppm.
    """
    kx = fft.fftfreq(shape[0], d=voxel_size[0])[:, None, None]
    ky = fft.fftfreq(shape[1], d=voxel_size[1])[None, :, None]
    kz = fft.rfftfreq(shape[2], d=voxel_size[2])[None, None, :]
    k2 = kx**2 + ky**2 + kz**2
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = 1.0 / 3.0 - kz**2 / k2
    kernel[0, 0, 0] = 0.0
    kernel = kernel.astype(np.float32)
    kernel.flags.writeable = False  # cached: shared between calls
    return kernel


def _pad(volume: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-pad `volume` into the corner of an array of `shape` (FFT convolution is circular)."""
    out = np.zeros(shape, dtype=np.float32)
    out[tuple(slice(0, n) for n in volume.shape)] = volume
    return out


def forward_field(chi: np.ndarray, pad: int = 16) -> np.ndarray:
    """The local field (ppm of B0) produced by susceptibility `chi` (ppm), same shape as `chi`.

    `pad` voxels of zeros on each side keep the circular convolution from wrapping around.
    """
    big = padded_shape(chi.shape, pad)
    kernel = dipole_kernel(big)
    field = fft.irfftn(fft.rfftn(_pad(chi, big)) * kernel, s=big)
    return field[tuple(slice(0, n) for n in chi.shape)].astype(np.float32)


def tkd_inversion(field: np.ndarray, mask: np.ndarray, threshold: float = 0.2, pad: int = 16) -> np.ndarray:
    """Susceptibility from a local field by thresholded k-space division, masked to `mask`.

    Where |D| < threshold the kernel is replaced by ±threshold (the standard TKD); the result
    is referenced to its mean inside the mask, as whole-brain referencing does.
    """
    big = padded_shape(field.shape, pad)
    kernel = dipole_kernel(big)
    safe = np.where(np.abs(kernel) < threshold, np.where(kernel < 0, -threshold, threshold), kernel)
    inverse = (1.0 / safe).astype(np.float32)
    inverse[0, 0, 0] = 0.0
    chi = fft.irfftn(fft.rfftn(_pad(field * mask, big)) * inverse, s=big)
    chi = chi[tuple(slice(0, n) for n in field.shape)].astype(np.float32)
    chi -= chi[mask].mean()
    chi[~mask] = 0.0
    return chi


def measured_field(
    chi: np.ndarray,
    rng: np.random.Generator,
    field_noise_ppm: float,
    background_ppm: float,
    smooth_field: np.ndarray,
    pad: int = BRAIN_PAD,
) -> np.ndarray:
    """The local field (ppm) a scan measures: forward field, residual background and Gaussian noise.

    `smooth_field` is a unit-variance smooth random field that models imperfect background
    field removal (scaled by `background_ppm`). The same field makes the QSM (`tkd_inversion`)
    and the phase (`prlkit.synth.phase`), so the two are views of one acquisition.
    """
    field = forward_field(chi, pad=pad)
    field += background_ppm * smooth_field
    field += field_noise_ppm * rng.standard_normal(field.shape, dtype=np.float32)
    return field
