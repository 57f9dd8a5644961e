"""RimNet and Deep-PRL equal the released networks after weight transfer; RimNet's TF topology has its size.

tests/data/{rimnet_torch_port,deepprl_binary}_reference.json (copies of ../shared/reference/) list the
released networks' state tensors in order, a formula that fills them, and their eval-mode outputs on
formula inputs (numbers from their code, no code of theirs). prlkit's networks hold the same tensors in
the same order, except the last Linear: their two outputs become one logit z1 - z0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from prlkit.models.baselines.deepprl import DeepPRL
from prlkit.models.baselines.rimnet import RimNet, RimNetConfig, pooled_voxels
from reference_formula import formula_state, reference_input

DATA = Path(__file__).parent / "data"


def released_into(net: nn.Module, reference: dict) -> nn.Module:
    """`net` in eval mode holding the released state (by position); the 2-class output layer as z1 - z0."""
    released = list(formula_state(reference["state"]).values())
    ours = net.state_dict()
    assert len(ours) == len(released)
    state = {}
    for (name, tensor), theirs in zip(ours.items(), released):
        if tensor.shape != theirs.shape:  # the output layer: (2, ...) -> (1, ...)
            state[name] = (theirs[1] - theirs[0]).reshape(tensor.shape)
        else:
            state[name] = theirs
    net.load_state_dict(state, strict=True)
    return net.eval()


@pytest.mark.parametrize(("network", "file", "order"), [
    (RimNet, "rimnet_torch_port_reference.json", [1, 0]),  # theirs: [FLAIR, QSM]
    (DeepPRL, "deepprl_binary_reference.json", [2, 1, 0]),  # theirs: [mask, FLAIR, QSM]
])
def test_default_network_equals_the_released_one(network, file, order):
    reference = json.loads((DATA / file).read_text())
    net = released_into(network(), reference)
    their_extra_output = net.head[-1].in_features + 1  # the second output row of their last Linear
    assert sum(p.numel() for p in net.parameters()) + their_extra_output == reference["total_parameters"]
    theirs = reference_input(28, channels=len(order))
    with torch.no_grad():
        logits = net(theirs[:, order])  # prlkit's channel order [QSM, FLAIR, mask]
    np.testing.assert_allclose(logits.numpy(), reference["binary_logit"], rtol=0, atol=1e-5)
    expected = np.diff(np.asarray(reference["two_class_logits"]), axis=1)[:, 0]
    np.testing.assert_allclose(logits.numpy(), expected, rtol=0, atol=1e-5)


def test_tanh_head_is_not_the_released_network():
    reference = json.loads((DATA / "rimnet_torch_port_reference.json").read_text())
    net = released_into(RimNet(RimNetConfig(fc_tanh=True)), reference)
    with torch.no_grad():
        logits = net(reference_input(28)[:, [1, 0]])
    assert np.abs(logits.numpy() - reference["binary_logit"]).max() > 1e-3


def test_tf_topology_size():
    # Pools of stride 1 keep 28^3 maps: the first Linear takes 2 x 28^3 = 43,904 inputs. No BatchNorm.
    # FLAIR branch: 896 + 27,680 (block 1) + 55,360 + 110,656 (block 2) + 221,312 + 442,496 (block 3) + 129 = 858,529;
    # QSM branch: block 2 takes 64 channels, 110,656 instead of 55,360: 913,825.
    # Head: 43,904 * 256 + 256 = 11,239,680; + 32,896 + 8,256 + 65 = 11,280,897.
    conv = lambda a, b: a * b * 27 + b  # noqa: E731
    flair = conv(1, 32) + conv(32, 32) + conv(32, 64) + conv(64, 64) + conv(64, 128) + conv(128, 128) + 129
    qsm = flair + conv(64, 64) - conv(32, 64)
    head = 43_904 * 256 + 256 + 256 * 128 + 128 + 128 * 64 + 64 + 64 + 1
    assert (flair, qsm, head) == (858_529, 913_825, 11_280_897)
    net = RimNet(RimNetConfig(topology="tf"))
    assert pooled_voxels(28, stride=1) == 28**3 and net.head[0].in_features == 43_904
    assert not any(isinstance(m, nn.BatchNorm3d) for m in net.modules())
    total = sum(p.numel() for p in net.parameters())
    assert total == flair + qsm + head == 13_053_251  # the TF code's 2-class output: 13,053,316, about 13.05 M
    assert total + 65 == pytest.approx(13.05e6, rel=1e-3)
