"""Tests for the cube-symmetry augmentation and the optional intensity augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prlkit.config import TrainConfig
from prlkit.errors import PrlkitError
from prlkit.train.augment import (
    apply_symmetry,
    cube_symmetries,
    named_symmetries,
    random_intensities,
    random_symmetries,
    training_augmentation,
)


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


def _gated_patches(n: int = 64, size: int = 6) -> torch.Tensor:
    """QSM, FLAIR and mask channels that are zero outside a central ball (the gate), as prlkit's patches."""
    generator = torch.Generator().manual_seed(3)
    grid = torch.stack(torch.meshgrid(*[torch.arange(size) - size / 2 + 0.5] * 3, indexing="ij"))
    gate = (grid.square().sum(0) < (size / 2 - 1) ** 2).float()
    images = torch.rand(n, 2, size, size, size, generator=generator) + 0.1
    return torch.cat([images, torch.ones(n, 1, size, size, size)], dim=1) * gate


def test_intensities_scale_each_image_channel_within_bounds_and_leave_the_mask():
    x = _gated_patches()
    out = random_intensities(x, torch.Generator().manual_seed(0), scale=0.2, noise=0.0)
    ratio = out[:, :2] / x[:, :2].clamp_min(1e-6)
    inside = x[:, :1] != 0
    gains = torch.stack([ratio[i, c][inside[i, 0]] for i in range(len(x)) for c in range(2)])
    torch.testing.assert_close(gains.min(dim=1).values, gains.max(dim=1).values)  # one gain per sample and channel
    assert np.exp(-0.2) - 1e-6 <= gains.min() and gains.max() <= np.exp(0.2) + 1e-6
    assert gains[:, 0].std() > 0.05  # drawn, not constant
    torch.testing.assert_close(out[:, 2], x[:, 2])
    assert torch.all(out[x != 0].ne(0)) and torch.all(out[x == 0] == 0)


def test_susceptibility_noise_stays_inside_the_gate_and_off_flair():
    x = _gated_patches()
    out = random_intensities(x, torch.Generator().manual_seed(0), scale=0.0, noise=0.1)
    torch.testing.assert_close(out[:, 1:], x[:, 1:])
    change = out[:, 0] - x[:, 0]
    assert torch.all(change[x[:, 0] == 0] == 0)
    per_sample = torch.stack([change[i][x[i, 0] != 0].std() for i in range(len(x))])
    assert per_sample.max() <= 0.1 * 1.3 and per_sample.max() > 0.07 and per_sample.min() < 0.03


def test_training_augmentation_adds_intensities_only_when_asked():
    assert training_augmentation(TrainConfig()) is random_symmetries  # the same random draws as before
    x = _gated_patches(8)
    augment = training_augmentation(TrainConfig(intensity_scale=0.2, susceptibility_noise=0.05))
    first, again = (augment(x, torch.Generator().manual_seed(5)) for _ in range(2))
    torch.testing.assert_close(first, again)
    symmetric_only = random_symmetries(x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(first[:, 2], symmetric_only[:, 2])  # the same symmetries, then intensities
    assert not torch.allclose(first[:, :2], symmetric_only[:, :2])


@pytest.mark.parametrize("field", ["intensity_scale", "susceptibility_noise"])
def test_intensity_options_outside_zero_to_one_are_an_error(field):
    with pytest.raises(PrlkitError, match=field):
        TrainConfig(**{field: -0.1})
