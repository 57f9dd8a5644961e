"""Real MS scans (Ljubljana patients 07 and 26; FLAIR, T1, consensus masks, LAS): lesions and patches.

Skipped with a reason when ../shared/realdata is absent. The T1 stands in for the missing QSM
only where a second modality is needed.
"""

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from prlkit.config import LesionConfig, PatchConfig
from prlkit.data.bids import SessionFiles
from prlkit.data.images import read_label_volume, read_volume
from prlkit.data.lesions import instance_map, lesion_table
from prlkit.data.patches import normalise_flair, session_patches
from prlkit.data.session import SessionData

pytestmark = pytest.mark.realdata

# From the realdata README: components at 26-connectivity, lesion voxels, components >= 100 voxels
EXPECTED = {"patient07": (37, 1300, None), "patient26": (19, 8227, 10)}


@pytest.mark.parametrize("patient", sorted(EXPECTED))
def test_lesion_extraction_on_real_masks(realdata, patient):
    labels = read_label_volume(realdata / patient / "lesion_mask.nii.gz")
    instances = instance_map(labels.data, LesionConfig(), has_rim_table=False)
    table = lesion_table(instances, labels.affine, LesionConfig(min_voxels=100))
    components, voxels, large = EXPECTED[patient]
    assert len(table) == components and table["voxels"].sum() == voxels
    if large is not None:
        assert (table["excluded"] == "").sum() == large
    assert table["volume_mm3"].sum() == pytest.approx(voxels)  # 1 mm isotropic


def test_world_coordinates_follow_the_las_affine(realdata):
    image = nib.load(str(realdata / "patient26" / "lesion_mask.nii.gz"))
    assert nib.aff2axcodes(image.affine) == ("L", "A", "S")
    labels = read_label_volume(realdata / "patient26" / "lesion_mask.nii.gz")
    instances = instance_map(labels.data, LesionConfig(), has_rim_table=False)
    table = lesion_table(instances, labels.affine, LesionConfig())
    vox = table[["center_vox_i", "center_vox_j", "center_vox_k"]].to_numpy()
    mm = table[["center_mm_x", "center_mm_y", "center_mm_z"]].to_numpy()
    np.testing.assert_allclose(mm, nib.affines.apply_affine(labels.affine, vox), atol=1e-9)
    biggest = table.loc[table["voxels"].idxmax()]
    expected = ndimage.center_of_mass(instances == biggest["index"])
    np.testing.assert_allclose(biggest[["center_vox_i", "center_vox_j", "center_vox_k"]].astype(float), expected)


def test_flair_normalisation_and_patches_on_real_scan(realdata):
    folder = realdata / "patient26"
    flair = read_volume(folder / "FLAIR.nii.gz")
    t1 = read_volume(folder / "T1.nii.gz")
    labels = read_label_volume(folder / "lesion_mask.nii.gz")
    normalised = normalise_flair(flair.data, (0.5, 99.5))
    brain = flair.data > 0
    assert normalised.min() == 0 and normalised.max() == 1
    assert 0.004 < (normalised[brain] == 0).mean() < 0.01 and 0.004 < (normalised[brain] == 1).mean() < 0.01
    lesion_median = np.median(normalised[labels.data > 0])
    assert lesion_median > np.median(normalised[brain])  # lesions are FLAIR-hyperintense
    instances = instance_map(labels.data, LesionConfig(), has_rim_table=False)
    table = lesion_table(instances, labels.affine, LesionConfig())
    session = SessionData(
        files=SessionFiles("patient26", None, None, None, None),
        qsm=np.zeros_like(t1.data),
        flair=flair.data,
        instances=instances,
        affine=labels.affine,
        lesions=table,
    )
    included = table[table["excluded"] == ""]
    patches = session_patches(session, included, PatchConfig(size=32))
    assert patches.shape == (len(included), 3, 32, 32, 32)
    centre = patches[:, 2, 16, 16, 16]
    assert centre.mean() > 0.8  # the centre of mass lies inside (or next to) most real lesions
    assert (patches[:, 1][patches[:, 2] == 0] == 0).all()
