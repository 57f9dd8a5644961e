"""Read NIfTI volumes with nibabel and check what prlkit relies on: 3-D, finite, one shared grid."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import nibabel as nib
import numpy as np

from prlkit.atomic import atomic_path
from prlkit.data.bids import PrlkitWarning
from prlkit.errors import InputFileError

GRID_TOLERANCE_MM = 1e-3  # affines equal within this (docs/data.md)


@dataclass(frozen=True)
class Grid:
    """A voxel grid: shape and affine (voxel -> world mm) of the file it came from."""

    shape: tuple[int, int, int]
    affine: np.ndarray
    path: Path


@dataclass(frozen=True)
class Volume:
    """A 3-D image: voxel array, affine (voxel -> world mm) and the file it came from."""

    data: np.ndarray
    affine: np.ndarray
    path: Path
    integer_storage: bool = False  # stored as integers with no scale factor (scl_slope 1, scl_inter 0)

    @property
    def grid(self) -> Grid:
        return Grid(shape=self.data.shape, affine=self.affine, path=self.path)


def _open_3d(path: Path) -> tuple[nib.Nifti1Image, tuple[int, int, int]]:
    """Open a NIfTI header and check it is 3-D (a trailing singleton 4th axis is accepted)."""
    try:
        image = nib.load(str(path))
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except Exception as error:  # nibabel raises many types for corrupt files
        raise InputFileError(path, f"not a readable NIfTI image ({type(error).__name__}: {error})") from None
    shape = image.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputFileError(path, f"expected a 3-D image, got {len(image.shape)}-D with shape {image.shape}")
    _warn_if_sform_qform_disagree(image, path)
    return image, shape


def read_grid(path: Path) -> Grid:
    """The voxel grid of a NIfTI file, from its header alone (no voxel data is read)."""
    image, shape = _open_3d(path)
    return Grid(shape=shape, affine=image.affine.astype(np.float64), path=Path(path))


def read_volume(path: Path, dtype: type = np.float32) -> Volume:
    """Load a 3-D NIfTI as `dtype` (scaling applied); one-line errors for unreadable or non-3-D files."""
    image, shape = _open_3d(path)
    try:
        data = np.asarray(image.dataobj, dtype=dtype).reshape(shape)
    except Exception as error:  # truncated gzip streams surface only here
        raise InputFileError(path, f"image data cannot be read ({type(error).__name__}: {error})") from None
    unscaled = getattr(image.dataobj, "slope", 1.0) == 1 and getattr(image.dataobj, "inter", 0.0) == 0
    integer_storage = bool(np.issubdtype(image.get_data_dtype(), np.integer) and unscaled)
    return Volume(data=data, affine=image.affine.astype(np.float64), path=Path(path), integer_storage=integer_storage)


def _warn_if_sform_qform_disagree(image: nib.Nifti1Image, path: Path) -> None:
    sform, sform_code = image.get_sform(coded=True)
    qform, qform_code = image.get_qform(coded=True)
    if sform_code and qform_code:
        difference = corner_distance_mm(sform, qform, image.shape[:3])
        if difference > GRID_TOLERANCE_MM:
            warnings.warn(
                f"{path}: sform and qform disagree by up to {difference:.3g} mm; using the sform",
                PrlkitWarning,
                stacklevel=3,
            )


def corner_distance_mm(affine_a: np.ndarray, affine_b: np.ndarray, shape: tuple[int, ...]) -> float:
    """Largest distance (mm) between where two affines put the corners of a grid."""
    corners = np.array(list(product(*[(0, n - 1) for n in shape[:3]])), dtype=float)
    homogeneous = np.c_[corners, np.ones(len(corners))]
    return float(np.max(np.linalg.norm((homogeneous @ (affine_a - affine_b).T)[:, :3], axis=1)))


def check_same_grid(reference: Grid, other: Grid) -> None:
    """Raise if `other` is not on `reference`'s voxel grid; say what differs and by how much."""
    hint = "register the images first (`prlkit prepare`); prlkit never resamples silently"
    if reference.shape != other.shape:
        raise InputFileError(
            other.path, f"grid differs from {reference.path.name}: shape {other.shape} vs {reference.shape}; {hint}"
        )
    distance = corner_distance_mm(reference.affine, other.affine, reference.shape)
    if distance > GRID_TOLERANCE_MM:
        raise InputFileError(
            other.path,
            f"grid differs from {reference.path.name}: affine places voxels up to {distance:.3g} mm apart; {hint}",
        )


def replace_non_finite(volume: Volume, lesion_mask: np.ndarray) -> Volume:
    """NaN/Inf -> 0 with a warning (QSM is often NaN outside the brain); an error inside a lesion."""
    bad = ~np.isfinite(volume.data)
    if not bad.any():
        return volume
    in_lesions = int(np.count_nonzero(bad & lesion_mask))
    if in_lesions:
        raise InputFileError(volume.path, f"{in_lesions} NaN/Inf voxel(s) inside lesions")
    warnings.warn(
        f"{volume.path}: {int(bad.sum())} NaN/Inf voxel(s) outside lesions set to 0", PrlkitWarning, stacklevel=2
    )
    return dataclasses.replace(volume, data=np.where(bad, np.float32(0), volume.data))


def read_label_volume(path: Path) -> Volume:
    """Load a lesion map and check its labels are non-negative integers; returned as int32."""
    volume = read_volume(path, dtype=np.float64)
    data = volume.data
    if not np.isfinite(data).all():
        raise InputFileError(path, "lesion map contains NaN/Inf values")
    fractional = data != np.round(data)
    if fractional.any():
        raise InputFileError(path, f"non-integer lesion labels (e.g. {data[fractional][0]:g})")
    if data.min(initial=0) < 0:
        raise InputFileError(path, f"negative lesion labels (e.g. {data.min():g})")
    if data.max(initial=0) > np.iinfo(np.int32).max:
        raise InputFileError(path, "lesion labels exceed the int32 range")
    return Volume(data=data.astype(np.int32), affine=volume.affine, path=volume.path)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write a NIfTI atomically with the affine as both qform and sform (code 1, scanner) in mm."""
    image = nib.Nifti1Image(data, affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))
