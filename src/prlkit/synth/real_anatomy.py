"""Healthy anatomy from a real skull-stripped T1w image, for simulating lesions on real brains.

The synthetic phantom's brains are smooth ellipsoids with drawn cortex and nuclei; a real T1w gives real
cortical folding, sulci and ventricles. Tissue classes come from a three-class Gaussian
mixture of the T1w intensities (CSF < GM < WM); deep CSF is ventricle. The deep grey nuclei differ too
little from white matter on a T1w for the mixture, so they are the phantom's ellipsoids placed by the
brain's centre and extent in RAS axes (on grey and white matter), as in the phantom. Voxels of the
image's own lesions (an optional mask) count as white matter, so the simulated lesions are the only
ones. All of this is prlkit's approximation, not a segmentation tool: it only has to give the QSM a
realistic layout of tissue, not exact labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from sklearn.mixture import GaussianMixture

from prlkit.data.images import check_same_grid, read_volume
from prlkit.errors import InputFileError
from prlkit.synth.phantom import (
    BACKGROUND,
    CSF,
    GM,
    NUCLEI,
    VENTRICLE,
    WM,
    Anatomy,
    normalised_grid,
    tissue_susceptibility,
)

#: A real brain to draw participants on: the T1w path and, optionally, the path of its own lesion mask.
AnatomySource = tuple[str, "str | None"]

MAX_SPACING_ERROR_MM = 0.05  # voxel sizes within this of 1 mm count as 1 mm (the simulator's physics grid)
MAX_BRAIN_FRACTION = 0.6  # a skull-stripped image has zeros in more than 40 % of its voxels
MARGIN = 8  # voxels kept around the brain when cropping
VENTRICLE_DEPTH_MM = 12.0  # CSF deeper than this inside the brain is ventricle
MIN_VENTRICLE_VOXELS = 300  # smaller deep-CSF pieces stay CSF
MIXTURE_SAMPLE = 200_000  # brain voxels the Gaussian mixture is fitted to
MIN_BRAIN_VOXELS = 48**3 // 4  # the smallest brain the simulator's grid and lesion placement are meant for


@dataclass(frozen=True)
class AnatomyTemplate:
    """A real brain's tissue codes on a 1 mm RAS grid cropped to the brain, and that grid's affine."""

    tissue: np.ndarray  # uint8 codes of prlkit.synth.phantom
    affine: np.ndarray


def _canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The array and affine reoriented to the closest RAS axes (nibabel), so the nuclei land right."""
    image = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    return np.asarray(image.dataobj), image.affine


def _check_grid(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Refuse a T1w that is not on a 1 mm grid, not skull-stripped, or has too small a brain."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if np.any(np.abs(spacing - 1.0) > MAX_SPACING_ERROR_MM):
        raise InputFileError(path, f"voxel size {' x '.join(f'{s:.3g}' for s in spacing)} mm; the simulator works "
                                   "on a 1 mm isotropic grid: resample the T1w to 1 mm first")
    brain_fraction = float(np.mean(data > 0))
    if brain_fraction > MAX_BRAIN_FRACTION:
        raise InputFileError(path, f"{brain_fraction:.0%} of the voxels are non-zero: give a skull-stripped T1w "
                                   "(brain only, 0 outside)")
    if np.count_nonzero(data > 0) < MIN_BRAIN_VOXELS:
        raise InputFileError(path, "the brain (non-zero voxels) is too small to place lesions in")


def segment_tissues(t1w: np.ndarray, brain: np.ndarray, own_lesions: np.ndarray | None = None) -> np.ndarray:
    """Tissue codes of a skull-stripped T1w: mixture classes CSF/GM/WM, deep CSF as ventricle, the
    phantom's nucleus ellipsoids (see the module); the image's own lesions count as WM. ValueError when
    the contrast is not a T1w's (the brightest class is not the deeper one)."""
    lesions = np.zeros_like(brain) if own_lesions is None else ndimage.binary_dilation(own_lesions & brain)
    fit_voxels = t1w[brain & ~lesions].astype(np.float64)
    step = max(1, fit_voxels.size // MIXTURE_SAMPLE)
    mixture = GaussianMixture(3, random_state=0).fit(fit_voxels[::step, None])
    order = np.argsort(mixture.means_.ravel())  # darkest class first: CSF, GM, WM on a T1w
    codes = np.zeros(3, dtype=np.uint8)
    codes[order] = (CSF, GM, WM)
    tissue = np.full(t1w.shape, BACKGROUND, dtype=np.uint8)
    tissue[brain] = codes[mixture.predict(t1w[brain].astype(np.float64)[:, None])]
    depth = ndimage.distance_transform_edt(brain)
    if depth[tissue == WM].mean() < depth[tissue == GM].mean():
        raise ValueError("the brightest tissue lies nearer the brain surface than the middle one, as grey matter "
                         "does on FLAIR or T2w: give a T1w (white matter brightest)")
    tissue[lesions] = WM

    deep_csf, n = ndimage.label((tissue == CSF) & (depth > VENTRICLE_DEPTH_MM))
    sizes = ndimage.sum_labels(np.ones_like(deep_csf), deep_csf, index=np.arange(1, n + 1))
    tissue[np.isin(deep_csf, 1 + np.flatnonzero(sizes >= MIN_VENTRICLE_VOXELS))] = VENTRICLE

    centre, radii = brain_centre_and_radii(brain)
    ux, uy, uz = normalised_grid(t1w.shape, centre, radii)
    parenchyma = np.isin(tissue, (GM, WM))
    for code, (cx, cy, cz), (ax, ay, az) in NUCLEI:
        for side in (-1, 1):
            inside = ((ux - side * cx) / ax) ** 2 + ((uy - cy) / ay) ** 2 + ((uz - cz) / az) ** 2 < 1.0
            tissue[inside & parenchyma] = code
    return tissue


def brain_centre_and_radii(brain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The brain's centroid and the half-extents of its bounding box (voxels)."""
    index = np.argwhere(brain)
    return index.mean(axis=0), (index.max(axis=0) - index.min(axis=0) + 1) / 2.0


@lru_cache(maxsize=8)
def load_template(t1w_path: str, lesions_path: str | None = None) -> AnatomyTemplate:
    """Read, check, reorient, crop and segment a skull-stripped 1 mm T1w (with its lesion mask, if given).
    Cached per process: every participant drawn on the same brain reuses the segmentation."""
    t1w = read_volume(Path(t1w_path))
    data = np.nan_to_num(t1w.data, nan=0.0)
    _check_grid(t1w.path, data, t1w.affine)
    own_lesions = None
    if lesions_path is not None:
        lesions = read_volume(Path(lesions_path))
        check_same_grid(t1w.grid, lesions.grid)
        own_lesions, _ = _canonical((np.nan_to_num(lesions.data) > 0).astype(np.uint8), lesions.affine)
        own_lesions = own_lesions.astype(bool)
    data, affine = _canonical(data, t1w.affine)
    brain = ndimage.binary_fill_holes(data > 0)
    index = np.argwhere(brain)
    low = np.maximum(index.min(axis=0) - MARGIN, 0)
    high = index.max(axis=0) + MARGIN + 1
    crop = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    affine = affine.copy()
    affine[:3, 3] = affine[:3, :3] @ low + affine[:3, 3]
    try:
        tissue = segment_tissues(data[crop], brain[crop], None if own_lesions is None else own_lesions[crop])
    except ValueError as error:
        raise InputFileError(t1w.path, str(error)) from None
    return AnatomyTemplate(tissue=tissue, affine=affine)


def anatomy_from_template(rng: np.random.Generator, template: AnatomyTemplate) -> Anatomy:
    """One participant's anatomy on a real brain: the template's tissues, mirrored left-right at random,
    with the phantom's per-participant tissue susceptibilities."""
    tissue = template.tissue[::-1].copy() if rng.random() < 0.5 else template.tissue.copy()
    brain = tissue != BACKGROUND
    centre, radii = brain_centre_and_radii(brain)
    depth = ndimage.distance_transform_edt(brain).astype(np.float32)
    return Anatomy(tissue, tissue_susceptibility(rng, tissue, brain), brain, depth, centre, radii, real=True)
