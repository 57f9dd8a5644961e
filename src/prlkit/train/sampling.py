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
    return index_batches(torch.tensor(list(sampler), dtype=torch.long), batch_size)


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of index batches over a random permutation (label-free stages)."""
    return index_batches(torch.randperm(n, generator=generator), batch_size)


def index_batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """`order` cut into batches of `batch_size`; a last batch of one sample joins the one before, because
    BatchNorm cannot train on a single sample (a training set of 16k + 1 lesions would otherwise fail)."""
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches
