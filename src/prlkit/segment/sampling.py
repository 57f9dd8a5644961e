"""Per-epoch random training patches drawn from whole volumes, addressable by the shared loop.

The loop indexes `Split.x` and `Split.y` with the index batches of `Stage.batches`; here an index
row is (volume, i, j, k, flips): the patch centre in that volume and a 3-bit axis-flip code, so
image and target patches are cut and flipped identically, and every draw comes from the epoch's
`torch.Generator` (exact resume, fixed seed -> same patches).
"""

from __future__ import annotations

import numpy as np
import torch

from prlkit.config import SegmentConfig
from prlkit.segment.volumes import PRL, SegmentVolume
from prlkit.train.augment import CubeSymmetry, apply_symmetry

IDENTITY = (0, 1, 2)


class PatchSampler:
    """Per round and volume: `lesion_patches` centres on random lesion voxels, `prl_patches` more on
    random PRL-lesion voxels (volumes with a Rim+ lesion only), `background_patches` on random brain
    (FLAIR > 0) voxels; `rounds_per_epoch` rounds make one loop epoch."""

    def __init__(self, volumes: list[SegmentVolume], config: SegmentConfig):
        self.config, self.size = config, config.patch_size
        half = self.size // 2
        self.shapes = [v.target.shape for v in volumes]
        # padded once, so a patch centred at c starts at c in padded coordinates
        self.images = [np.pad(v.image, ((0, 0),) + ((half, half),) * 3) for v in volumes]
        self.targets = [np.pad(v.target, half) for v in volumes]
        self.lesion_voxels = [torch.from_numpy(np.flatnonzero(v.target > 0)) for v in volumes]
        self.prl_voxels = [torch.from_numpy(np.flatnonzero(v.target == PRL)) for v in volumes]
        self.brain_voxels = [torch.from_numpy(np.flatnonzero(v.session.flair > 0)) for v in volumes]

    def draw(self, generator: torch.Generator) -> torch.Tensor:
        """One epoch of patch rows (N, 5): volume, centre i, j, k, flip code; in random order."""
        config, rows = self.config, []
        for _ in range(config.rounds_per_epoch):
            for n, pools in enumerate(zip(self.lesion_voxels, self.prl_voxels, self.brain_voxels)):
                counts = (config.lesion_patches, config.prl_patches, config.background_patches)
                for pool, count in zip(pools, counts):
                    if count and len(pool):
                        flat = pool[torch.randint(len(pool), (count,), generator=generator)].numpy()
                        centre = np.stack(np.unravel_index(flat, self.shapes[n]), axis=1)
                        rows.append(np.column_stack([np.full(count, n), centre, np.zeros(count, int)]))
        table = torch.from_numpy(np.concatenate(rows).astype(np.int64))
        if config.flips:
            table[:, 4] = torch.randint(8, (len(table),), generator=generator)
        return table[torch.randperm(len(table), generator=generator)]

    def batches(self, generator: torch.Generator, batch_size: int) -> list[torch.Tensor]:
        return list(self.draw(generator).split(batch_size))

    def cut(self, arrays: list[np.ndarray], index: torch.Tensor) -> torch.Tensor:
        """The patches of `index` rows from `arrays` (images (C, ...) or targets), flipped by their code."""
        s = self.size
        cubes = []
        for n, i, j, k, code in index.tolist():
            cube = torch.from_numpy(np.ascontiguousarray(arrays[n][..., i:i + s, j:j + s, k:k + s]))
            cubes.append(apply_symmetry(cube, CubeSymmetry(IDENTITY, tuple(bool(code >> a & 1) for a in range(3)))))
        return torch.stack(cubes)

    @property
    def x(self) -> PatchView:
        """Image patches, indexable like a tensor by the loop."""
        return PatchView(self, self.images, torch.float32)

    @property
    def y(self) -> PatchView:
        """Class-target patches (long), indexable like a tensor by the loop."""
        return PatchView(self, self.targets, torch.long)


class PatchView:
    """What `Split.x`/`Split.y` must offer the loop: `.device` and indexing by an index batch."""

    device = torch.device("cpu")

    def __init__(self, sampler: PatchSampler, arrays: list[np.ndarray], dtype: torch.dtype):
        self.sampler, self.arrays, self.dtype = sampler, arrays, dtype

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        return self.sampler.cut(self.arrays, index).to(self.dtype)
