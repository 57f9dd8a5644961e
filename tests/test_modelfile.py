"""Model files: safetensors + JSON, strict validation, no code execution on load."""

import json

import pytest
import torch

from prlkit.errors import InputFileError
from prlkit.modelfile import load_weights, read_model, save_model

META = {"method": "toy", "model_config": {"width": 3}, "config": {}, "threshold": 0.4, "training": {"n": 10}}


def test_round_trip(tmp_path):
    module = torch.nn.Linear(3, 1)
    save_model(tmp_path / "m", module, META)
    meta, tensors = read_model(tmp_path / "m")
    assert meta["method"] == "toy" and meta["format"] == 1 and "prlkit_version" in meta
    clone = torch.nn.Linear(3, 1)
    load_weights(clone, tensors, tmp_path / "m" / "model.safetensors")
    x = torch.randn(4, 3)
    assert torch.equal(clone(x), module(x))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.pop("threshold"), "lacks 'threshold'"),
        (lambda m: m.update(threshold="0.5"), "'threshold' must be a float"),
        (lambda m: m.update(threshold=1.5), "outside"),
        (lambda m: m.update(format=99), "format 99 is not supported"),
    ],
)
def test_bad_metadata_is_rejected(tmp_path, change, message):
    save_model(tmp_path, torch.nn.Linear(3, 1), META)
    meta = json.loads((tmp_path / "model.json").read_text())
    change(meta)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(InputFileError, match=rf"model\.json: .*{message}"):
        read_model(tmp_path)


def test_pickle_in_place_of_weights_is_refused(tmp_path):
    save_model(tmp_path, torch.nn.Linear(3, 1), META)
    torch.save({"weight": torch.zeros(1, 3)}, tmp_path / "model.safetensors")  # a pickle archive
    with pytest.raises(InputFileError, match=r"model\.safetensors: not a readable safetensors"):
        read_model(tmp_path)


def test_weights_must_fit_the_model(tmp_path):
    save_model(tmp_path, torch.nn.Linear(3, 1), META)
    _, tensors = read_model(tmp_path)
    with pytest.raises(InputFileError, match="weights do not fit"):
        load_weights(torch.nn.Linear(4, 1), tensors, tmp_path / "model.safetensors")


def test_missing_folder(tmp_path):
    with pytest.raises(InputFileError, match="not a prlkit model folder"):
        read_model(tmp_path / "nothing")
