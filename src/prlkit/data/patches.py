"""Lesion-centred cubes: per-participant normalisation, zero-padded extraction, adaptive gating.

Channel order of every patch array: 0 = QSM, 1 = FLAIR, 2 = mask (the gating mask, i.e. the
dilated lesion mask, when gating is on; else the lesion's own voxels). As in the authors' code, the
intensities are normalised per volume before the cube is cut, and gating multiplies every channel.
Models that do not use the mask (the main method) take channels 0-1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from prlkit.config import PatchConfig
from prlkit.data.session import SessionData

CHANNELS = ("qsm", "flair", "mask")
IMAGE_CHANNELS = CHANNELS.index("mask")  # the image channels (QSM, FLAIR): all but the mask


def normalise_flair(flair: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Robust scaling to [0, 1]: the given percentiles of the brain (non-zero) voxels map to 0 and 1."""
    brain = flair[flair > 0]
    if brain.size == 0:
        return np.zeros_like(flair, dtype=np.float32)
    low, high = np.percentile(brain, percentiles)
    scale = high - low if high > low else 1.0
    return np.clip((flair - low) / scale, 0.0, 1.0).astype(np.float32)


def normalise_qsm(qsm: np.ndarray, window_ppm: tuple[float, float], scale: str = "unit") -> np.ndarray:
    """Clip to the ppm window, then ``unit``: map it linearly to [0, 1] (the authors' code), or
    ``signed``: divide by its largest magnitude, so 0 ppm stays 0 as the zero padding does (prlkit)."""
    low, high = window_ppm
    clipped = np.clip(qsm, low, high)
    if scale == "unit":
        return ((clipped - low) / (high - low)).astype(np.float32)
    if scale == "signed":
        return (clipped / max(abs(low), abs(high))).astype(np.float32)
    raise ValueError(f"unknown QSM scale {scale!r}")


def normalise_susceptibility(session: SessionData, config: PatchConfig) -> np.ndarray:
    """The session's susceptibility channel normalised: QSM in `qsm_window_ppm`, phase input's field shift in
    `phase_window_ppm`, then scaled by `qsm_scale`."""
    window = config.phase_window_ppm if session.files.susceptibility == "phase" else config.qsm_window_ppm
    return normalise_qsm(session.qsm, window, config.qsm_scale)


def patch_corners(centers_vox: np.ndarray, size: int) -> np.ndarray:
    """Integer start voxel of each cube: the rounded centre of mass sits at index size // 2."""
    return np.floor(np.asarray(centers_vox, dtype=float) + 0.5).astype(int) - size // 2


def extract_cubes(volume: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """Cubes of edge `size` starting at `corners` (n×3), zero where they leave the volume.

    One zero-padded copy of the volume and a strided window view: all cubes in one indexing step.
    """
    corners = np.asarray(corners, dtype=int).reshape(-1, 3)
    padded = np.pad(volume, size)
    windows = sliding_window_view(padded, (size, size, size))
    i, j, k = (corners + size).T
    return windows[i, j, k]


def voxel_steps(affine: np.ndarray, voxel_mm: float) -> np.ndarray:
    """Per image axis, the step in voxels between samples `voxel_mm` apart (the axis' voxel size from the affine)."""
    return voxel_mm / np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0)


def sample_cubes(volume: np.ndarray, centers_vox: np.ndarray, size: int, steps: np.ndarray,
                 order: int) -> np.ndarray:
    """Cubes of edge `size` sampled every `steps` voxels along the image axes, the rounded centre of mass at
    index size // 2 as in `extract_cubes` (which this equals for unit steps); zero outside the volume.
    `order` 1 interpolates linearly (images), 0 takes the nearest voxel (label maps)."""
    offsets = np.arange(size) - size // 2
    cubes = np.zeros((len(centers_vox), size, size, size), dtype=volume.dtype)
    for n, centre in enumerate(np.floor(np.asarray(centers_vox, dtype=float) + 0.5)):
        axes = [centre[a] + offsets * steps[a] for a in range(3)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"))
        cubes[n] = ndimage.map_coordinates(volume, grid, order=order, mode="constant", cval=0)
    return cubes


def gating_radius(voxels: np.ndarray, config: PatchConfig) -> np.ndarray:
    """Dilation radius in voxels, growing with lesion size V.

    ``authors``: round(clip(k · rho, low, high)) with rho = (3V / 4 pi)^(1/3), the radius of the
    sphere of volume V (the authors' code; numpy's round, half to even, as Python's). ``cbrt``:
    ceil(k · V^(1/3)) (prlkit).
    """
    voxels = np.asarray(voxels, dtype=float)
    if config.gate_rule == "authors":
        rho = np.cbrt(3.0 * voxels / (4.0 * np.pi))
        return np.round(np.clip(config.gate_k * rho, *config.gate_bounds)).astype(int)
    return np.ceil(config.gate_k * np.cbrt(voxels)).astype(int)


def gating_masks(instance_cubes: np.ndarray, labels: np.ndarray, radii: np.ndarray, rule: str) -> np.ndarray:
    """Per cube, the lesion's own voxels dilated by its radius; bool (n, s, s, s).

    ``authors``: the 6-connected structuring element applied r times, i.e. every voxel within
    city-block distance r; ``cbrt``: a Euclidean ball of radius r. A cube holding none of its
    lesion's voxels (a ring-shaped lesion larger than the cube) is all False. The caller passes
    cubes with a margin of the largest radius, so lesion voxels just outside the cube count.
    """
    masks = np.zeros(instance_cubes.shape, dtype=bool)
    for n, (cube, label, radius) in enumerate(zip(instance_cubes, labels, radii)):
        outside = cube != label
        if outside.all():
            continue
        if rule == "authors":
            masks[n] = ndimage.distance_transform_cdt(outside, metric="taxicab") <= radius
        else:
            masks[n] = ndimage.distance_transform_edt(outside) <= radius
    return masks


def session_patches(session: SessionData, lesions: pd.DataFrame, config: PatchConfig) -> np.ndarray:
    """float32 (n, 3, s, s, s) patches [QSM, FLAIR, mask] for the given rows of the lesion table (with phase
    input the first channel is the field shift, in `phase_window_ppm`)."""
    size = config.size
    if lesions.empty:
        return np.zeros((0, len(CHANNELS), size, size, size), dtype=np.float32)
    centers = lesions[["center_vox_i", "center_vox_j", "center_vox_k"]].to_numpy()
    steps = voxel_steps(session.affine, config.voxel_mm) if config.voxel_mm > 0 else None

    def cubes(volume: np.ndarray, edge: int, order: int) -> np.ndarray:
        if steps is None:
            return extract_cubes(volume, patch_corners(centers, edge), edge)
        return sample_cubes(volume, centers, edge, steps, order)

    qsm = cubes(normalise_susceptibility(session, config), size, order=1)
    flair = cubes(normalise_flair(session.flair, config.flair_percentiles), size, order=1)
    labels = lesions["index"].to_numpy()
    if config.gate:
        voxels = lesions["voxels"].to_numpy()  # in the cube's voxels when it is resampled
        if steps is not None:
            voxels = voxels / np.prod(steps)
        radii = gating_radius(voxels, config)
        margin = int(radii.max())  # lesion voxels up to the radius outside the cube still gate inside it
        wide = cubes(session.instances, size + 2 * margin, order=0)
        mask = gating_masks(wide, labels, radii, config.gate_rule)[:, margin:margin + size, margin:margin + size,
                                                                     margin:margin + size]
        qsm, flair = qsm * mask, flair * mask
    else:
        mask = cubes(session.instances, size, order=0) == labels[:, None, None, None]
    return np.stack([qsm, flair, mask.astype(np.float32)], axis=1).astype(np.float32)
