"""benchmarks/mask_convention.py: lesions grown and shrunk by whole voxels keep their labels, never merge,
match scipy's binary morphology on an isolated lesion, and the cohort copy leaves images and input alone."""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from conftest import write_toy_rim_cohort

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import mask_convention

BALL = ndimage.generate_binary_structure(3, 1)  # Euclidean distance <= 1 voxel: the 6-neighbourhood


def two_lesions() -> np.ndarray:
    labels = np.zeros((24, 24, 24), np.int32)
    grid = np.indices(labels.shape).transpose(1, 2, 3, 0)
    labels[np.linalg.norm(grid - (7, 12, 12), axis=-1) <= 4] = 1
    labels[np.linalg.norm(grid - (16, 12, 12), axis=-1) <= 4] = 2  # touches lesion 1: its edge there
    labels[20:23, 2:4, 2:4] = 3  # 12 voxels, nothing deeper than one voxel from its edge
    return labels


def test_growing_matches_binary_dilation_away_from_other_lesions_and_never_merges():
    labels = two_lesions()
    grown = mask_convention.grow_lesions(labels, 1)
    assert set(np.unique(grown)) == {0, 1, 2, 3}
    assert np.array_equal(grown[labels > 0], labels[labels > 0])  # lesion voxels keep their label
    alone = np.zeros_like(labels)
    alone[labels == 3] = 1
    assert np.array_equal(grown == 3, ndimage.binary_dilation(alone, BALL))
    assert (grown == 1).sum() > (labels == 1).sum()


def test_shrinking_matches_binary_erosion_and_keeps_lesions_that_would_vanish():
    labels = two_lesions()
    shrunk, kept = mask_convention.shrink_lesions(labels, 1)
    assert kept == 1 and np.array_equal(shrunk == 3, labels == 3)
    expected = ndimage.binary_erosion(np.pad(labels == 1, 1), BALL)[1:-1, 1:-1, 1:-1]
    assert np.array_equal(shrunk == 1, expected)
    assert set(np.unique(shrunk)) == {0, 1, 2, 3}


def test_cohort_copy_changes_only_the_lesion_maps(tmp_path):
    cohort = write_toy_rim_cohort(tmp_path / "toy", n_participants=2)
    lesion = "derivatives/lesions/sub-00/anat/sub-00_desc-lesions_dseg.nii.gz"
    before = np.asarray(nib.load(cohort / lesion).dataobj)
    summary = mask_convention.convert_cohort(cohort, tmp_path / "grown", 1)
    assert summary == {"participants": 2, "lesions": 8, "kept_unshrunk": 0}
    assert np.array_equal(np.asarray(nib.load(cohort / lesion).dataobj), before)  # input untouched
    after = np.asarray(nib.load(tmp_path / "grown" / lesion).dataobj)
    assert (after > 0).sum() > (before > 0).sum() and set(np.unique(after)) == set(np.unique(before))
    qsm = "sub-00/anat/sub-00_Chimap.nii.gz"
    assert (cohort / qsm).read_bytes() == (tmp_path / "grown" / qsm).read_bytes()
    with pytest.raises(SystemExit, match="exists"):
        mask_convention.convert_cohort(cohort, tmp_path / "grown", -1)
