"""Tests for the frodo two-stream network, its config profiles, weight transfer and FLOP counter."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from prlkit.config import FrodoConfig, get_profile
from prlkit.errors import PrlkitError
from prlkit.models.frodo import (
    CrossModalPredictor,
    Encoder,
    FrodoEnsemble,
    FrodoNet,
    SymmetryAveraged,
    build_frodo,
    count_flops,
    inference_model,
)
from prlkit.train.augment import apply_symmetry, named_symmetries
from prlkit.train.losses import CompositeLoss

TINY = FrodoConfig(base_width=2, se_reduction=4, dropout=0.0)  # widths 2/4/8/16, head hidden 32


def _patches(batch: int, size: int, channels: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", [24, 32])
def test_output_shapes(size):
    model = FrodoNet(TINY, seed=0)
    x = _patches(3, size)
    assert model(x).shape == (3,)
    out = model.forward_features(x)
    assert out.logit.shape == (3,) and out.embedding.shape == (3, model.embedding_dim) == (3, 32)
    z_q, z_f = model.encode_modalities(x)
    assert z_q.shape == z_f.shape == (3, model.encoder_dim) == (3, 4)


def test_stem_stride_changes_resolution_not_output_shape():
    model = FrodoNet(FrodoConfig(base_width=2, stem_stride=2), seed=0)
    x = _patches(2, 24)
    assert model.qsm_encoder(x[:, :1]).shape == (2, 4, 6, 6, 6)
    assert FrodoNet(TINY, seed=0).qsm_encoder(x[:, :1]).shape == (2, 4, 12, 12, 12)
    assert model.deep(torch.zeros(2, 4, 6, 6, 6)).shape == (2, 16, 2, 2, 2)  # two stride-2 stages
    assert model(x).shape == (2,)


def test_gating_mask_channel_is_ignored_and_modalities_are_routed():
    model = FrodoNet(TINY, seed=0).eval()
    x = _patches(2, 16, channels=3)
    y = x.clone()
    y[:, 2] = torch.rand_like(y[:, 2])
    torch.testing.assert_close(model(x), model(y))
    torch.testing.assert_close(model(x), model(x[:, :2]))
    z_q, z_f = model.encode_modalities(x)
    torch.testing.assert_close(z_q, model.pool(model.qsm_encoder(x[:, :1])))
    torch.testing.assert_close(z_f, model.pool(model.flair_encoder(x[:, 1:2])))


def test_supcon_embedding_is_the_heads_hidden_vector():
    """The authors' head: Linear(C, max(32, C // 2)) -> ReLU -> Dropout -> Linear; SupCon reads the hidden vector."""
    model = FrodoNet(TINY, seed=0).eval()
    x = _patches(2, 16)
    out = model.forward_features(x)
    torch.testing.assert_close(out.logit, model.head.out(out.embedding).squeeze(1))
    torch.testing.assert_close(out.logit, model(x))
    pooled = model.pool(model.deep(model.film(model.qsm_encoder(x[:, :1]), model.flair_encoder(x[:, 1:2]))))
    torch.testing.assert_close(out.embedding, torch.relu(model.head.hidden[0](pooled)))
    assert FrodoNet(FrodoConfig(base_width=16)).head.hidden_dim == 64 and model.head.hidden_dim == 32


def test_dropout_acts_on_the_embedding_in_training_only():
    model = FrodoNet(FrodoConfig(base_width=2), seed=0)  # dropout 0.5, the authors' train.py
    assert model.head.hidden[2].p == 0.5
    x = _patches(4, 16)
    torch.manual_seed(0)
    trained = model.train().forward_features(x).embedding
    evaluated = model.eval().forward_features(x).embedding
    assert (trained == 0).sum() > (evaluated == 0).sum()


@pytest.mark.parametrize("shape", [(2, 1, 24, 24, 24), (2, 24, 24, 24)])
def test_bad_input_shape_is_a_user_error(shape):
    with pytest.raises(PrlkitError, match="B, C>=2"):
        FrodoNet(TINY, seed=0)(torch.zeros(shape))


def test_gradients_reach_both_encoders_and_film():
    model = FrodoNet(TINY, seed=0)
    model(_patches(2, 16)).sum().backward()
    for name in ("qsm_encoder", "flair_encoder", "film", "deep", "head"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name
    assert float(model.flair_encoder[0].weight.grad.abs().sum()) > 0
    assert float(model.film.gamma.weight.grad.abs().sum()) > 0


def test_seed_gives_identical_init_and_output_without_touching_global_rng():
    before = torch.random.get_rng_state()
    a, b, c = FrodoNet(TINY, seed=3), FrodoNet(TINY, seed=3), FrodoNet(TINY, seed=4)
    assert torch.equal(before, torch.random.get_rng_state())
    for (key, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(ta, tb), key
    x = _patches(2, 16)
    assert torch.equal(a.eval()(x), b.eval()(x))
    assert not torch.equal(a.qsm_encoder[0].weight, c.qsm_encoder[0].weight)


def test_channels_last_3d_gives_same_output():
    model = FrodoNet(TINY, seed=0).eval()
    x = _patches(2, 16)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(model(x.contiguous(memory_format=torch.channels_last_3d)), expected)


def test_encoder_parameter_count_matches_architecture():
    w1, w2 = 4, 8
    stem = 27 * w1
    same_block = lambda w: 2 * (2 * w) + 2 * 27 * w * w  # noqa: E731  two GroupNorms (affine) + two 3^3 convs
    down_block = 2 * w1 + 27 * w1 * w2 + 2 * w2 + 27 * w2 * w2 + w1 * w2  # + 1x1x1 skip conv
    expected = stem + 2 * same_block(w1) + down_block + same_block(w2)
    assert sum(p.numel() for p in Encoder(w1, w2).parameters()) == expected


def test_profile_parameter_counts_reported():
    counts = {name: sum(p.numel() for p in FrodoNet(get_profile(name).frodo).parameters())
              for name in ("paper", "quick")}
    print(f"frodo parameter counts: {counts}")
    assert counts["paper"] == 2_213_645  # the authors' network (tests/test_models_authors.py)
    assert counts["quick"] < counts["paper"] / 3


def test_pretrained_transfer_copies_exactly_the_encoders():
    source, target = FrodoNet(TINY, seed=1), FrodoNet(TINY, seed=2)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    state = source.pretrained_state_dict()
    encoder_keys = {k for k in before if k.startswith(("qsm_encoder.", "flair_encoder."))}
    assert set(state) == encoder_keys and len(encoder_keys) > 0
    assert sum(state[k].numel() for k in state) == sum(
        p.numel() for m in (source.qsm_encoder, source.flair_encoder) for p in m.parameters()
    )
    target.load_pretrained_state_dict(state)
    for key, value in target.state_dict().items():
        expected = source.state_dict()[key] if key in encoder_keys else before[key]
        assert torch.equal(value, expected), key
    assert any(not torch.equal(before[k], state[k]) for k in encoder_keys)


def test_pretrained_transfer_rejects_mismatched_weights():
    target = FrodoNet(TINY, seed=0)
    state = FrodoNet(TINY, seed=1).pretrained_state_dict()
    with pytest.raises(PrlkitError, match="missing"):
        target.load_pretrained_state_dict({k: v for k, v in state.items() if "flair" not in k})
    with pytest.raises(PrlkitError, match="unexpected"):
        target.load_pretrained_state_dict({**state, "film.gamma.weight": target.film.gamma.weight})
    wider = FrodoNet(FrodoConfig(base_width=3), seed=1).pretrained_state_dict()
    with pytest.raises(PrlkitError, match="shape"):
        target.load_pretrained_state_dict(wider)


def test_cross_modal_predictor_maps_flair_to_qsm_space():
    g = CrossModalPredictor(8, hidden=16, seed=0)
    assert g(torch.zeros(3, 8)).shape == (3, 8)
    assert torch.equal(g.net[0].weight, CrossModalPredictor(8, hidden=16, seed=0).net[0].weight)
    assert g.net[0].out_features == 16


def test_count_flops_conv_formula_and_restores_mode():
    conv = nn.Conv3d(1, 2, 3, padding=1)
    assert count_flops(conv, (1, 1, 4, 4, 4)) == 2 * 27 * 1 * 2 * 4**3
    model = FrodoNet(TINY, seed=0).train()
    flops_32, flops_64 = count_flops(model, (1, 2, 32, 32, 32)), count_flops(model, (1, 2, 64, 64, 64))
    assert model.training
    assert flops_64 == pytest.approx(8 * flops_32, rel=0.01)  # conv cost scales with the voxel count


def test_config_validation():
    for bad in ({"base_width": 0}, {"base_width": 2.5}, {"stem_stride": 3}, {"dropout": 1.0}, {"se_reduction": 0},
                {"norm": "layer"}):
        with pytest.raises(PrlkitError):
            FrodoConfig(**bad)


def test_tiny_net_fits_a_fixed_batch_with_the_composite_loss():
    """End-to-end trainability: a few AdamW steps on 8 patches (bright shell = Rim+) cut the loss."""
    size = 12
    grid = torch.stack(torch.meshgrid(*[torch.arange(size) - size / 2 + 0.5] * 3, indexing="ij")).norm(dim=0)
    shell = ((grid > 3) & (grid < 4.5)).float()
    labels = torch.tensor([1.0, 0.0] * 4)
    x = 0.1 * _patches(8, size)
    x[:, 0] += labels[:, None, None, None] * shell
    x[:, 1] += (grid < 4.5).float()
    model = FrodoNet(TINY, seed=0)
    criterion = CompositeLoss()
    optimiser = torch.optim.AdamW(list(model.parameters()) + list(criterion.parameters()), lr=3e-3)
    losses = []
    for _ in range(25):
        optimiser.zero_grad()
        out = model.forward_features(x)
        loss = criterion(out.logit, out.embedding, labels).total
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(("norm", "layer", "other"), [("group", torch.nn.GroupNorm, torch.nn.BatchNorm3d),
                                                      ("batch", torch.nn.BatchNorm3d, torch.nn.GroupNorm)])
def test_norm_switch_sets_every_normalisation_layer(norm, layer, other):
    model = FrodoNet(dataclasses.replace(TINY, norm=norm), seed=0)
    kinds = [type(m) for m in model.modules() if isinstance(m, (torch.nn.GroupNorm, torch.nn.BatchNorm3d))]
    assert len(kinds) == 2 * 4 * 2 + 2 * 2 * 2 and set(kinds) == {layer} and other not in kinds


def test_profiles_normalisation():
    """`paper` keeps the paper's GroupNorm; `quick` uses BatchNorm (learns from few Rim+ lesions)."""
    assert get_profile("paper").frodo.norm == "group" and get_profile("quick").frodo.norm == "batch"


def test_seed_ensemble_averages_its_members_logits():
    config = dataclasses.replace(TINY, seeds=3)
    ensemble = build_frodo(config).eval()
    assert isinstance(ensemble, FrodoEnsemble) and len(ensemble.members) == 3
    assert isinstance(build_frodo(TINY), FrodoNet)
    x = _patches(2, 16)
    torch.testing.assert_close(ensemble(x), torch.stack([m(x) for m in ensemble.members]).mean(dim=0))
    fast = inference_model(ensemble)
    assert isinstance(fast, FrodoEnsemble) and fast is not ensemble
    torch.testing.assert_close(fast(x), ensemble(x), rtol=0, atol=1e-5)
    with pytest.raises(PrlkitError, match="seeds"):
        FrodoConfig(seeds=0)


@pytest.mark.parametrize("symmetries, count", [("flips", 8), ("cube", 48)])
def test_test_time_symmetries_average_the_logits_and_make_the_score_invariant(symmetries, count):
    config = dataclasses.replace(TINY, test_time_symmetries=symmetries)
    net = build_frodo(config).eval()
    assert isinstance(net, SymmetryAveraged) and isinstance(net.net, FrodoNet)
    x = _patches(2, 16)
    group = named_symmetries(symmetries, (16, 16, 16))
    assert len(group) == count
    with torch.no_grad():
        torch.testing.assert_close(net(x), torch.stack([net.net(apply_symmetry(x, s)) for s in group]).mean(0))
        plain = net.net(x)
        for s in group[1:]:  # a mirrored patch gets the same averaged score (the set is a group)
            torch.testing.assert_close(net(apply_symmetry(x, s)), net(x), rtol=0, atol=1e-5)
        assert not torch.allclose(net(x), plain, atol=1e-5)  # the plain network is not symmetric
    fast = inference_model(net)
    assert isinstance(fast, SymmetryAveraged) and fast.net is not net.net
    torch.testing.assert_close(fast(x), net(x), rtol=0, atol=1e-5)
    assert isinstance(build_frodo(TINY), FrodoNet)  # the authors' network: no averaging
    with pytest.raises(PrlkitError, match="test_time_symmetries"):
        FrodoConfig(test_time_symmetries="rotations")
