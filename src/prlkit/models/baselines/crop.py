"""Fixed-size input cubes for the baselines that take 28^3 inputs (RimNet, Deep-PRL).

Patches of any edge S are centre-cropped (S > size) or zero-padded (S < size, like the patch
extraction pads outside the volume); training shifts each crop by a few voxels per axis.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_cubes(x: torch.Tensor, size: int, shifts: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C, size, size, size) cubes of x (B, C, S, S, S), centred, each moved by its shift (B, 3) voxels."""
    batch, edge = x.shape[0], x.shape[-1]
    if shifts is None and edge == size:
        return x
    if shifts is None:
        shifts = torch.zeros(batch, 3, dtype=torch.long)
    margin = size + int(shifts.abs().max())
    padded = F.pad(x, (margin,) * 6)
    starts = (shifts.cpu() + margin + (edge - size) // 2).tolist()
    return torch.stack([padded[b, :, i : i + size, j : j + size, k : k + size] for b, (i, j, k) in enumerate(starts)])


def random_shifts(batch: int, step: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per sample and axis a shift of -step, 0 or +step voxels (RimNet: step 2), drawn from `generator`
    (None: torch's global generator, which the training loop seeds per epoch)."""
    return torch.randint(-1, 2, (batch, 3), generator=generator) * step
