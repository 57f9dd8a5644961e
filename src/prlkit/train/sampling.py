"""Class-balanced sampling: lesions drawn with probability inversely proportional to class frequency."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler


def balanced_weights(labels: np.ndarray) -> torch.Tensor:
    """Per-sample weight 1 / (count of its class), so each class has the same total weight."""
    labels = np.asarray(labels, dtype=int)
    counts = np.bincount(labels, minlength=2).astype(float)
    return torch.as_tensor(1.0 / counts[labels], dtype=torch.double)


def balanced_batches(labels: np.ndarray, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of index batches (as many samples as labels) from a WeightedRandomSampler."""
    sampler = WeightedRandomSampler(balanced_weights(labels), num_samples=len(labels), replacement=True,
                                    generator=generator)
    order = torch.tensor(list(sampler), dtype=torch.long)
    return list(order.split(batch_size))


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of index batches over a random permutation (label-free stages)."""
    return list(torch.randperm(n, generator=generator).split(batch_size))
