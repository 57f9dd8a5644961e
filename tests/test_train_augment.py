"""Tests for the cube-symmetry augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prlkit.errors import PrlkitError
from prlkit.train.augment import apply_symmetry, cube_symmetries, named_symmetries, random_symmetries


def _batch(batch: int = 4, size: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 1, size, size, size, generator=torch.Generator().manual_seed(seed))


def test_the_48_cube_symmetries_give_48_distinct_images():
    group = cube_symmetries((3, 3, 3))
    assert len(group) == 48 and group == cube_symmetries()
    cube = torch.arange(27.0).view(3, 3, 3)
    images = {tuple(apply_symmetry(cube, s).flatten().tolist()) for s in group}
    assert len(images) == 48


def test_symmetries_are_the_signed_permutation_matrices_with_24_rotations():
    """Output voxel u holds input voxel M u (centred coordinates), M a signed permutation; 24 have det +1."""
    dets = []
    for s in cube_symmetries((3, 3, 3)):
        matrix = np.zeros((3, 3))
        for new_axis, old_axis in enumerate(s.perm):
            matrix[old_axis, new_axis] = -1.0 if s.flips[new_axis] else 1.0
        dets.append(round(np.linalg.det(matrix)))
        coords = torch.stack(torch.meshgrid(*[torch.arange(3.0) - 1] * 3, indexing="ij"))
        moved = torch.stack([apply_symmetry(c, s) for c in coords])
        expected = torch.einsum("ij,jxyz->ixyz", torch.tensor(matrix, dtype=torch.float32), coords)
        torch.testing.assert_close(moved, expected)
    assert dets.count(1) == 24 and dets.count(-1) == 24


def test_rot90_is_reachable():
    cube = torch.arange(27.0).view(3, 3, 3)
    images = {tuple(apply_symmetry(cube, s).flatten().tolist()) for s in cube_symmetries((3, 3, 3))}
    for dims in [(0, 1), (0, 2), (1, 2)]:
        for k in range(4):
            assert tuple(torch.rot90(cube, k, dims).flatten().tolist()) in images


def test_non_cubic_patches_keep_their_shape():
    group = cube_symmetries((4, 4, 2))
    assert len(group) == 16
    x = torch.randn(5, 2, 4, 4, 2)
    assert random_symmetries(x, torch.Generator().manual_seed(0)).shape == (5, 2, 4, 4, 2)


def test_random_sampling_reaches_all_48_and_applies_one_transform_to_all_channels():
    size, n = 3, 600
    qsm = torch.arange(27.0).view(1, 1, size, size, size).expand(n, 1, -1, -1, -1)
    batch = torch.cat([qsm, 2 * qsm + 1, (qsm > 13).float()], dim=1)
    out = random_symmetries(batch, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out[:, 1], 2 * out[:, 0] + 1)
    torch.testing.assert_close(out[:, 2], (out[:, 0] > 13).float())
    assert len({tuple(img.flatten().tolist()) for img in out[:, 0]}) == 48


def test_seeded_generator_repeats_and_samples_differ():
    x = _batch(8)
    a = random_symmetries(x, torch.Generator().manual_seed(5))
    b = random_symmetries(x, torch.Generator().manual_seed(5))
    c = random_symmetries(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(torch.sort(a.flatten(1)).values, torch.sort(x.flatten(1)).values)  # voxels only move


def test_rejects_non_batch_input():
    with pytest.raises(PrlkitError, match="B, C, X, Y, Z"):
        random_symmetries(torch.zeros(2, 3, 3, 3), torch.Generator())


def test_named_symmetry_sets_start_with_the_identity():
    none, flips, cube = (named_symmetries(name, (3, 3, 3)) for name in ("none", "flips", "cube"))
    assert (len(none), len(flips), len(cube)) == (1, 8, 48)
    assert none[0] == flips[0] == cube[0] == ((0, 1, 2), (False, False, False))
    assert all(s.perm == (0, 1, 2) for s in flips) and set(flips) < set(cube)
    assert len(named_symmetries("cube", (3, 3, 4))) == 16  # only the permutations that keep the box
    with pytest.raises(PrlkitError, match="unknown symmetry set 'rotations'"):
        named_symmetries("rotations")
