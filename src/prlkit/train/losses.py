"""Losses of the main method and its baselines: SupCon/NT-Xent, composite BCE+SupCon, cross-modal MSE, focal.

All take logits (not probabilities) and targets as float tensors in {0, 1}.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from monai.losses.focal_loss import sigmoid_focal_loss
from torch import nn

from prlkit.errors import PrlkitError


def supcon_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out) in NT-Xent form on L2-normalised embeddings.

    For anchor i with positives P(i) (same label, not i):
    l_i = -1/|P(i)| sum_{p in P(i)} log( exp(s_ip / T) / sum_{a != i} exp(s_ia / T) ), s = cosine similarity.
    Anchors without a positive in the batch are skipped; the mean is over the rest. A batch in
    which no anchor has a positive returns 0 that is still connected to the graph.
    Default T = 0.1 (the paper's value was lost in extraction; 0.1 is the authors' public code).
    Computed in float32 even under bf16/fp16 autocast (logits / T amplify rounding errors).
    """
    if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
        raise PrlkitError(f"supcon_loss needs embeddings (B, D) and labels (B,), got {tuple(embeddings.shape)}, "
                          f"{tuple(labels.shape)}")
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        z = F.normalize(embeddings.to(torch.promote_types(embeddings.dtype, torch.float32)), dim=1)
        logits = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    log_prob = logits - torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = positives.sum(dim=1)
    has_pos = n_pos > 0
    if not has_pos.any():
        return embeddings.sum() * 0.0
    mean_log_prob_pos = torch.where(positives, log_prob, 0.0).sum(dim=1)[has_pos] / n_pos[has_pos]
    return -mean_log_prob_pos.mean()


def nt_xent_loss(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR NT-Xent between paired views (z_a[i], z_b[i]): the other 2N-2 samples are negatives.

    Equal to :func:`supcon_loss` over the 2N embeddings labelled by pair index. Used by the
    contrastive-SSL ablation (two modalities or two augmented views). Default T = 0.5
    (SimCLR's small-batch setting; the paper's value was lost in extraction).
    """
    if z_a.shape != z_b.shape or z_a.ndim != 2:
        raise PrlkitError(f"nt_xent_loss needs two (N, D) tensors, got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    pair = torch.arange(len(z_a), device=z_a.device)
    return supcon_loss(torch.cat([z_a, z_b]), torch.cat([pair, pair]), temperature)


def cross_modal_regression_loss(pred_q: torch.Tensor, z_q: torch.Tensor, stop_gradient: bool) -> torch.Tensor:
    """Stage-1 loss MSE(g(z_f), z_q) with the QSM embedding as target.

    ``stop_gradient=False`` (the authors' released code, the default) trains both encoders but
    admits the collapsed solution z_q = g(z_f) = constant, so watch the embedding spread during
    pretraining. ``True`` detaches z_q: the QSM encoder then gets no gradient from this loss (only
    the FLAIR encoder and g learn).
    """
    return F.mse_loss(pred_q, z_q.detach() if stop_gradient else z_q)


FOCAL_WEIGHTINGS = ("uniform", "class")


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float | None = 0.2,
    weighting: str = "uniform",
) -> torch.Tensor:
    """Mean binary focal loss (Lin et al. 2017) -w (1 - p_t)^gamma log p_t; Deep-PRL uses gamma=2, alpha=0.2.

    weighting ``uniform`` (Deep-PRL's released code): w = alpha for every sample, a constant factor
    (their sampler balances the classes). ``class`` (Lin et al.'s alpha_t, prlkit's earlier reading):
    w = alpha for Rim+ and 1 - alpha for Rim-. ``alpha=None``: w = 1; gamma=0 with alpha=None is BCE.
    """
    if weighting not in FOCAL_WEIGHTINGS:
        raise PrlkitError(f"focal weighting must be one of {', '.join(FOCAL_WEIGHTINGS)}, not {weighting!r}")
    per_class = alpha if weighting == "class" else None
    loss = sigmoid_focal_loss(logits, targets.to(logits.dtype), gamma=gamma, alpha=per_class).mean()
    return loss * alpha if weighting == "uniform" and alpha is not None else loss


class CompositeLossOutput(NamedTuple):
    """Total loss and its parts (detached parts are the caller's job when logging)."""

    total: torch.Tensor
    bce: torch.Tensor
    supcon: torch.Tensor
    weight: torch.Tensor


class CompositeLoss(nn.Module):
    """Stage-2 loss BCE(logit, y) + lambda * SupCon(embedding, y) with lambda = softplus(a), a learnable.

    Initial a = -2.5 (lambda = 0.079, the authors' public code). Because SupCon >= 0,
    dL/da >= 0: gradient descent can only lower lambda (by about the learning rate per AdamW
    step), so in practice lambda stays near its initial value. The authors' AdamW also decays
    ``a`` (weight decay on every parameter); ``weight_decay_all: false`` exempts it.
    """

    def __init__(self, temperature: float = 0.1, initial_a: float = -2.5):
        super().__init__()
        self.temperature = temperature
        self.a = nn.Parameter(torch.tensor(float(initial_a)))

    @property
    def weight(self) -> torch.Tensor:
        """lambda = softplus(a) >= 0."""
        return F.softplus(self.a)

    def forward(self, logits: torch.Tensor, embeddings: torch.Tensor, labels: torch.Tensor) -> CompositeLossOutput:
        bce = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        supcon = supcon_loss(embeddings, labels, self.temperature)
        weight = self.weight
        return CompositeLossOutput(bce + weight * supcon, bce, supcon, weight)
