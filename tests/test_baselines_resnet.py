"""MONAI ResNet-18 baseline: shapes at S = 24/28/32, parameter count, channels used, gradients."""

from __future__ import annotations

import pytest
import torch

from prlkit.models.baselines.resnet import ResNet18Baseline


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return ResNet18Baseline()


def test_parameter_count(net):
    # The bias-free QSMRim-Net ResNet-18 body (33,181,952, counted in test_baselines_qsmrimnet)
    # + biases of MONAI's three 1x1x1 shortcut convolutions (128 + 256 + 512) + FC 512 -> 1 (513).
    assert sum(p.numel() for p in net.parameters()) == 33_181_952 + 896 + 513


@pytest.mark.parametrize("size", [24, 28, 32])
def test_forward_shapes(net, size):
    with torch.no_grad():
        logits = net.eval()(torch.randn(2, 3, size, size, size))
    assert logits.shape == (2,) and torch.isfinite(logits).all()


def test_uses_qsm_and_flair_only_and_backpropagates(net):
    x = torch.randn(2, 3, 16, 16, 16)
    y = x.clone()
    y[:, 2] = 5.0
    with torch.no_grad():
        assert torch.equal(net.eval()(x), net(y))
    net.train().zero_grad()
    net(x).sum().backward()
    assert net.net.conv1.weight.grad.abs().sum() > 0 and net.net.fc.weight.grad.abs().sum() > 0
