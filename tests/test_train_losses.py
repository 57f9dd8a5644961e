"""Tests for the losses against slow explicit reference implementations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from prlkit.errors import PrlkitError
from prlkit.train.losses import (
    CompositeLoss,
    cross_modal_regression_loss,
    focal_loss,
    nt_xent_loss,
    supcon_loss,
)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _supcon_loop(embeddings: torch.Tensor, labels: list[int], temperature: float) -> float:
    """Khosla et al. (2020) eq. 2, one anchor and one positive at a time."""
    z = [e / e.norm() for e in embeddings]
    n = len(z)
    per_anchor = []
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(float(z[i] @ z[a]) / temperature) for a in range(n) if a != i)
        terms = [math.log(math.exp(float(z[i] @ z[p]) / temperature) / denominator) for p in positives]
        per_anchor.append(-sum(terms) / len(positives))
    return sum(per_anchor) / len(per_anchor)


@pytest.mark.parametrize("labels", [[0, 1, 0, 0, 1, 0], [1, 0, 0, 0, 0, 0], [2, 2, 0, 1, 1, 3]])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_supcon_matches_explicit_loop(labels, temperature):
    embeddings = _randn(len(labels), 5)
    got = supcon_loss(embeddings, torch.tensor(labels), temperature)
    assert float(got) == pytest.approx(_supcon_loop(embeddings, labels, temperature), rel=1e-6)


def test_supcon_ignores_embedding_scale_and_prefers_clustered_classes():
    labels = torch.tensor([0, 0, 1, 1])
    embeddings = _randn(4, 3)
    torch.testing.assert_close(supcon_loss(embeddings, labels), supcon_loss(7.0 * embeddings, labels),
                               check_dtype=False)
    clustered = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]])
    mixed = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.01], [-1.0, 0.01]])
    assert float(supcon_loss(clustered, labels)) < float(supcon_loss(mixed, labels))


def test_supcon_is_float32_under_bf16_autocast():
    embeddings, labels = _randn(6, 4).bfloat16(), torch.tensor([0, 1, 0, 1, 1, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = supcon_loss(embeddings, labels)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(float(supcon_loss(embeddings.float(), labels)), rel=1e-6)


def test_supcon_without_positives_is_zero_with_grad():
    embeddings = _randn(2, 4).requires_grad_()
    loss = supcon_loss(embeddings, torch.tensor([0, 1]))
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


def test_supcon_rejects_mismatched_shapes():
    with pytest.raises(PrlkitError):
        supcon_loss(_randn(4, 3), torch.zeros(3))


def test_nt_xent_matches_simclr_formula():
    """SimCLR: l(i, j) = -log exp(s_ij/T) / sum_{k != i} exp(s_ik/T), averaged over the 2N ordered pairs."""
    z_a, z_b, t = _randn(4, 6, seed=1), _randn(4, 6, seed=2), 0.5
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    n = len(z_a)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        denominator = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / t) / denominator)
    assert float(nt_xent_loss(z_a, z_b, t)) == pytest.approx(total / (2 * n), rel=1e-6)


def test_nt_xent_is_low_for_aligned_views():
    z = _randn(8, 16)
    assert float(nt_xent_loss(z, z + 0.01 * _randn(8, 16, seed=3))) < float(nt_xent_loss(z, _randn(8, 16, seed=4)))


def test_cross_modal_regression_stop_gradient():
    pred, target = _randn(3, 4).requires_grad_(), _randn(3, 4, seed=1).requires_grad_()
    loss = cross_modal_regression_loss(pred, target, stop_gradient=True)
    assert float(loss.detach()) == pytest.approx(float(((pred - target) ** 2).mean().detach()))
    loss.backward()
    assert target.grad is None and pred.grad is not None
    cross_modal_regression_loss(pred, target, stop_gradient=False).backward()
    torch.testing.assert_close(target.grad, -2 * (pred - target).detach() / pred.numel())


def test_composite_loss_is_bce_plus_softplus_weighted_supcon():
    criterion = CompositeLoss(temperature=0.2, initial_a=-2.5)
    logits, embeddings = _randn(6).float(), _randn(6, 4).float()
    labels = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    out = criterion(logits, embeddings, labels)
    bce = F.binary_cross_entropy_with_logits(logits, labels)
    supcon = supcon_loss(embeddings, labels, 0.2)
    assert float(out.weight.detach()) == pytest.approx(math.log1p(math.exp(-2.5)))
    torch.testing.assert_close(out.total, bce + out.weight * supcon)
    out.total.backward()
    assert criterion.a.grad is not None and float(criterion.a.grad) == pytest.approx(
        float(supcon.detach()) / (1 + math.exp(2.5)), rel=1e-5
    )


def _focal_reference(logits: torch.Tensor, targets: torch.Tensor, gamma: float, alpha: float | None,
                     weighting: str) -> float:
    p = torch.sigmoid(logits)
    p_t = torch.where(targets == 1, p, 1 - p)
    if alpha is None:
        w = 1.0
    elif weighting == "class":
        w = torch.where(targets == 1, alpha, 1 - alpha)
    else:
        w = alpha
    return float((-w * (1 - p_t) ** gamma * torch.log(p_t)).mean())


@pytest.mark.parametrize("weighting", ["uniform", "class"])
@pytest.mark.parametrize("gamma,alpha", [(2.0, 0.2), (0.5, 0.75), (2.0, None)])
def test_focal_loss_matches_formula(gamma, alpha, weighting):
    logits, targets = _randn(10), (torch.arange(10) % 3 == 0).double()
    assert float(focal_loss(logits, targets, gamma, alpha, weighting)) == pytest.approx(
        _focal_reference(logits, targets, gamma, alpha, weighting), rel=1e-6
    )


def test_focal_loss_default_is_the_released_uniform_alpha():
    # Deep-PRL's released loss: 0.2 * (1 - p_t)^2 * CE(two-class softmax) per sample, mean; with one logit
    # z = z1 - z0 the softmax is the sigmoid, so CE = BCE. Rim- and Rim+ samples weigh the same.
    logits, targets = torch.tensor([0.3, -1.2, 2.0, -0.4]), torch.tensor([1.0, 0.0, 0.0, 1.0])
    p_t = torch.where(targets == 1, torch.sigmoid(logits), 1 - torch.sigmoid(logits))
    expected = (0.2 * (1 - p_t) ** 2 * F.binary_cross_entropy_with_logits(logits, targets, reduction="none")).mean()
    torch.testing.assert_close(focal_loss(logits, targets), expected)
    negatives_only = focal_loss(logits[1:3], targets[1:3], weighting="class") / focal_loss(logits[1:3], targets[1:3])
    assert float(negatives_only) == pytest.approx(0.8 / 0.2)  # the class reading counts Rim- 4x more
    with pytest.raises(PrlkitError, match="weighting"):
        focal_loss(logits, targets, weighting="balanced")


def test_focal_loss_reduces_to_bce():
    logits, targets = _randn(10), (torch.arange(10) % 2 == 0).double()
    torch.testing.assert_close(
        focal_loss(logits, targets, gamma=0.0, alpha=None), F.binary_cross_entropy_with_logits(logits, targets)
    )


def test_focal_loss_down_weights_easy_examples():
    targets = torch.tensor([1.0])
    easy, hard = torch.tensor([4.0]), torch.tensor([-1.0])
    ratio_focal = float(focal_loss(easy, targets)) / float(focal_loss(hard, targets))
    ratio_bce = float(F.binary_cross_entropy_with_logits(easy, targets)) / float(
        F.binary_cross_entropy_with_logits(hard, targets)
    )
    assert ratio_focal < ratio_bce / 10
