"""The dipole forward model against the analytic field of a uniformly magnetised sphere, and TKD."""

import numpy as np
import pytest

from prlkit.synth.qsm import dipole_kernel, forward_field, tkd_inversion


def test_dipole_kernel_values():
    kernel = dipole_kernel((16, 16, 16))
    assert kernel[0, 0, 0] == 0.0
    assert kernel.min() == pytest.approx(-2 / 3, abs=1e-6)  # k along B0
    assert kernel[4, 0, 0] == pytest.approx(1 / 3)  # k perpendicular to B0
    assert kernel.shape == (16, 16, 9)


def test_forward_field_matches_magnetised_sphere():
    """Inside a uniformly magnetised sphere the Lorentz-corrected field is zero; outside it is
    Δχ/3 · (a/r)³ · (3cos²θ - 1). Compared 2 voxels away from the (staircase) surface."""
    n, radius, dchi = 96, 8.0, 1.0
    axis = np.arange(n) - (n - 1) / 2
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    r = np.sqrt(x**2 + y**2 + z**2)
    chi = (r <= radius).astype(np.float32) * dchi
    a = (chi.sum() * 3 / (4 * np.pi)) ** (1 / 3)  # radius of the sphere of the same volume
    field = forward_field(chi, pad=32)
    analytic = dchi / 3 * a**3 / r**3 * (3 * z**2 / r**2 - 1)
    inside = r < radius - 2
    outside = (r > radius + 2) & (r < 4 * radius)
    # tolerance: 2 % of Δχ (3 % of the field's peak 2Δχ/3 at the poles)
    assert np.abs(field[inside]).max() < 0.02 * dchi
    assert np.abs(field[outside] - analytic[outside]).max() < 0.02 * dchi
    far = (r > 2 * radius) & (r < 4 * radius)
    assert np.abs(field[far] - analytic[far]).max() < 0.002 * dchi


def test_tkd_recovers_a_smooth_source_with_underestimation():
    n = 64
    axis = np.arange(n) - (n - 1) / 2
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    chi = (0.1 * np.exp(-(x**2 + y**2 + z**2) / (2 * 4.0**2))).astype(np.float32)
    mask = np.ones(chi.shape, dtype=bool)
    recon = tkd_inversion(forward_field(chi), mask, threshold=0.2)
    centre = recon[n // 2, n // 2, n // 2] - np.median(recon)
    assert 0.6 * 0.1 < centre < 1.0 * 0.1  # TKD underestimates, but keeps most of the source
    assert np.corrcoef(recon.ravel(), chi.ravel())[0, 1] > 0.9
