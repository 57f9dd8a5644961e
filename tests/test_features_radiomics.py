"""Lesion-level radiomics: hand-computed values, SciPy references, translation invariance, pyradiomics parity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from prlkit.errors import PrlkitError
from prlkit.features.radiomics import (
    FIRST_ORDER_FEATURES,
    PYRADIOMICS_FIRST_ORDER_NAMES,
    first_order_features,
    lesion_feature_table,
)


def test_first_order_by_hand_on_four_values():
    # x = 1, 2, 3, 4 ppm, voxel volume 2 mm^3, bin width 1 ppm -> one voxel per bin.
    f = first_order_features(np.array([1.0, 2.0, 3.0, 4.0]), voxel_volume_mm3=2.0, bin_width=1.0)
    expected = {
        "energy": 30.0,  # 1 + 4 + 9 + 16
        "total_energy": 60.0,
        "entropy": 2.0,  # four bins of p = 1/4
        "uniformity": 0.25,
        "minimum": 1.0,
        "p10": 1.3,  # linear interpolation at rank 0.3
        "p25": 1.75,
        "median": 2.5,
        "p75": 3.25,
        "p90": 3.7,
        "maximum": 4.0,
        "mean": 2.5,
        "range": 3.0,
        "interquartile_range": 1.5,
        "mean_absolute_deviation": 1.0,  # |dev| = 1.5, .5, .5, 1.5
        "robust_mean_absolute_deviation": 0.5,  # voxels in [1.3, 3.7] are 2, 3
        "median_absolute_deviation": 1.0,
        "root_mean_squared": np.sqrt(7.5),
        "standard_deviation": np.sqrt(1.25),
        "variance": 1.25,
        "skewness": 0.0,
        "kurtosis": 2.5625 / 1.5625,  # m4 = (2 * 1.5^4 + 2 * 0.5^4) / 4, m2 = 1.25
        "positive_fraction": 1.0,
    }
    for name, value in expected.items():
        assert f[name] == pytest.approx(value, abs=1e-12), name
    assert list(f) == list(FIRST_ORDER_FEATURES)
    assert 20 <= len(FIRST_ORDER_FEATURES) <= 40


def test_histogram_bins_anchor_below_the_minimum():
    # width 0.025 ppm: floor(x / w) = -2, -1, 0, 0 -> bins of 1, 1, 2 voxels
    f = first_order_features(np.array([-0.03, -0.01, 0.0, 0.02]))
    assert f["uniformity"] == pytest.approx(0.375)
    assert f["entropy"] == pytest.approx(1.5)
    assert f["positive_fraction"] == pytest.approx(0.25)


def test_first_order_matches_scipy():
    x = np.random.default_rng(3).gamma(2.0, 0.02, size=500) - 0.03
    f = first_order_features(x)
    assert f["skewness"] == pytest.approx(stats.skew(x, bias=True))
    assert f["kurtosis"] == pytest.approx(stats.kurtosis(x, fisher=False, bias=True))
    assert f["variance"] == pytest.approx(np.var(x))
    assert f["interquartile_range"] == pytest.approx(stats.iqr(x))
    assert f["median_absolute_deviation"] == pytest.approx(stats.median_abs_deviation(x))
    counts = np.unique(np.floor(x / 0.025), return_counts=True)[1]
    assert f["entropy"] == pytest.approx(stats.entropy(counts, base=2))


def test_constant_lesion_has_zero_moments_and_one_bin():
    f = first_order_features(np.full(7, 0.05))
    assert f["skewness"] == 0.0 and f["kurtosis"] == 0.0  # not 0/0 noise from rounding in the mean
    assert f["variance"] == pytest.approx(0.0, abs=1e-30)
    assert f["uniformity"] == 1.0 and f["entropy"] == pytest.approx(0.0, abs=1e-12)


def test_two_value_lesion_has_finite_features_without_warnings():
    """p10 and p90 of two values fall between them: no value is in the robust range, whose spread is 0
    (pyradiomics gives NaN there)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = first_order_features(np.array([0.01, 0.09]))
    assert f["robust_mean_absolute_deviation"] == 0.0 and all(np.isfinite(list(f.values())))


def test_empty_lesion_is_an_error():
    with pytest.raises(PrlkitError, match="no voxels"):
        first_order_features(np.array([]))


def two_lesion_volume(shift=(0, 0, 0)):
    """A noisy 20^3 QSM map (ppm) with two box lesions, optionally translated."""
    rng = np.random.default_rng(0)
    qsm = np.zeros((20, 20, 20))
    instances = np.zeros((20, 20, 20), dtype=np.int32)
    lesion_values = {1: rng.normal(0.02, 0.03, (4, 5, 3)), 2: rng.normal(-0.01, 0.02, (3, 3, 6))}
    corners = {1: (2, 3, 4), 2: (10, 12, 9)}
    for label, values in lesion_values.items():
        box = tuple(slice(c + s, c + s + n) for c, s, n in zip(corners[label], shift, values.shape))
        qsm[box], instances[box] = values, label
    qsm += (instances == 0) * rng.normal(0, 0.5, qsm.shape)  # background must not leak in
    return qsm, instances


def test_lesion_table_is_translation_invariant_and_matches_per_lesion_features():
    labels = np.array([2, 1])
    table = lesion_feature_table(*two_lesion_volume(), labels, voxel_volume_mm3=0.5)
    moved = lesion_feature_table(*two_lesion_volume(shift=(5, -2, 3)), labels, voxel_volume_mm3=0.5)
    assert list(table.index) == [2, 1] and list(table.columns) == list(FIRST_ORDER_FEATURES)
    np.testing.assert_allclose(moved.to_numpy(), table.to_numpy(), rtol=1e-12)
    qsm, instances = two_lesion_volume()
    direct = first_order_features(qsm[instances == 1], voxel_volume_mm3=0.5)
    np.testing.assert_allclose(table.loc[1].to_numpy(), list(direct.values()), rtol=1e-12)
    assert table.loc[1, "total_energy"] == pytest.approx(0.5 * table.loc[1, "energy"])


def test_lesion_table_rejects_missing_labels_and_mismatched_shapes():
    qsm, instances = two_lesion_volume()
    with pytest.raises(PrlkitError, match="label 3"):
        lesion_feature_table(qsm, instances, np.array([1, 3]), 1.0)
    with pytest.raises(PrlkitError, match="shape"):
        lesion_feature_table(qsm[:-1], instances, np.array([1]), 1.0)


def test_pyradiomics_set_has_527_named_features_and_agrees_with_builtin_first_order(pyradiomics_installed):
    from prlkit.features.radiomics import pyradiomics_feature_names, pyradiomics_features

    qsm, instances = two_lesion_volume()
    spacing = (0.75, 0.75, 3.0)
    table = pyradiomics_features(qsm, instances, np.array([1]), spacing)
    assert table.shape == (1, 527) and list(table.columns) == pyradiomics_feature_names()
    assert np.isfinite(table.to_numpy()).all()
    builtin = lesion_feature_table(qsm, instances, np.array([1]), voxel_volume_mm3=np.prod(spacing))
    ppb = {"entropy": 0, "uniformity": 0, "skewness": 0, "kurtosis": 0, "energy": 2, "total_energy": 2,
           "variance": 2}  # power of 1000 between ppb and ppm; 1 for the rest
    for ours, theirs in PYRADIOMICS_FIRST_ORDER_NAMES.items():
        if theirs == "StandardDeviation":  # deprecated in pyradiomics, not in the QSMRim-Net set
            continue
        expected = builtin.loc[1, ours] * 1000.0 ** ppb.get(ours, 1)
        assert table.loc[1, f"original_firstorder_{theirs}"] == pytest.approx(expected, rel=1e-9), ours
    assert table.loc[1, "original_shape_VoxelVolume"] == pytest.approx(60 * np.prod(spacing))


def test_pyradiomics_features_are_translation_invariant(pyradiomics_installed):
    from prlkit.features.radiomics import pyradiomics_features

    def embedded(offset):  # the whole scene moved: wavelet features also see the lesion's surroundings
        qsm, instances = two_lesion_volume()
        big_qsm, big_instances = np.zeros((48, 48, 48)), np.zeros((48, 48, 48), dtype=np.int32)
        box = tuple(slice(o, o + 20) for o in offset)
        big_qsm[box], big_instances[box] = qsm, instances
        return big_qsm, big_instances

    labels, spacing = np.array([2, 1]), (1.0, 1.0, 1.0)
    table = pyradiomics_features(*embedded((10, 10, 10)), labels, spacing)
    moved = pyradiomics_features(*embedded((17, 9, 14)), labels, spacing)
    assert list(table.index) == [2, 1]
    np.testing.assert_allclose(moved.to_numpy(), table.to_numpy(), rtol=1e-9, atol=1e-9)
