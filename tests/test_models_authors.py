"""prlkit's `paper` network equals the authors' released network (numbers from their code, no code of theirs).

tests/data/frodo_authors_reference.json (a copy of ../shared/reference/) lists their
``MultiModalClassifier(base_filters=16, dropout=0.5)`` parameters in order, a formula for
deterministic weights and inputs, and their eval-mode outputs at 32^3 and 64^3. The state dict is
built from the formula, converted with the code path of ``prlkit convert-checkpoint`` and run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from prlkit.config import get_profile
from prlkit.models.authors import convert_state_dict, network_config
from prlkit.models.frodo import FrodoNet, count_flops
from reference_formula import formula_state, reference_input

REFERENCE = json.loads((Path(__file__).parent / "data" / "frodo_authors_reference.json").read_text())


def authors_state_dict() -> dict[str, torch.Tensor]:
    """Their parameters filled by the reference formula; channel 0 of `reference_input` is their QSM input."""
    return formula_state(REFERENCE["parameters"])


@pytest.fixture(scope="module")
def authors_network() -> FrodoNet:
    state = authors_state_dict()
    net = FrodoNet(network_config(state))
    net.load_state_dict(convert_state_dict(state), strict=True)
    return net.eval()


def test_paper_profile_is_the_authors_network_size():
    net = FrodoNet(get_profile("paper").frodo)
    assert sum(p.numel() for p in net.parameters()) == REFERENCE["total_parameters"] == 2_213_645
    theirs = [tuple(shape) for _, shape in REFERENCE["parameters"]]
    ours = [tuple(p.shape) for p in net.parameters()]
    assert len(ours) == len(theirs) == 96
    assert sorted(int(np.prod(s)) for s in ours) == sorted(int(np.prod(s)) for s in theirs)


@pytest.mark.parametrize("size", [32, 64])
def test_outputs_equal_the_authors_reference(authors_network, size):
    expected = REFERENCE["outputs"][str(size)]
    x = reference_input(size)
    with torch.no_grad():
        out = authors_network.forward_features(x)
        z_q, z_f = authors_network.encode_modalities(x)
    np.testing.assert_allclose(out.logit.numpy(), expected["logits"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(out.embedding.norm(dim=1).numpy(), expected["head_hidden_embedding_norm"], rtol=1e-4)
    np.testing.assert_allclose(out.embedding[:, :8].numpy(), expected["head_hidden_embedding_first8"], atol=1e-5)
    np.testing.assert_allclose(z_q.norm(dim=1).numpy(), expected["encode_qsm_norm"], rtol=1e-4)
    np.testing.assert_allclose(z_f.norm(dim=1).numpy(), expected["encode_flair_norm"], rtol=1e-4)
    np.testing.assert_allclose(z_q[:, :8].numpy(), expected["encode_qsm_first8"], atol=1e-5)
    np.testing.assert_allclose(z_f[:, :8].numpy(), expected["encode_flair_first8"], atol=1e-5)


def test_flops_per_64_cube_lesion_match_the_reference():
    with torch.device("meta"):  # shapes only: no arithmetic is done
        net = FrodoNet(get_profile("paper").frodo)
    gflop = count_flops(net, (1, 2, 64, 64, 64)) / 1e9
    assert gflop == pytest.approx(REFERENCE["forward_gflop_per_lesion_64"], rel=0.01)
