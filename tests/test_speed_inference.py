"""Speed work must not change results: the fast inference copy predicts what the trained network does,
the in-place residual block trains exactly like the plain formula, and `prlkit predict` reads each
session once while bad input still leaves no output."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from prlkit import predict as predict_module
from prlkit.config import FrodoConfig, config_from_dict, get_profile
from prlkit.data.bids import discover_cohort
from prlkit.data.session import load_session
from prlkit.eval.calibration import PriorShift
from prlkit.methods.trained import TrainedModel, load_trained_model
from prlkit.models.blocks import ResidualBlock3D
from prlkit.models.frodo import FrodoNet, inference_model
from prlkit.predict import PredictedSession, load_ensemble, predict_sessions

from conftest import tiny_config, write_toy_rim_cohort

QUICK_WIDTHS = get_profile("quick").frodo


def varied_patches(n: int, size: int, seed: int = 1) -> torch.Tensor:
    """Random patches with a per-patch level and contrast, so that pooled features differ between patches
    (iid noise alone pools to nearly the same embedding, and the test would only compare rounding noise)."""
    generator = torch.Generator().manual_seed(seed)
    level, contrast = torch.randn(n, 3, 1, 1, 1, generator=generator), torch.rand(n, 3, 1, 1, 1, generator=generator)
    return level + (0.2 + 2 * contrast) * torch.randn(n, 3, size, size, size, generator=generator)


def randomised(config: FrodoConfig, x: torch.Tensor, seed: int = 0) -> FrodoNet:
    """An eval-mode network with non-trivial BatchNorm statistics, FiLM and biases, whose logits on
    patches `x` are rescaled to mean 0, SD 2 (so probabilities spread between 0 and 1)."""
    net = FrodoNet(config, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.normal_(0.0, 0.5, generator=generator)
                module.running_var.uniform_(0.3, 3.0, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.3, generator=generator)
        for conv in (net.film.gamma, net.film.beta):
            conv.weight.normal_(0.0, 0.1, generator=generator)
        net.eval()
        logits = net(x)
        last, scale = net.head.out, 2.0 / logits.std()
        last.weight.mul_(scale)
        last.bias.sub_(logits.mean()).mul_(scale)
    return net


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_inference_model_gives_the_same_probabilities(norm):
    x = varied_patches(6, 24)
    net = randomised(dataclasses.replace(QUICK_WIDTHS, norm=norm), x)
    fast = inference_model(net)
    with torch.no_grad():
        expected, got = torch.sigmoid(net(x)), torch.sigmoid(fast(x))
    assert expected.std() > 0.1  # the probabilities differ between patches: the check has teeth
    # float32 rounding (channels_last kernels) through 12 residual blocks and SE
    assert (got - expected).abs().max() <= 2e-5
    blocks = [m for m in fast.modules() if isinstance(m, ResidualBlock3D)]
    folded = [isinstance(b.norm2, torch.nn.Identity) for b in blocks]
    assert all(folded) if norm == "batch" else not any(folded)
    assert fast.qsm_encoder[0].weight.is_contiguous(memory_format=torch.channels_last_3d)


def test_inference_model_leaves_the_trained_network_untouched():
    net = randomised(QUICK_WIDTHS, varied_patches(2, 24))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    inference_model(net)
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(isinstance(b.norm2, torch.nn.BatchNorm3d) for b in net.modules() if isinstance(b, ResidualBlock3D))
    FrodoNet(QUICK_WIDTHS).load_state_dict(after)  # the saved format is unchanged


def test_folding_batch_norm_needs_eval_mode():
    block = ResidualBlock3D(4, 4, norm="batch")
    with pytest.raises(RuntimeError, match="eval mode"):
        block.fold_batch_norm()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A toy cohort and a saved (untrained, randomised) tiny frodo model."""
    root = tmp_path_factory.mktemp("speed")
    dataset = write_toy_rim_cohort(root / "bids", n_participants=3)
    config = config_from_dict(tiny_config())
    TrainedModel(network="frodo", method="frodo", module=randomised(config.frodo, varied_patches(8, 16)),
                 model_config=dataclasses.asdict(config.frodo), config=config, threshold=0.5,
                 calibrator=PriorShift(0.5, 0.2), training={}).save(root / "model")
    return dataset, root / "model"


def test_ensemble_probabilities_match_the_saved_model(saved):
    _, model = saved
    plain, ensemble = load_trained_model(model), load_ensemble(model)
    assert isinstance(ensemble.models[0].module.qsm_encoder[1].norm2, torch.nn.Identity)
    patches = varied_patches(8, 16, seed=2).numpy()
    expected = plain.probabilities(patches, torch.device("cpu"))
    got = ensemble.probabilities(patches, torch.device("cpu"))
    assert np.ptp(expected) > 0.01
    assert np.abs(got - expected).max() <= 2e-5


def test_predict_reads_each_session_once_and_keeps_only_lesion_voxels(saved, tmp_path, monkeypatch):
    dataset, model = saved
    sessions = discover_cohort(dataset).sessions
    calls = []

    def counting(files, config):
        calls.append(files.name)
        return load_session(files, config)

    monkeypatch.setattr(predict_module, "load_session", counting)
    subjects = predict_sessions(sessions, load_ensemble(model), tmp_path, torch.device("cpu"), progress=False)
    assert sorted(calls) == sorted(files.name for files in sessions)
    assert len(subjects) == len(sessions)
    data = load_session(sessions[0], config_from_dict(tiny_config()).lesions)
    kept = PredictedSession.of(data, data.lesions)
    assert np.array_equal(kept.instances, data.instances) and kept.instances.dtype == data.instances.dtype
    assert kept.voxels.size == np.count_nonzero(data.instances)


def test_bad_last_session_still_leaves_no_output(saved, tmp_path):
    dataset, model = saved
    sessions = discover_cohort(dataset).sessions
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not nifti")
    bad = dataclasses.replace(sessions[-1], flair=broken)
    with pytest.raises(predict_module.InputFileError, match=r"broken\.nii\.gz"):
        predict_sessions([*sessions[:-1], bad], load_ensemble(model), tmp_path / "out", torch.device("cpu"),
                         progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_in_place_block_trains_like_the_out_of_place_formula(norm):
    block = ResidualBlock3D(4, 8, stride=2, norm=norm).train()
    twin = copy.deepcopy(block)
    x = torch.randn(3, 4, 6, 6, 6, generator=torch.Generator().manual_seed(0))
    x_block, x_twin = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = block(x_block)
    residual = twin.conv2(torch.relu(twin.norm2(twin.conv1(torch.relu(twin.norm1(x_twin))))))
    expected = residual + twin.skip(x_twin)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(x_block.grad, x_twin.grad, rtol=0, atol=0)
    for (name, p), q in zip(block.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0, msg=name)
