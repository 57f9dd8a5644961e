"""Image checks: readable, 3-D, one grid, finite values, integer lesion labels."""

import gzip
import warnings

import nibabel as nib
import numpy as np
import pytest

from prlkit.data.bids import PrlkitWarning
from prlkit.data.images import check_same_grid, read_grid, read_label_volume, read_volume, replace_non_finite
from prlkit.errors import InputFileError

from conftest import AFFINE, save


def test_corrupt_file(tmp_path):
    path = tmp_path / "bad.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header at all" * 20))
    with pytest.raises(InputFileError, match=r"bad\.nii\.gz: not a readable NIfTI"):
        read_volume(path)


def test_truncated_file(tmp_path):
    path = save(tmp_path / "t.nii", np.ones((8, 8, 8), np.float32))
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(InputFileError, match=r"t\.nii: "):
        read_volume(path)


def test_four_d_rejected_singleton_accepted(tmp_path):
    with pytest.raises(InputFileError, match=r"expected a 3-D image, got 4-D with shape \(4, 4, 4, 2\)"):
        read_volume(save(tmp_path / "4d.nii.gz", np.zeros((4, 4, 4, 2), np.float32)))
    assert read_volume(save(tmp_path / "s.nii.gz", np.zeros((4, 4, 4, 1), np.float32))).data.shape == (4, 4, 4)


def test_grid_shape_difference_is_named(tmp_path):
    a = read_grid(save(tmp_path / "a.nii.gz", np.zeros((4, 4, 4), np.float32)))
    b = read_grid(save(tmp_path / "b.nii.gz", np.zeros((4, 4, 5), np.float32)))
    with pytest.raises(InputFileError,
                       match=r"b\.nii\.gz: grid differs from a\.nii\.gz: shape \(4, 4, 5\) vs \(4, 4, 4\)"):
        check_same_grid(a, b)


def test_grid_affine_difference_in_mm(tmp_path):
    shifted = AFFINE.copy()
    shifted[0, 3] = 0.5
    a = read_grid(save(tmp_path / "a.nii.gz", np.zeros((4, 4, 4), np.float32)))
    b = read_grid(save(tmp_path / "b.nii.gz", np.zeros((4, 4, 4), np.float32), shifted))
    with pytest.raises(InputFileError, match=r"up to 0\.5 mm apart.*prlkit prepare"):
        check_same_grid(a, b)
    tiny = AFFINE.copy()
    tiny[0, 3] = 1e-5
    check_same_grid(a, read_grid(save(tmp_path / "c.nii.gz", np.zeros((4, 4, 4), np.float32), tiny)))


def test_nan_outside_lesions_becomes_zero_with_warning(tmp_path):
    data = np.ones((4, 4, 4), np.float32)
    data[0, 0, 0] = np.nan
    data[0, 0, 1] = np.inf
    volume = read_volume(save(tmp_path / "q.nii.gz", data))
    lesion = np.zeros((4, 4, 4), bool)
    lesion[2, 2, 2] = True
    with pytest.warns(PrlkitWarning, match=r"q\.nii\.gz: 2 NaN/Inf voxel\(s\) outside lesions set to 0"):
        fixed = replace_non_finite(volume, lesion)
    assert fixed.data[0, 0, 0] == 0 and fixed.data[0, 0, 1] == 0 and np.isfinite(fixed.data).all()
    lesion[0, 0, 0] = True
    with pytest.raises(InputFileError, match=r"1 NaN/Inf voxel\(s\) inside lesions"):
        replace_non_finite(volume, lesion)


def test_label_checks(tmp_path):
    labels = np.zeros((4, 4, 4), np.float32)
    labels[1, 1, 1] = 2.5
    with pytest.raises(InputFileError, match=r"non-integer lesion labels \(e\.g\. 2\.5\)"):
        read_label_volume(save(tmp_path / "l.nii.gz", labels))
    labels[1, 1, 1] = -1
    with pytest.raises(InputFileError, match="negative lesion labels"):
        read_label_volume(save(tmp_path / "n.nii.gz", labels))
    labels[1, 1, 1] = 3
    assert read_label_volume(save(tmp_path / "ok.nii.gz", labels)).data.dtype == np.int32


def test_sform_qform_disagreement_warns(tmp_path):
    image = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), AFFINE)
    qform = AFFINE.copy()
    qform[1, 3] = 2.0
    image.set_qform(qform, code=1)
    image.set_sform(AFFINE, code=1)
    nib.save(image, str(tmp_path / "sq.nii.gz"))
    with pytest.warns(PrlkitWarning, match=r"sq\.nii\.gz: sform and qform disagree by up to 2 mm"):
        read_grid(tmp_path / "sq.nii.gz")
    image.set_qform(AFFINE, code=1)
    nib.save(image, str(tmp_path / "same.nii.gz"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_grid(tmp_path / "same.nii.gz")
