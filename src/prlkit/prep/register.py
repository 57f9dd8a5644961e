"""Rigid registration, N4 bias-field correction and resampling with SimpleITK, plus the
nibabel (RAS) <-> ITK (LPS) geometry conversion they rest on.

nibabel's affine maps voxel (i, j, k) to RAS+ millimetres; ITK describes the same grid by
spacing, a direction matrix and an origin in LPS+ millimetres, and stores arrays as (k, j, i).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from prlkit.errors import PrlkitError

if TYPE_CHECKING:
    import SimpleITK as sitk

INSTALL_HINT = 'pip install "prlkit[registration]"  (or: pip install SimpleITK)'
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
ORTHONORMAL_TOLERANCE = 1e-4


def require_sitk():
    """The SimpleITK module, or a one-line error saying how to install it."""
    try:
        import SimpleITK
    except ImportError:
        raise PrlkitError(f"registration needs SimpleITK, which is not installed: {INSTALL_HINT}") from None
    return SimpleITK


def affine_to_itk(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A nibabel RAS affine -> ITK (spacing, 3x3 direction, origin) in LPS; sheared affines are refused."""
    affine = np.asarray(affine, dtype=np.float64)
    linear = affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing <= 0):
        raise PrlkitError(f"affine has a zero-length voxel axis: {linear.tolist()}")
    direction = LPS_FROM_RAS @ linear / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=ORTHONORMAL_TOLERANCE):
        raise PrlkitError("affine has shear (voxel axes not orthogonal); ITK grids cannot represent it")
    return spacing, direction, LPS_FROM_RAS @ affine[:3, 3]


def itk_to_affine(spacing: np.ndarray, direction: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """ITK (spacing, 3x3 direction, origin) in LPS -> the nibabel RAS affine of the same grid."""
    affine = np.eye(4)
    affine[:3, :3] = LPS_FROM_RAS @ np.asarray(direction, dtype=np.float64).reshape(3, 3) * np.asarray(spacing)
    affine[:3, 3] = LPS_FROM_RAS @ np.asarray(origin, dtype=np.float64)
    return affine


def to_sitk(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A nibabel-ordered (i, j, k) array with its RAS affine -> a SimpleITK image on the same grid."""
    sitk = require_sitk()
    spacing, direction, origin = affine_to_itk(affine)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data).transpose(2, 1, 0)))
    image.SetSpacing(spacing.tolist())
    image.SetDirection(direction.ravel().tolist())
    image.SetOrigin(origin.tolist())
    return image


def from_sitk(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """A SimpleITK image -> (array in nibabel (i, j, k) order, RAS affine)."""
    sitk = require_sitk()
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    geometry = (np.array(image.GetSpacing()), np.array(image.GetDirection()), np.array(image.GetOrigin()))
    return data, itk_to_affine(*geometry)


@dataclass(frozen=True)
class RegistrationSettings:
    """Rigid registration: Mattes MI on a random voxel sample, coarse-to-fine pyramid."""

    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_mm: tuple[float, ...] = (2.0, 1.0, 0.0)
    iterations: int = 200
    histogram_bins: int = 32
    sampling_fraction: float = 0.1
    seed: int = 1  # of the random voxel sample; SimpleITK reads 0 as "seed from the clock"

    def __post_init__(self) -> None:
        if self.seed < 1:
            raise PrlkitError(f"registration seed {self.seed}: must be >= 1 (SimpleITK takes 0 as the clock)")


@dataclass(frozen=True)
class N4Settings:
    """N4 bias-field correction fitted on a shrunken copy (the field is smooth), applied at full resolution."""

    shrink_factor: int = 4
    iterations: tuple[int, ...] = (50, 50, 50, 50)


def rigid_register(fixed: sitk.Image, moving: sitk.Image,
                   settings: RegistrationSettings) -> tuple[sitk.Transform, float]:
    """Euler3D transform mapping `fixed` points to `moving` points (what resampling needs) and the final metric.

    Initialised by aligning the centres of mass of |intensity| (works for QSM's signed values too).
    """
    sitk = require_sitk()
    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    transform = sitk.Euler3DTransform(
        sitk.CenteredTransformInitializer(
            sitk.Abs(fixed), sitk.Abs(moving), sitk.Euler3DTransform(),
            sitk.CenteredTransformInitializerFilter.MOMENTS,
        )
    )
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(settings.histogram_bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(settings.sampling_fraction, settings.seed)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=1e-3, numberOfIterations=settings.iterations, relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-6,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(settings.smoothing_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)
    return transform, float(method.GetMetricValue())


def resample(moving: sitk.Image, reference: sitk.Image, transform: sitk.Transform, labels: bool = False) -> sitk.Image:
    """`moving` on `reference`'s grid; linear for intensities (no spline overshoot: QSM stays quantitative),
    nearest-neighbour for label maps (every output voxel carries one of the input ids). Outside: 0."""
    sitk = require_sitk()
    interpolator = sitk.sitkNearestNeighbor if labels else sitk.sitkLinear
    return sitk.Resample(moving, reference, transform, interpolator, 0.0, moving.GetPixelID())


def n4_correct(image: sitk.Image, settings: N4Settings) -> sitk.Image:
    """Divide out the N4 bias field, fitted inside an Otsu foreground mask; for FLAIR/T1w only, never QSM."""
    sitk = require_sitk()
    image = sitk.Cast(image, sitk.sitkFloat32)
    mask = sitk.OtsuThreshold(image, 0, 1, 200) * sitk.Cast(image > 0, sitk.sitkUInt8)
    shrink = [settings.shrink_factor] * 3
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations(list(settings.iterations))
    corrector.Execute(sitk.Shrink(image, shrink), sitk.Shrink(mask, shrink))
    return image / sitk.Exp(corrector.GetLogBiasFieldAsImage(image))


def identity_transform() -> sitk.Transform:
    """The transform of an image already on the reference grid."""
    sitk = require_sitk()
    return sitk.Euler3DTransform()


def motion_summary(transform: sitk.Transform, centre_lps: np.ndarray) -> tuple[float, float]:
    """(rotation angle in degrees, displacement in mm of `centre_lps`) of a rigid transform."""
    rigid = require_sitk().Euler3DTransform(transform)
    matrix = np.array(rigid.GetMatrix()).reshape(3, 3)
    angle = np.degrees(np.arccos(np.clip((np.trace(matrix) - 1) / 2, -1.0, 1.0)))
    moved = np.array(rigid.TransformPoint(tuple(float(v) for v in centre_lps)))
    return float(angle), float(np.linalg.norm(moved - centre_lps))
