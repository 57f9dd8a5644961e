"""benchmarks/weight_interpolation.py's own code, no training: the network between a fine-tuned model and
its start holds the weighted mean of their tensors, ends included, and the original is left as it was."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import symmetry_averaging
import weight_interpolation
from prlkit.config import FrodoConfig
from prlkit.models.frodo import FrodoNet


def test_interpolation_is_the_weighted_mean_of_both_networks():
    config = FrodoConfig(base_width=4, se_reduction=4, norm="group")
    tuned, start_net = FrodoNet(config, seed=1), FrodoNet(config, seed=2)
    start = start_net.state_dict()
    before = {key: value.clone() for key, value in tuned.state_dict().items()}
    for alpha in (0.0, 0.3, 1.0):
        mixed = weight_interpolation.interpolated(tuned, start, alpha).state_dict()
        for key, value in mixed.items():
            torch.testing.assert_close(value, (1 - alpha) * before[key] + alpha * start[key])
    assert any(not torch.equal(before[key], start[key]) for key in before)  # the two networks differ
    for key, value in tuned.state_dict().items():
        assert torch.equal(value, before[key])  # the fine-tuned network itself is unchanged


def test_a_model_argument_without_a_model_folder_is_a_usage_error(tmp_path, capsys):
    parser = symmetry_averaging.model_parser("rescore")
    with pytest.raises(SystemExit):
        parser.parse_args(["--models", f"s0={tmp_path}", "--test", str(tmp_path)])
    assert "expected NAME=MODEL_FOLDER with a model.json" in capsys.readouterr().err
    (tmp_path / "model.json").write_text("{}")
    assert parser.parse_args(["--models", f"s0={tmp_path}", "--test", "x"]).models == [("s0", tmp_path)]
