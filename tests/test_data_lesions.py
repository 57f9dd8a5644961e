"""Lesion instances, sizes, centres, exclusion and rim labels on known geometry."""

import numpy as np
import pandas as pd
import pytest

from prlkit.config import LesionConfig
from prlkit.data.bids import PrlkitWarning, discover_cohort
from prlkit.data.lesions import attach_rim_labels, instance_map, lesion_table, read_rim_table
from prlkit.data.session import load_session
from prlkit.errors import InputFileError, PrlkitError

from conftest import save, write_bids


def diagonal_pair() -> np.ndarray:
    """Two 2×2×2 blocks touching only at one corner (connected for 26, not for 6 or 18)."""
    mask = np.zeros((8, 8, 8), np.int32)
    mask[1:3, 1:3, 1:3] = 1
    mask[3:5, 3:5, 3:5] = 1
    return mask


@pytest.mark.parametrize("connectivity, expected", [(6, 2), (18, 2), (26, 1)])
def test_binary_components_follow_connectivity(connectivity, expected):
    instances = instance_map(diagonal_pair(), LesionConfig(connectivity=connectivity), has_rim_table=False)
    assert instances.max() == expected


def test_instance_map_is_kept_and_auto_detection():
    labels = np.zeros((8, 8, 8), np.int32)
    labels[1:3, 1:3, 1:3] = 5
    labels[5:7, 5:7, 5:7] = 5  # two blobs, one label: an instance map keeps them together
    labels[0, 7, 0] = 2
    assert set(np.unique(instance_map(labels, LesionConfig(), False))) == {0, 2, 5}
    binary = (labels > 0).astype(np.int32)
    assert instance_map(binary, LesionConfig(), has_rim_table=False).max() == 3
    assert instance_map(binary, LesionConfig(), has_rim_table=True).max() == 1
    assert instance_map(binary, LesionConfig(map_kind="binary"), has_rim_table=True).max() == 3


def test_table_on_known_geometry_with_anisotropic_voxels():
    instances = np.zeros((10, 10, 10), np.int32)
    instances[2:4, 2:5, 6:8] = 3  # 2×3×2 = 12 voxels, centre (2.5, 3, 6.5)
    instances[9, 0:2, 0] = 7  # 2 voxels on the border
    affine = np.array([[-0.5, 0, 0, 10], [0, 1, 0, -20], [0, 0, 2.0, 5], [0, 0, 0, 1]])
    table = lesion_table(instances, affine, LesionConfig(min_voxels=10))
    first, second = table.iloc[0], table.iloc[1]
    assert list(table["index"]) == [3, 7]
    assert first.voxels == 12 and first.volume_mm3 == pytest.approx(12 * 1.0)
    assert (first.center_vox_i, first.center_vox_j, first.center_vox_k) == (2.5, 3.0, 6.5)
    assert (first.center_mm_x, first.center_mm_y, first.center_mm_z) == (10 - 1.25, -17.0, 18.0)
    assert first.excluded == "" and not first.touches_border
    assert second.excluded == "too_small" and second.touches_border


@pytest.mark.parametrize("threshold, kept", [(100.0, True), (150.0, False)])
def test_min_volume_mm3_decides_alike_at_any_voxel_size(threshold, kept):
    """The same 125 mm³ cube at 1 mm (125 voxels) and at 0.5 mm (1,000 voxels): one volume rule, one answer."""
    config = LesionConfig(min_voxels=0, min_volume_mm3=threshold)
    for voxel_mm, edge in ((1.0, 5), (0.5, 10)):
        instances = np.zeros((16, 16, 16), np.int32)
        instances[2:2 + edge, 2:2 + edge, 2:2 + edge] = 1
        table = lesion_table(instances, np.diag([voxel_mm] * 3 + [1.0]), config)
        assert table.volume_mm3.iloc[0] == pytest.approx(125.0)
        assert (table.excluded.iloc[0] == "") == kept
    voxel_rule = LesionConfig(min_voxels=200)  # the voxel count tells the two grids apart
    small_grid = np.zeros((16, 16, 16), np.int32)
    small_grid[2:12, 2:12, 2:12] = 1
    assert lesion_table(small_grid, np.diag([0.5] * 3 + [1.0]), voxel_rule).excluded.iloc[0] == ""


def test_negative_min_volume_is_a_config_error():
    with pytest.raises(PrlkitError, match=r"lesions\.min_volume_mm3 must be >= 0"):
        LesionConfig(min_volume_mm3=-1.0)


def test_empty_map_gives_empty_table_and_warning(tmp_path):
    table = lesion_table(np.zeros((4, 4, 4), np.int32), np.eye(4), LesionConfig())
    assert table.empty and "excluded" in table
    with pytest.warns(PrlkitWarning, match="lesion map is empty"):
        attach_rim_labels(table, np.zeros((4, 4, 4), np.int32), None, None, tmp_path / "l.nii.gz")


@pytest.mark.parametrize("value, expected", [("1", 1), ("rim+", 1), ("PRL", 1), ("0", 0), ("Rim-", 0), ("non-PRL", 0),
                                             ("n/a", None)])
def test_rim_value_spellings(tmp_path, value, expected):
    path = tmp_path / "t.tsv"
    path.write_text(f"index\trim\n1\t{value}\n")
    rim = read_rim_table(path, np.array([1]))["rim"].iloc[0]
    assert (rim is pd.NA) if expected is None else rim == expected


@pytest.mark.parametrize(
    "rows, message",
    [
        ("1\t1\n2\t0\n9\t0\n", r"label\(s\) 9 are not in the lesion map"),
        ("1\t1\n", r"lesion map label\(s\) 2 have no row"),
        ("1\tmaybe\n2\t0\n", r"unknown rim value 'maybe' for lesion 1"),
        ("1\t1\n1\t0\n", "repeats a label"),
        ("a\t1\n", "integer labels"),
    ],
)
def test_rim_table_errors_name_the_file(tmp_path, rows, message):
    path = tmp_path / "sub-01_desc-lesions_dseg.tsv"
    path.write_text("index\trim\n" + rows)
    with pytest.raises(InputFileError, match=rf"sub-01_desc-lesions_dseg\.tsv: .*{message}"):
        read_rim_table(path, np.array([1, 2]))


def test_prl_mask_labels_overlapping_lesions(tmp_path):
    root = write_bids(tmp_path / "b", participants=("sub-01",))
    lesion_dir = root / "derivatives/lesions/sub-01/anat"
    (lesion_dir / "sub-01_desc-lesions_dseg.tsv").unlink()
    prl = np.zeros((24, 24, 24), np.uint8)
    prl[16, 15, 14] = 1  # one voxel of lesion 2
    save(lesion_dir / "sub-01_desc-prl_mask.nii.gz", prl)
    session = discover_cohort(root).sessions[0]
    table = load_session(session, LesionConfig()).lesions
    assert list(table["rim"]) == [0, 1]


def test_session_with_table_keeps_consensus_column(tmp_path):
    root = write_bids(tmp_path / "b", participants=("sub-01",))
    table_path = root / "derivatives/lesions/sub-01/anat/sub-01_desc-lesions_dseg.tsv"
    table_path.write_text("index\trim\tconsensus_needed\n1\t1\t0\n2\t0\t1\n")
    table = load_session(discover_cohort(root).sessions[0], LesionConfig()).lesions
    assert list(table["consensus_needed"]) == [False, True]
    assert list(table["rim"]) == [1, 0] and list(table["excluded"]) == ["", "too_small"]
