"""Patch centring, zero padding, gating and normalisation, exact on known geometry."""

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from prlkit.config import LesionConfig, PatchConfig
from prlkit.data.bids import SessionFiles
from prlkit.data.lesions import lesion_table
from prlkit.data.patches import (
    extract_cubes,
    gating_masks,
    gating_radius,
    normalise_flair,
    normalise_qsm,
    patch_corners,
    session_patches,
)
from prlkit.data.session import SessionData
from prlkit.errors import PrlkitError

from conftest import ball


def coordinate_volume(shape):
    """Each voxel holds a unique code of its position, so a cube reveals where it was cut."""
    i, j, k = np.indices(shape)
    return (i * 10000 + j * 100 + k + 1).astype(np.int64)


def test_cube_is_centred_on_rounded_centre_of_mass():
    volume = coordinate_volume((20, 20, 20))
    corners = patch_corners(np.array([[10.4, 9.5, 7.0]]), size=8)
    assert corners.tolist() == [[6, 6, 3]]
    cube = extract_cubes(volume, corners, 8)[0]
    assert cube[4, 4, 4] == volume[10, 10, 7]  # the centre voxel sits at index size // 2
    np.testing.assert_array_equal(cube, volume[6:14, 6:14, 3:11])


def test_cube_is_zero_padded_at_the_border():
    volume = coordinate_volume((10, 10, 10))
    cube = extract_cubes(volume, patch_corners(np.array([[1.0, 8.0, 5.0]]), 8), 8)[0]
    # i runs from -3 to 4, j from 4 to 11, k from 1 to 8
    assert (cube[:3] == 0).all() and (cube[:, 6:] == 0).all()
    np.testing.assert_array_equal(cube[3:, :6, :], volume[0:5, 4:10, 1:9])


def test_many_cubes_in_one_call_match_single_ones():
    volume = coordinate_volume((16, 16, 16))
    corners = np.array([[0, 0, 0], [-4, 3, 12], [10, 10, 10]])
    cubes = extract_cubes(volume, corners, 6)
    for corner, cube in zip(corners, cubes):
        np.testing.assert_array_equal(cube, extract_cubes(volume, corner[None], 6)[0])


def test_gating_radius_and_mask_are_exact():
    assert gating_radius(np.array([8, 27, 1000]), PatchConfig(gate_rule="cbrt", gate_k=0.5)).tolist() == [1, 2, 5]
    cube = np.zeros((1, 9, 9, 9), np.int32)
    cube[0, 4, 4, 4] = 3
    cube[0, 0, 0, 0] = 9  # a neighbouring lesion: must not count as this lesion's voxels
    mask = gating_masks(cube, np.array([3]), np.array([2]), "cbrt")[0]
    np.testing.assert_array_equal(mask, ball((9, 9, 9), (4, 4, 4), 2))
    assert not gating_masks(cube, np.array([5]), np.array([2]), "cbrt").any()  # lesion absent from its cube
    city_block = gating_masks(cube, np.array([3]), np.array([2]), "authors")[0]
    np.testing.assert_array_equal(city_block, np.abs(np.indices((9, 9, 9)) - 4).sum(axis=0) <= 2)


def test_authors_gating_radius_formula():
    """r = round(clip(0.75 rho, 5, 16)), rho = (3V / 4 pi)^(1/3): the authors' patches_extraction.py."""
    voxels = np.array([110, 500, 1150, 4000, 30000, 200000])
    rho = (3 * voxels / (4 * np.pi)) ** (1 / 3)
    expected = [round(float(np.clip(0.75 * r, 5, 16))) for r in rho]
    assert gating_radius(voxels, PatchConfig()).tolist() == expected
    assert expected[0] == 5 and expected[-1] == 16


def test_authors_gating_equals_iterated_6_connected_dilation_of_the_whole_volume():
    """The cube-local computation equals SciPy's binary_dilation of the full lesion mask, cropped, even for a
    lesion that reaches past the cube (its voxels just outside still gate voxels inside)."""
    shape = (40, 40, 40)
    instances = np.zeros(shape, np.int32)
    instances[ball(shape, (20, 20, 20), 3)] = 1
    instances[20, 20, 4:37] = 1  # a long arm past both faces of a 16^3 cube
    instances[ball(shape, (8, 30, 30), 2)] = 2
    session = SessionData(files=SessionFiles("sub-01", None, None, None, None), qsm=np.zeros(shape, np.float32),
                          flair=np.ones(shape, np.float32), instances=instances, affine=np.eye(4),
                          lesions=lesion_table(instances, np.eye(4), LesionConfig(min_voxels=0)))
    config = PatchConfig(size=16)
    row = session.lesions.iloc[:1]
    patches = session_patches(session, row, config)
    radius = int(gating_radius(row["voxels"].to_numpy(), config)[0])
    dilated = ndimage.binary_dilation(instances == 1, ndimage.generate_binary_structure(3, 1), iterations=radius)
    corner = np.floor(row[["center_vox_i", "center_vox_j", "center_vox_k"]].to_numpy()[0] + 0.5).astype(int) - 8
    expected = dilated[tuple(slice(c, c + 16) for c in corner)]
    np.testing.assert_array_equal(patches[0, 2].astype(bool), expected)
    np.testing.assert_allclose(patches[0, 0], 0.5 * expected)  # 0 ppm -> 0.5 in [0, 1], zero outside the gate


def make_session(shape=(30, 30, 30), center=(15, 15, 15), radius=4):
    instances = np.zeros(shape, np.int32)
    instances[ball(shape, center, radius)] = 1
    instances[ball(shape, (24, 24, 24), 2)] = 2
    rng = np.random.default_rng(0)
    flair = rng.uniform(50, 150, shape).astype(np.float32)
    qsm = rng.uniform(-0.3, 0.3, shape).astype(np.float32)
    affine = np.eye(4)
    files = SessionFiles("sub-01", None, None, None, None)
    lesions = lesion_table(instances, affine, LesionConfig(min_voxels=0))
    return SessionData(files=files, qsm=qsm, flair=flair, instances=instances, affine=affine, lesions=lesions)


def test_session_patches_gate_every_channel():
    session = make_session()
    config = PatchConfig(size=16, gate_k=0.5, gate_rule="cbrt", qsm_scale="signed")
    patches = session_patches(session, session.lesions.iloc[:1], config)
    assert patches.shape == (1, 3, 16, 16, 16) and patches.dtype == np.float32
    radius = gating_radius(np.array([session.lesions.voxels.iloc[0]]), config)[0]
    lesion = ball((16, 16, 16), (8, 8, 8), 4)
    expected_mask = ndimage.distance_transform_edt(~lesion) <= radius
    np.testing.assert_array_equal(patches[0, 2], expected_mask.astype(np.float32))
    qsm = normalise_qsm(session.qsm, config.qsm_window_ppm, "signed")[7:23, 7:23, 7:23]
    np.testing.assert_array_equal(patches[0, 0], qsm * expected_mask)
    assert (patches[0, :2][:, ~expected_mask] == 0).all()


def test_session_patches_without_gating_keep_context():
    session = make_session()
    patches = session_patches(session, session.lesions, PatchConfig(size=16, gate=False))
    flair = normalise_flair(session.flair, (0.5, 99.5))
    np.testing.assert_array_equal(patches[0, 1], flair[7:23, 7:23, 7:23])
    lesion_two = np.zeros((16, 16, 16), np.float32)  # lesion 2 is cut from 16..31, past the edge at 30
    lesion_two[:14, :14, :14] = session.instances[16:30, 16:30, 16:30] == 2
    np.testing.assert_array_equal(patches[1, 2], lesion_two)  # mask channel = the lesion itself


def test_flair_normalisation_matches_numpy_percentiles():
    rng = np.random.default_rng(1)
    flair = np.zeros((20, 20, 20), np.float32)
    flair[2:18, 2:18, 2:18] = rng.gamma(4.0, 50.0, (16, 16, 16))
    out = normalise_flair(flair, (0.5, 99.5))
    low, high = np.percentile(flair[flair > 0], [0.5, 99.5])
    inside = flair[(flair >= low) & (flair <= high) & (flair > 0)]
    np.testing.assert_allclose(out[(flair >= low) & (flair <= high) & (flair > 0)], (inside - low) / (high - low),
                               rtol=1e-5)
    assert out.min() == 0 and out.max() == 1
    # an arbitrary global scale (as between scanners) gives the same result
    np.testing.assert_allclose(normalise_flair(flair * 7.3, (0.5, 99.5)), out, atol=1e-5)


def test_qsm_normalisation_signed_preserves_zero_and_contrast():
    qsm = np.array([-0.5, -0.15, 0.0, 0.1, 0.25, 3.0], np.float32)
    np.testing.assert_allclose(normalise_qsm(qsm, (-0.15, 0.25), "signed"), [-0.6, -0.6, 0.0, 0.4, 1.0, 1.0], rtol=1e-6)


def test_qsm_normalisation_unit_is_the_authors_linear_map():
    """Clip to +-0.3 ppm (their +-300 ppb) and map linearly to [0, 1]."""
    qsm = np.array([-1.0, -0.3, -0.15, 0.0, 0.06, 0.3, 2.0], np.float32)
    np.testing.assert_allclose(normalise_qsm(qsm, (-0.3, 0.3), "unit"), [0, 0, 0.25, 0.5, 0.6, 1, 1], atol=1e-6)


def test_empty_lesion_selection_gives_empty_array():
    session = make_session()
    assert session_patches(session, session.lesions.iloc[:0], PatchConfig(size=8)).shape == (0, 3, 8, 8, 8)



def session_on_grid(voxel_mm: float, extent_mm: int = 30, radius_mm: float = 4.0) -> SessionData:
    """A lesion ball at (15, 15, 15) mm and a QSM linear in millimetres, on a `voxel_mm` isotropic grid."""
    shape = (round(extent_mm / voxel_mm),) * 3
    centre = 15.0 / voxel_mm
    instances = ball(shape, (centre,) * 3, radius_mm / voxel_mm).astype(np.int32)
    x, y, z = np.indices(shape) * voxel_mm
    qsm = (0.004 * (x - 15) - 0.003 * (y - 15) + 0.002 * (z - 15)).astype(np.float32)
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    lesions = lesion_table(instances, affine, LesionConfig(min_voxels=0))
    return SessionData(files=SessionFiles("sub-01", None, None, None, None), qsm=qsm,
                       flair=np.ones(shape, np.float32), instances=instances, affine=affine, lesions=lesions)


def test_cubes_resampled_to_the_images_own_voxel_size_are_the_plain_cubes():
    session = make_session()
    for gate in (True, False):
        config = PatchConfig(size=16, gate=gate, gate_rule="cbrt", gate_k=0.5)
        plain = session_patches(session, session.lesions, config)
        resampled = session_patches(session, session.lesions, dataclasses.replace(config, voxel_mm=1.0))
        np.testing.assert_array_equal(resampled, plain)


def test_resampled_cubes_span_millimetres_whatever_the_voxel_size():
    coarse, fine = session_on_grid(1.0), session_on_grid(0.5)
    config = PatchConfig(size=16, gate=False, qsm_scale="signed")
    expected = session_patches(coarse, coarse.lesions, config)[0, 0]
    resampled = session_patches(fine, fine.lesions, dataclasses.replace(config, voxel_mm=1.0))[0, 0]
    np.testing.assert_allclose(resampled, expected, atol=1e-6)  # a linear map is interpolated exactly
    assert not np.allclose(session_patches(fine, fine.lesions, config)[0, 0], expected, atol=1e-3)
    gated = dataclasses.replace(config, gate=True, gate_rule="cbrt", gate_k=0.5)
    coarse_mask = session_patches(coarse, coarse.lesions, gated)[0, 2]
    fine_mask = session_patches(fine, fine.lesions, dataclasses.replace(gated, voxel_mm=1.0))[0, 2]
    assert np.mean(coarse_mask != fine_mask) < 0.02  # the same radius in mm: only the ball's voxelisation differs


def test_voxel_mm_must_not_be_negative():
    with pytest.raises(PrlkitError, match=r"patches\.voxel_mm"):
        PatchConfig(voxel_mm=-1.0)
