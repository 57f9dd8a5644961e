"""Random cube symmetries (axis permutations x flips: 48 for a cube) applied identically to all channels.

Each sample of a (B, C, X, Y, Z) batch gets one element of the symmetry group of its
spatial box, drawn uniformly with a ``torch.Generator``; every channel of that sample
(QSM, FLAIR, mask) gets the same one, so the modalities stay aligned. The 24 proper
rotations (compositions of 90-degree rotations) are the elements with determinant +1;
the other 24 are their mirror images.

prlkit's optional intensity augmentation (:func:`training_augmentation`, off unless the stage's
``intensity_scale`` or ``susceptibility_noise`` is set) follows: a random contrast per image channel
and random noise on the susceptibility channel, never on the mask channel or outside the gate.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import NamedTuple

import torch

from prlkit.config import TrainConfig
from prlkit.data.patches import IMAGE_CHANNELS
from prlkit.errors import PrlkitError


class CubeSymmetry(NamedTuple):
    """Permute the spatial axes by ``perm`` (of 0, 1, 2), then flip the axes marked in ``flips``."""

    perm: tuple[int, int, int]
    flips: tuple[bool, bool, bool]


def cube_symmetries(shape: tuple[int, ...] | None = None) -> list[CubeSymmetry]:
    """All symmetries of a box of spatial ``shape`` (None = a cube): 48 for a cube, fewer when axes differ."""
    shape = shape or (1, 1, 1)
    perms = [p for p in itertools.permutations(range(3)) if all(shape[i] == shape[j] for i, j in enumerate(p))]
    return [CubeSymmetry(p, f) for p in perms for f in itertools.product((False, True), repeat=3)]


def named_symmetries(name: str, shape: tuple[int, ...] | None = None) -> list[CubeSymmetry]:
    """A named set of box symmetries: ``none`` (the identity), ``flips`` (the 8 mirror images along the
    axes, no permutation) or ``cube`` (all of :func:`cube_symmetries`); the identity comes first."""
    group = cube_symmetries(shape)
    sets = {"none": group[:1], "flips": [s for s in group if s.perm == (0, 1, 2)], "cube": group}
    if name not in sets:
        raise PrlkitError(f"unknown symmetry set {name!r}; known: {', '.join(sets)}")
    return sets[name]


def apply_symmetry(x: torch.Tensor, symmetry: CubeSymmetry) -> torch.Tensor:
    """Apply one symmetry to the last three (spatial) axes of ``x``."""
    lead = x.ndim - 3
    out = x.permute(*range(lead), *(lead + p for p in symmetry.perm))
    dims = [lead + axis for axis, flip in enumerate(symmetry.flips) if flip]
    return out.flip(dims) if dims else out


def random_symmetries(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply an independently drawn, uniformly random box symmetry to each sample of a (B, C, X, Y, Z) batch."""
    if x.ndim != 5:
        raise PrlkitError(f"augmentation expects a (B, C, X, Y, Z) batch, got shape {tuple(x.shape)}")
    group = cube_symmetries(tuple(x.shape[2:]))
    picks = torch.randint(len(group), (x.shape[0],), generator=generator).tolist()
    return torch.stack([apply_symmetry(sample, group[k]) for sample, k in zip(x, picks)])


def random_intensities(x: torch.Tensor, generator: torch.Generator, scale: float, noise: float) -> torch.Tensor:
    """A (B, C, X, Y, Z) batch whose image channels are each multiplied by exp(U(-scale, scale)) and whose
    susceptibility channel (0) gets Gaussian noise of std U(0, noise) inside the gate (voxels where an image
    channel is non-zero); one draw per sample and channel, from ``generator``."""
    images = x[:, :IMAGE_CHANNELS]
    inside = (images != 0).any(dim=1, keepdim=True)
    gains = torch.exp((2 * torch.rand(images.shape[:2] + (1, 1, 1), generator=generator) - 1) * scale)
    images = images * gains
    if noise > 0:
        std = noise * torch.rand((x.shape[0], 1, 1, 1, 1), generator=generator)
        speckle = torch.randn(inside.shape, generator=generator) * std * inside
        images = torch.cat([images[:, :1] + speckle, images[:, 1:]], dim=1)
    return torch.cat([images, x[:, IMAGE_CHANNELS:]], dim=1)


def training_augmentation(recipe: TrainConfig) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """The augmentation of a training stage: random cube symmetries, then, where the recipe asks for it,
    random intensities (the symmetries alone draw exactly what they did before the option existed)."""
    if not (recipe.intensity_scale or recipe.susceptibility_noise):
        return random_symmetries

    def symmetries_and_intensities(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_intensities(random_symmetries(x, generator), generator, recipe.intensity_scale,
                                  recipe.susceptibility_noise)

    return symmetries_and_intensities
