"""Tests for the 3D building blocks: residual block, SE (MONAI), spatial FiLM."""

from __future__ import annotations

import torch
from torch import nn

from prlkit.models.blocks import ResidualBlock3D, SpatialFiLM, group_norm, squeeze_excite


def _seeded_randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_group_norm_uses_the_largest_of_16_8_4_2_1_dividing_groups():
    """The authors' rule, e.g. 16 groups for their widths 16-128, 8 for 24, 4 for 12, 1 for 7."""
    assert [group_norm(c).num_groups for c in (16, 32, 128, 24, 12, 6, 7)] == [16, 16, 16, 8, 4, 2, 1]


def test_residual_block_shapes_and_skip_kind():
    x = _seeded_randn(2, 4, 8, 8, 8)
    same = ResidualBlock3D(4, 4)
    assert isinstance(same.skip, nn.Identity)
    assert same(x).shape == (2, 4, 8, 8, 8)
    down = ResidualBlock3D(4, 6, stride=2)
    assert isinstance(down.skip, nn.Conv3d) and down.skip.kernel_size == (1, 1, 1) and down.skip.stride == (2, 2, 2)
    assert down(x).shape == (2, 6, 4, 4, 4)
    assert isinstance(ResidualBlock3D(4, 6).skip, nn.Conv3d)


def test_residual_block_is_preactivation_formula():
    torch.manual_seed(0)
    block = ResidualBlock3D(4, 4)
    x = _seeded_randn(1, 4, 5, 5, 5)
    h = block.conv1(torch.relu(block.norm1(x)))
    expected = block.conv2(torch.relu(block.norm2(h))) + x
    torch.testing.assert_close(block(x), expected)


def test_se_block_matches_explicit_squeeze_excitation():
    """MONAI's ChannelSELayer = GAP -> bottleneck (C//r, with bias) -> ReLU -> expand -> sigmoid -> channel scaling."""
    torch.manual_seed(0)
    se = squeeze_excite(64, 16)
    fc1, fc2 = se.fc[0], se.fc[2]
    assert (fc1.in_features, fc1.out_features, fc2.out_features) == (64, 4, 64)
    assert fc1.bias is not None and fc2.bias is not None
    x = _seeded_randn(2, 64, 4, 4, 4)
    scale = torch.sigmoid(fc2(torch.relu(fc1(x.mean(dim=(2, 3, 4))))))
    torch.testing.assert_close(se(x), x * scale[:, :, None, None, None])


def test_se_bottleneck_is_at_least_one_unit():
    """max(1, C // 16), the authors' rule, also for narrow test widths."""
    assert [squeeze_excite(c).fc[0].out_features for c in (2, 8, 16, 24, 128)] == [1, 1, 1, 1, 8]
    assert squeeze_excite(2)(_seeded_randn(1, 2, 4, 4, 4)).shape == (1, 2, 4, 4, 4)


def test_film_starts_as_identity_modulation():
    film = SpatialFiLM(3)
    q, f = _seeded_randn(2, 3, 4, 4, 4, seed=1), _seeded_randn(2, 3, 4, 4, 4, seed=2)
    torch.testing.assert_close(film.modulate(q, f), q)


def test_film_formula_with_set_weights():
    """Q' = Q * (1 + gamma(F)) + beta(F), gamma/beta 1x1x1 convs; mix = 1x1x1 conv of [Q', F]."""
    film = SpatialFiLM(2)
    with torch.no_grad():
        film.gamma.weight.copy_(torch.tensor([[1.0, 0.0], [0.5, -1.0]]).view(2, 2, 1, 1, 1))
        film.gamma.bias.copy_(torch.tensor([0.0, 0.25]))
        film.beta.weight.copy_(torch.tensor([[0.0, 2.0], [0.0, 0.0]]).view(2, 2, 1, 1, 1))
        film.beta.bias.copy_(torch.tensor([1.0, -1.0]))
        film.mix.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]]).view(2, 4, 1, 1, 1))
        film.mix.bias.zero_()
    q = torch.tensor([2.0, 3.0]).view(1, 2, 1, 1, 1)
    f = torch.tensor([1.0, 4.0]).view(1, 2, 1, 1, 1)
    # gamma = [1*1 + 0*4 + 0, 0.5*1 - 1*4 + 0.25] = [1, -3.25]; beta = [2*4 + 1, -1] = [9, -1]
    # Q' = [2*(1+1) + 9, 3*(1-3.25) - 1] = [13, -7.75]
    expected_q = torch.tensor([13.0, -7.75]).view(1, 2, 1, 1, 1)
    torch.testing.assert_close(film.modulate(q, f), expected_q)
    # mix rows: out0 = Q'0 = 13, out1 = Q'1 + F0 = -7.75 + 1 = -6.75
    torch.testing.assert_close(film(q, f), torch.tensor([13.0, -6.75]).view(1, 2, 1, 1, 1))


def test_film_modulation_is_spatially_varying():
    film = SpatialFiLM(1)
    with torch.no_grad():
        film.gamma.weight.fill_(1.0)
    q = torch.ones(1, 1, 2, 1, 1)
    f = torch.tensor([0.0, 3.0]).view(1, 1, 2, 1, 1)
    torch.testing.assert_close(film.modulate(q, f).flatten(), torch.tensor([1.0, 4.0]))
