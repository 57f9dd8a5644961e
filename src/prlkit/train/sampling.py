"""Class-balanced sampling: lesions drawn with probability inversely proportional to class frequency.

prlkit's option ``size_matched`` (``finetune.sampler``) balances the classes within lesion-size bins as
well, so that the sampled Rim+ and Rim- lesions have the same size distribution and size alone cannot
tell them apart during training.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler


def balanced_weights(labels: np.ndarray) -> torch.Tensor:
    """Per-sample weight 1 / (count of its class), so each class has the same total weight."""
    labels = np.asarray(labels, dtype=int)
    counts = np.bincount(labels, minlength=2).astype(float)
    return torch.as_tensor(1.0 / counts[labels], dtype=torch.double)


SIZE_BINS = 4  # size_matched: quartiles of the Rim+ lesions' volumes (about 7 Rim+ per bin at 30 participants)


def size_matched_weights(labels: np.ndarray, voxels: np.ndarray) -> torch.Tensor:
    """Per-sample weights under which each class has total weight 1/2 and, within each class, the
    volume distribution of the Rim+ lesions: equal mass on the quartile bins of Rim+ volume, shared
    equally among the class's lesions in the bin (a bin without Rim- lesions is dropped for both)."""
    labels, voxels = np.asarray(labels, dtype=int), np.asarray(voxels, dtype=float)
    if labels.min(initial=1) == 1 or labels.max(initial=0) == 0:
        return balanced_weights(labels)
    inner_edges = np.quantile(voxels[labels == 1], np.linspace(0, 1, SIZE_BINS + 1)[1:-1])
    bins = np.searchsorted(inner_edges, voxels, side="right")
    counts = np.zeros((SIZE_BINS, 2))
    np.add.at(counts, (bins, labels), 1)
    usable = (counts > 0).all(axis=1)
    weights = np.where(usable[bins], 1.0 / np.maximum(counts[bins, labels], 1), 0.0) / (2 * usable.sum())
    return torch.as_tensor(weights, dtype=torch.double)


def sampling_weights(sampler: str, labels: np.ndarray, voxels: np.ndarray) -> torch.Tensor:
    """The per-sample weights of `finetune.sampler`: ``balanced`` or ``size_matched``."""
    if sampler == "size_matched":
        return size_matched_weights(labels, voxels)
    return balanced_weights(labels)


def balanced_batches(labels: np.ndarray, batch_size: int, generator: torch.Generator,
                     weights: torch.Tensor | None = None) -> list[torch.Tensor]:
    """One epoch of index batches (as many samples as labels) from a WeightedRandomSampler, weighted by
    `weights` (default: :func:`balanced_weights`)."""
    weights = balanced_weights(labels) if weights is None else weights
    sampler = WeightedRandomSampler(weights, num_samples=len(labels), replacement=True, generator=generator)
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
