"""`pretrain.weights`: fine-tuning starts from a whole saved frodo network (every layer) and moves it;
weights of a network with other settings are a one-line error naming the file."""

from __future__ import annotations

import pytest
import torch
import yaml
from safetensors.torch import load_file

from prlkit.cli import main

from conftest import tiny_config, write_toy_rim_cohort


def _train(tmp_path, dataset, name: str, **sections) -> dict[str, torch.Tensor]:
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(tiny_config(**sections)))
    status = main(["train", str(dataset), "--out", str(tmp_path / name), "--config", str(tmp_path / f"{name}.yaml"),
                   "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert status == 0
    return load_file(str(tmp_path / name / "model.safetensors"))


def _trainable(state: dict[str, torch.Tensor]) -> list[str]:
    return [key for key in state if "running_" not in key and "num_batches" not in key]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny frodo model trained for one epoch: the weights the other runs start from."""
    tmp_path = tmp_path_factory.mktemp("source")
    dataset = write_toy_rim_cohort(tmp_path / "bids", n_participants=4)
    weights = _train(tmp_path, dataset, "source", pretrain={"kind": "none"}, finetune={"max_epochs": 1})
    return dataset, tmp_path / "source" / "model.safetensors", weights


@pytest.mark.parametrize("learning_rate, moves", [(1e-12, False), (1e-2, True)])
def test_fine_tuning_starts_from_every_layer_of_the_given_network(source, tmp_path, learning_rate, moves):
    dataset, path, start = source
    tuned = _train(tmp_path, dataset, "tuned", pretrain={"weights": str(path)},
                   finetune={"max_epochs": 1, "learning_rate": learning_rate, "weight_decay": 0.0})
    changed = [key for key in _trainable(start) if not torch.allclose(tuned[key], start[key], atol=1e-6)]
    assert bool(changed) is moves
    if moves:  # the head and both encoders learn
        assert {key.split(".")[0] for key in changed} >= {"qsm_encoder", "flair_encoder", "head"}


def test_weights_of_another_network_are_one_line_naming_the_file(source, tmp_path, capsys):
    dataset, path, _ = source
    config = tiny_config(frodo={"base_width": 8}, pretrain={"weights": str(path)})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    status = main(["train", str(dataset), "--out", str(tmp_path / "m"), "--config", str(tmp_path / "c.yaml"),
                   "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    error = capsys.readouterr().err.strip()
    assert status != 0 and str(path) in error and "other frodo settings" in error and "\n" not in error
    assert not (tmp_path / "m" / "model.safetensors").exists()
