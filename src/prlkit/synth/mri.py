"""FLAIR and T1w contrasts from the phantom: tissue intensities, heterogeneous lesions,
partial volume, smooth bias field, Rician noise and an arbitrary global scale."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from prlkit.synth.phantom import BACKGROUND, CAUDATE, CSF, GM, PALLIDUM, PUTAMEN, THALAMUS, VENTRICLE, WM, smooth_noise

# Intensities relative to white matter.
FLAIR_TISSUE = {BACKGROUND: 0.0, CSF: 0.15, GM: 1.35, WM: 1.0, VENTRICLE: 0.08, CAUDATE: 1.25,
                PUTAMEN: 1.15, PALLIDUM: 0.95, THALAMUS: 1.15}
T1_TISSUE = {BACKGROUND: 0.0, CSF: 0.3, GM: 0.68, WM: 1.0, VENTRICLE: 0.22, CAUDATE: 0.74,
             PUTAMEN: 0.8, PALLIDUM: 0.9, THALAMUS: 0.85}


def _lookup(table: dict[int, float], tissue: np.ndarray) -> np.ndarray:
    lut = np.zeros(max(table) + 1, dtype=np.float32)
    for code, value in table.items():
        lut[code] = value
    return lut[tissue]


def mr_image(rng: np.random.Generator, tissue: np.ndarray, labels: np.ndarray, lesion_values: np.ndarray,
             contrast: dict[int, float], texture: np.ndarray, noise: float, bias: float) -> np.ndarray:
    """One magnitude image as int16: tissue contrast, lesions at `lesion_values[label]` (relative
    to WM), multiplicative `texture`, partial volume, bias field, Rician noise (`noise` × WM) and
    an arbitrary global scale, as scanners store it."""
    image = _lookup(contrast, tissue) * texture
    lesion = labels > 0
    image[lesion] = lesion_values[labels[lesion]] * texture[lesion] ** 2  # lesions more heterogeneous
    image = ndimage.gaussian_filter(image, 0.6)
    image *= np.exp(bias * smooth_noise(rng, tissue.shape, 30.0))
    real = image + noise * rng.standard_normal(tissue.shape, dtype=np.float32)
    imaginary = noise * rng.standard_normal(tissue.shape, dtype=np.float32)
    scale = rng.uniform(200.0, 2000.0)
    return np.rint(scale * np.sqrt(real**2 + imaginary**2)).astype(np.int16)


def tissue_texture(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Fine multiplicative texture shared by the MR contrasts (the same tissue under both)."""
    return 1.0 + 0.06 * smooth_noise(rng, shape, 1.5)


def lesion_intensities(rng: np.random.Generator, n_labels: int, low: float, high: float) -> np.ndarray:
    """Per-lesion intensity relative to WM, indexed by label (index 0 unused)."""
    return np.concatenate([[0.0], rng.uniform(low, high, n_labels)]).astype(np.float32)
