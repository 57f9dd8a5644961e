"""RimNet and Deep-PRL: shapes at S = 24/28/32, hand-counted parameters, inputs used, gradients; crop helper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prlkit.models.baselines.crop import crop_cubes, random_shifts
from prlkit.models.baselines.deepprl import DeepPRL, DeepPRLConfig
from prlkit.models.baselines.rimnet import RimNet, RimNetConfig, pooled_voxels

# Parameters of one ConvBlock (two 3x3x3 convs with bias + two BatchNorms): a -> b.
block = lambda a, b: (a * b * 27 + b) + 2 * b + (b * b * 27 + b) + 2 * b  # noqa: E731
# RimNet: FLAIR branch 28,704 + 166,272 + 664,320 + 129 (1x1x1 reduction) = 859,425;
# QSM branch takes 32 + 32 channels into block 2: 28,704 + 221,568 + 664,320 + 129 = 914,721;
# head at 28^3: 2 * 4^3 = 128 -> 256 -> 128 -> 64 -> 1: 33,024 + 32,896 + 8,256 + 65 = 74,241.
RIMNET_PARAMETERS = 859_425 + 914_721 + 74_241  # 1,848,387
# Deep-PRL: mask block 28,704; two image branches as RimNet's QSM branch; head 128 -> 32 -> 1: 4,161.
DEEPPRL_PARAMETERS = 28_704 + 2 * 914_721 + 4_161  # 1,862,307


TINY = {"widths": (4, 6, 8), "input_size": 12}  # behaviour tests: same wiring, a fraction of the cost


@pytest.fixture(scope="module")
def rimnet():
    torch.manual_seed(0)
    return RimNet(RimNetConfig(**TINY))


@pytest.fixture(scope="module")
def deepprl():
    torch.manual_seed(0)
    return DeepPRL(DeepPRLConfig(**TINY))


def test_hand_counts_agree_with_the_block_formula():
    assert block(1, 32) == 28_704 and block(32, 64) == 166_272 and block(64, 64) == 221_568
    assert block(64, 128) == 664_320 and pooled_voxels(28) == 64 and pooled_voxels(24) == 27


def test_parameter_counts():
    assert sum(p.numel() for p in RimNet().parameters()) == RIMNET_PARAMETERS
    assert sum(p.numel() for p in DeepPRL().parameters()) == DEEPPRL_PARAMETERS


@pytest.mark.parametrize("size", [24, 28, 32])
@pytest.mark.parametrize("net", [RimNet, DeepPRL])
def test_forward_shapes(net, size):
    net = net().eval()
    with torch.no_grad():
        logits = net(torch.randn(2, 3, size, size, size))
    assert logits.shape == (2,) and torch.isfinite(logits).all()


def test_rimnet_ignores_the_mask_and_deepprl_uses_it(rimnet, deepprl):
    x = torch.randn(2, 3, 28, 28, 28)
    y = x.clone()
    y[:, 2] = torch.rand(2, 28, 28, 28)
    with torch.no_grad():
        assert torch.equal(rimnet.eval()(x), rimnet(y))
        assert not torch.allclose(deepprl.eval()(x), deepprl(y))
        for net in (rimnet, deepprl):  # both read QSM (channel 0) and FLAIR (channel 1)
            for channel in (0, 1):
                z = x.clone()
                z[:, channel] += 1.0
                assert not torch.allclose(net(x), net(z))


@pytest.mark.parametrize("name", ["rimnet", "deepprl"])
def test_gradients_reach_every_parameter(name, request):
    net = request.getfixturevalue(name).train()
    net.zero_grad()
    shifts = random_shifts(4, 2, torch.Generator().manual_seed(0))
    net(torch.randn(4, 3, 24, 24, 24), shifts).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_fc_tanh_switch():
    tanh = lambda net: sum(isinstance(m, torch.nn.Tanh) for m in net.head)  # noqa: E731
    assert tanh(RimNet()) == 0 and tanh(RimNet(RimNetConfig(fc_tanh=True))) == 3  # released codes: linear
    assert tanh(DeepPRL()) == 0 and tanh(DeepPRL(DeepPRLConfig(fc_tanh=True))) == 1


def test_rimnet_topology_switch(rimnet):
    from prlkit.errors import PrlkitError

    assert RimNetConfig().batch_norm and not RimNetConfig(topology="tf").batch_norm
    assert RimNetConfig(topology="tf", batch_norm=True).batch_norm  # explicit settings win
    tf = RimNet(RimNetConfig(**TINY, topology="tf")).eval()
    assert tf.head[0].in_features == 2 * 12**3 < sum(p.numel() for p in tf.head[0].parameters())
    x = torch.randn(2, 3, 12, 12, 12)
    with torch.no_grad():  # stride-1 pools keep the map size, and the network still gives finite logits
        assert tf.flair.block1(x[:, :1]).shape == (2, 4, 12, 12, 12) and torch.isfinite(tf(x)).all()
    with pytest.raises(PrlkitError, match="topology"):
        RimNetConfig(topology="keras")


def test_crop_cubes_centres_pads_and_shifts():
    x = torch.arange(32**3, dtype=torch.float32).reshape(1, 1, 32, 32, 32)
    assert torch.equal(crop_cubes(x, 28), x[:, :, 2:30, 2:30, 2:30])
    shifted = crop_cubes(x, 28, torch.tensor([[2, -2, 0]]))
    assert torch.equal(shifted, x[:, :, 4:32, 0:28, 2:30])
    small = torch.ones(2, 3, 24, 24, 24)
    padded = crop_cubes(small, 28)
    assert padded.shape == (2, 3, 28, 28, 28) and padded.sum() == small.sum()
    assert torch.all(padded[:, :, 2:26, 2:26, 2:26] == 1)
    moved = crop_cubes(x[:, :, :28, :28, :28], 28, torch.tensor([[2, 0, 0]]))  # leaves the patch: zeros
    assert torch.all(moved[:, :, 26:] == 0) and torch.equal(moved[:, :, :26], x[:, :, 2:28, :28, :28])


def test_random_shifts_take_minus_zero_plus_step_and_follow_the_generator():
    shifts = random_shifts(500, 2, torch.Generator().manual_seed(3))
    assert set(shifts.unique().tolist()) == {-2, 0, 2}
    assert torch.equal(shifts, random_shifts(500, 2, torch.Generator().manual_seed(3)))


def test_deepprl_focal_switches_reach_the_loss():
    from prlkit.errors import PrlkitError
    from prlkit.methods.supervised import Recipe, SupervisedTraining
    from prlkit.train.losses import focal_loss

    labels = np.array([1] * 2 + [0] * 8)
    recipe = Recipe(loss="focal", balanced=True)
    released = SupervisedTraining(DeepPRL(DeepPRLConfig(**TINY)), labels, 4, recipe)
    balanced = SupervisedTraining(DeepPRL(DeepPRLConfig(**TINY, focal_alpha="balanced", focal_weighting="class")),
                                  labels, 4, recipe)
    assert (released.focal_alpha, released.focal_weighting) == (0.2, "uniform")
    assert balanced.focal_alpha == pytest.approx(0.8) and balanced.focal_weighting == "class"
    x, y = torch.randn(4, 3, 12, 12, 12), torch.tensor([1, 0, 0, 1])
    torch.manual_seed(0)
    loss = released.loss(x, y)
    with torch.no_grad():
        expected = focal_loss(released.net(x), y.float(), alpha=0.2, weighting="uniform")
    torch.testing.assert_close(loss, expected)
    with pytest.raises(PrlkitError, match="focal_alpha"):
        DeepPRLConfig(focal_alpha=1.5)
    with pytest.raises(PrlkitError, match="focal_weighting: class"):
        DeepPRLConfig(focal_alpha="balanced")
    with pytest.raises(PrlkitError, match="focal_weighting"):
        DeepPRLConfig(focal_weighting="per_class")
