"""Lesion-level QSM radiomics: a built-in first-order set (APRL) and, optionally, pyradiomics (QSMRim-Net).

Units: QSM in ppm. The built-in histogram features (entropy, uniformity) use a fixed bin width of
`BIN_WIDTH_PPM` = 0.025 ppm, i.e. pyradiomics' default `binWidth: 25` read in ppb, the unit the
QSMRim-Net maps were stored in. `pyradiomics_features` converts ppm -> ppb (x 1000) and keeps
`binWidth: 25`, so both routes discretise identically.

Definitions follow pyradiomics' first-order class (van Griethuysen et al., Cancer Res 2017;
https://pyradiomics.readthedocs.io/en/latest/features.html#module-radiomics.firstorder), which
matches IBSI (Zwanenburg et al., Radiology 2020) except that kurtosis is not excess kurtosis and
the histogram uses a fixed bin *width* anchored at a multiple of it below the minimum.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pandas as pd
from scipy import ndimage

from prlkit.errors import PrlkitError

BIN_WIDTH_PPM = 0.025  # = pyradiomics binWidth 25 on maps in ppb
PPB_PER_PPM = 1000.0

# Built-in first-order set, in table column order. Values x are the lesion's voxels (ppm), N their
# count, P_q the q-th percentile (linear interpolation, as numpy/pyradiomics), p_i the fraction of
# voxels in histogram bin i of width BIN_WIDTH_PPM.
FIRST_ORDER_FEATURES = (
    "energy",  # sum x^2                                             [pyradiomics Energy]
    "total_energy",  # voxel volume (mm^3) * energy                  [TotalEnergy]
    "entropy",  # -sum p_i log2(p_i + eps)                           [Entropy]
    "uniformity",  # sum p_i^2                                       [Uniformity]
    "minimum",  # min x                                              [Minimum]
    "p05",  # P_5                                                    (extra)
    "p10",  # P_10                                                   [10Percentile]
    "p25",  # P_25                                                   (extra)
    "median",  # P_50                                                [Median]
    "p75",  # P_75                                                   (extra)
    "p90",  # P_90                                                   [90Percentile]
    "p95",  # P_95                                                   (extra)
    "maximum",  # max x                                              [Maximum]
    "mean",  # mean x                                                [Mean]
    "range",  # max - min                                            [Range]
    "interquartile_range",  # P_75 - P_25                            [InterquartileRange]
    "mean_absolute_deviation",  # mean |x - mean|                    [MeanAbsoluteDeviation]
    "robust_mean_absolute_deviation",  # same on P_10 <= x <= P_90   [RobustMeanAbsoluteDeviation]
    "median_absolute_deviation",  # median |x - median|              (extra)
    "root_mean_squared",  # sqrt(energy / N)                         [RootMeanSquared]
    "standard_deviation",  # population SD (ddof 0)                  [StandardDeviation]
    "variance",  # population variance (ddof 0)                      [Variance]
    "skewness",  # m3 / m2^1.5, 0 when constant                        [Skewness]
    "kurtosis",  # m4 / m2^2 (not excess), 0 when constant             [Kurtosis]
    "positive_fraction",  # fraction of voxels > 0 ppm (paramagnetic) (extra)
)

# pyradiomics' name of each built-in feature that pyradiomics also computes.
PYRADIOMICS_FIRST_ORDER_NAMES = MappingProxyType({
    "energy": "Energy", "total_energy": "TotalEnergy", "entropy": "Entropy",
    "uniformity": "Uniformity", "minimum": "Minimum", "p10": "10Percentile", "median": "Median",
    "p90": "90Percentile", "maximum": "Maximum", "mean": "Mean", "range": "Range",
    "interquartile_range": "InterquartileRange", "mean_absolute_deviation": "MeanAbsoluteDeviation",
    "robust_mean_absolute_deviation": "RobustMeanAbsoluteDeviation",
    "root_mean_squared": "RootMeanSquared", "standard_deviation": "StandardDeviation",
    "variance": "Variance", "skewness": "Skewness", "kurtosis": "Kurtosis",
})


def histogram_probabilities(values: np.ndarray, bin_width: float = BIN_WIDTH_PPM) -> np.ndarray:
    """Fraction of values per fixed-width bin; bins start at the multiple of `bin_width` at or below the minimum."""
    index = np.floor(values / bin_width) - np.floor(values.min() / bin_width)
    counts = np.bincount(index.astype(np.int64))
    return counts[counts > 0] / values.size


def first_order_features(
    values: np.ndarray, voxel_volume_mm3: float = 1.0, bin_width: float = BIN_WIDTH_PPM
) -> dict[str, float]:
    """The FIRST_ORDER_FEATURES of one lesion's QSM values (ppm), as plain floats."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise PrlkitError("first_order_features: the lesion has no voxels")
    p05, p10, p25, median, p75, p90, p95 = np.percentile(x, [5, 10, 25, 50, 75, 90, 95])
    mean = x.mean()
    centred = x - mean
    m2, m3, m4 = (centred**2).mean(), (centred**3).mean(), (centred**4).mean()
    spread = x.max() > x.min()  # not m2 > 0: rounding leaves m2 ~ 1e-35 on constant input
    robust = x[(x >= p10) & (x <= p90)]  # empty for two distinct values: p10 and p90 fall between them
    probabilities = histogram_probabilities(x, bin_width)
    energy = float(np.sum(x**2))
    features = {
        "energy": energy,
        "total_energy": voxel_volume_mm3 * energy,
        "entropy": -np.sum(probabilities * np.log2(probabilities + np.finfo(float).eps)),
        "uniformity": np.sum(probabilities**2),
        "minimum": x.min(),
        "p05": p05,
        "p10": p10,
        "p25": p25,
        "median": median,
        "p75": p75,
        "p90": p90,
        "p95": p95,
        "maximum": x.max(),
        "mean": mean,
        "range": x.max() - x.min(),
        "interquartile_range": p75 - p25,
        "mean_absolute_deviation": np.abs(centred).mean(),
        "robust_mean_absolute_deviation": np.abs(robust - robust.mean()).mean() if robust.size else 0.0,
        "median_absolute_deviation": np.median(np.abs(x - median)),
        "root_mean_squared": np.sqrt(energy / x.size),
        "standard_deviation": np.sqrt(m2),
        "variance": m2,
        "skewness": m3 / m2**1.5 if spread else 0.0,
        "kurtosis": m4 / m2**2 if spread else 0.0,
        "positive_fraction": np.mean(x > 0),
    }
    return {name: float(features[name]) for name in FIRST_ORDER_FEATURES}


def lesion_voxel_values(
    volume: np.ndarray, instances: np.ndarray, labels: np.ndarray
) -> list[np.ndarray]:
    """Per label, the volume's values inside that lesion: one bounding-box crop per lesion."""
    labels = np.asarray(labels, dtype=np.int64)
    if volume.shape != instances.shape:
        raise PrlkitError(f"radiomics: QSM shape {volume.shape} differs from instance map shape {instances.shape}")
    boxes = ndimage.find_objects(instances, max_label=int(labels.max(initial=0)))
    values = []
    for label in labels:
        box = boxes[label - 1] if label >= 1 else None
        if box is None:
            raise PrlkitError(f"radiomics: lesion label {label} is not in the instance map")
        values.append(volume[box][instances[box] == label])
    return values


def lesion_feature_table(
    qsm: np.ndarray, instances: np.ndarray, labels: np.ndarray, voxel_volume_mm3: float
) -> pd.DataFrame:
    """FIRST_ORDER_FEATURES of every listed lesion (rows indexed by label) from a QSM map in ppm."""
    rows = [first_order_features(v, voxel_volume_mm3) for v in lesion_voxel_values(qsm, instances, labels)]
    table = pd.DataFrame(rows, columns=list(FIRST_ORDER_FEATURES), index=pd.Index(np.asarray(labels), name="index"))
    return table.astype(np.float64)


# QSMRim-Net set (pyradiomics, extra `[radiomics]`): these classes and features on the original image
# and on its 8 first-level Coiflet-1 wavelet sub-bands (LLL ... HHH); shape on the original only.
# GLCM SumAverage is left out: pyradiomics notes it equals 2 x JointAverage for its symmetric GLCM,
# and without it the count is the paper's 527 = 9 x (18 + 23 + 16) + 14.
PYRADIOMICS_CLASSES = MappingProxyType({
    "firstorder": (
        "Energy", "TotalEnergy", "Entropy", "Minimum", "10Percentile", "90Percentile", "Maximum",
        "Mean", "Median", "InterquartileRange", "Range", "MeanAbsoluteDeviation",
        "RobustMeanAbsoluteDeviation", "RootMeanSquared", "Skewness", "Kurtosis", "Variance",
        "Uniformity",
    ),
    "glcm": (
        "Autocorrelation", "JointAverage", "ClusterProminence", "ClusterShade", "ClusterTendency",
        "Contrast", "Correlation", "DifferenceAverage", "DifferenceEntropy", "DifferenceVariance",
        "JointEnergy", "JointEntropy", "Imc1", "Imc2", "Idm", "MCC", "Idmn", "Id", "Idn",
        "InverseVariance", "MaximumProbability", "SumEntropy", "SumSquares",
    ),
    "glrlm": (
        "ShortRunEmphasis", "LongRunEmphasis", "GrayLevelNonUniformity",
        "GrayLevelNonUniformityNormalized", "RunLengthNonUniformity",
        "RunLengthNonUniformityNormalized", "RunPercentage", "GrayLevelVariance", "RunVariance",
        "RunEntropy", "LowGrayLevelRunEmphasis", "HighGrayLevelRunEmphasis",
        "ShortRunLowGrayLevelEmphasis", "ShortRunHighGrayLevelEmphasis",
        "LongRunLowGrayLevelEmphasis", "LongRunHighGrayLevelEmphasis",
    ),
    "shape": (
        "MeshVolume", "VoxelVolume", "SurfaceArea", "SurfaceVolumeRatio", "Sphericity",
        "Maximum3DDiameter", "Maximum2DDiameterSlice", "Maximum2DDiameterColumn",
        "Maximum2DDiameterRow", "MajorAxisLength", "MinorAxisLength", "LeastAxisLength",
        "Elongation", "Flatness",
    ),
})
WAVELET_BANDS = ("LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH", "LLL")
PYRADIOMICS_SETTINGS = MappingProxyType({
    "binWidth": 25,  # in ppb: the maps are converted from ppm before extraction
    "interpolator": "sitkBSpline",
    "resampledPixelSpacing": None,  # no resampling, as the released QSMRim-Net config
    "label": 1,
})
CROP_MARGIN_VOXELS = 8  # context kept around each lesion for the wavelet filters (pyradiomics pads 5)


def pyradiomics_feature_names() -> list[str]:
    """Column names of `pyradiomics_features`, in order: image type, class, feature (pyradiomics' naming)."""
    names = [f"original_shape_{f}" for f in PYRADIOMICS_CLASSES["shape"]]
    for image in ("original", *(f"wavelet-{band}" for band in WAVELET_BANDS)):
        for cls in ("firstorder", "glcm", "glrlm"):
            names += [f"{image}_{cls}_{f}" for f in PYRADIOMICS_CLASSES[cls]]
    return names


def pyradiomics_extractor():
    """A pyradiomics extractor configured for the QSMRim-Net set; PrlkitError if pyradiomics is missing."""
    try:
        import radiomics
        from radiomics.featureextractor import RadiomicsFeatureExtractor
    except ImportError as error:
        raise PrlkitError(
            "pyradiomics is not installed: `pip install numpy setuptools wheel versioneer` then "
            "`pip install --no-build-isolation pyradiomics==3.0.1` (or the prlkit[radiomics] extra)"
        ) from error
    radiomics.setVerbosity(40)  # errors only
    extractor = RadiomicsFeatureExtractor(**PYRADIOMICS_SETTINGS)
    extractor.disableAllFeatures()
    extractor.enableFeaturesByName(**{cls: list(names) for cls, names in PYRADIOMICS_CLASSES.items()})
    extractor.disableAllImageTypes()
    extractor.enableImageTypes(Original={}, Wavelet={"wavelet": "coif1"})
    return extractor


def pyradiomics_features(
    qsm: np.ndarray, instances: np.ndarray, labels: np.ndarray, spacing_mm: tuple[float, float, float]
) -> pd.DataFrame:
    """The 527 QSMRim-Net radiomic features per lesion (rows indexed by label) from a QSM map in ppm.

    Each lesion is cropped with CROP_MARGIN_VOXELS of context, converted to ppb and passed to
    pyradiomics with `binWidth: 25` (ppb). Requires the `[radiomics]` extra.
    """
    extractor = pyradiomics_extractor()
    import SimpleITK as sitk  # a pyradiomics dependency: present once the extractor could be built

    names = pyradiomics_feature_names()
    boxes = ndimage.find_objects(instances, max_label=int(np.max(labels, initial=0)))
    rows = []
    for label in np.asarray(labels, dtype=np.int64):
        box = boxes[label - 1] if label >= 1 else None
        if box is None:
            raise PrlkitError(f"radiomics: lesion label {label} is not in the instance map")
        crop = tuple(
            slice(max(s.start - CROP_MARGIN_VOXELS, 0), s.stop + CROP_MARGIN_VOXELS) for s in box
        )
        # SimpleITK reads numpy arrays as (z, y, x): transpose so that spacing applies axis by axis.
        image = sitk.GetImageFromArray((qsm[crop] * PPB_PER_PPM).astype(np.float64).T)
        mask = sitk.GetImageFromArray((instances[crop] == label).astype(np.uint8).T)
        for itk in (image, mask):
            itk.SetSpacing(tuple(float(s) for s in spacing_mm))
        result = extractor.execute(image, mask)
        # the shape axis lengths come from eigenvalues of a symmetric matrix that numpy may return as complex
        # with a ~1e-17 imaginary part: the real part is the value
        rows.append([float(np.real(result[name])) for name in names])
    return pd.DataFrame(rows, columns=names, index=pd.Index(np.asarray(labels), name="index"))
