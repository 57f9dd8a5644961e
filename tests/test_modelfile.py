"""Model files: safetensors + JSON, strict validation, no code execution on load."""

import json
import os

import pytest
import torch
from safetensors import SafetensorError

import prlkit
from prlkit import modelfile
from prlkit.errors import InputFileError
from prlkit.modelfile import load_weights, read_model, save_model

META = {"method": "toy", "model_config": {"width": 3}, "config": {}, "threshold": 0.4, "training": {"n": 10}}


def test_round_trip(tmp_path):
    module = torch.nn.Linear(3, 1)
    save_model(tmp_path / "m", module, META)
    meta, tensors = read_model(tmp_path / "m")
    assert meta["method"] == "toy" and meta["format"] == 1 and meta["prlkit_version"] == prlkit.__version__
    assert meta["software"]["prlkit"] == prlkit.__version__ and meta["software"]["torch"] == torch.__version__
    assert {"python", "monai", "scikit-learn", "numpy"} <= set(meta["software"])
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


def test_a_model_file_without_software_versions_still_loads(tmp_path):
    save_model(tmp_path, torch.nn.Linear(3, 1), META)
    meta = json.loads((tmp_path / "model.json").read_text())
    del meta["software"]  # written before prlkit recorded them
    (tmp_path / "model.json").write_text(json.dumps(meta))
    assert read_model(tmp_path)[0]["threshold"] == META["threshold"]


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


@pytest.mark.parametrize(
    "calibration, message",
    [
        ({"method": "isotonic"}, "unknown calibration method 'isotonic'"),
        ({"method": "temperature", "temperature": 1.5, "bias": 0.1}, "takes exactly the parameters temperature"),
        ({"method": "prior", "train_prior": 0.5}, "takes exactly the parameters target_prior, train_prior"),
        ({"method": "temperature", "temperature": "hot"}, "'temperature' must be a number"),
        (["prior"], "must be a JSON object"),
    ],
)
def test_bad_calibration_is_one_error_naming_the_file(tmp_path, calibration, message):
    save_model(tmp_path, torch.nn.Linear(3, 1), META | {"calibration": {"method": "temperature", "temperature": 2.0}})
    read_model(tmp_path)  # the saved one is fine
    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps(meta | {"calibration": calibration}))
    with pytest.raises(InputFileError, match=rf"model\.json: .*{message}"):
        read_model(tmp_path)


def test_weights_get_the_umask_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        save_model(tmp_path, torch.nn.Linear(3, 1), META)
    finally:
        os.umask(mask)
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {"model.safetensors": 0o644,
                                                                                "model.json": 0o644}


def test_full_disk_while_writing_weights_names_the_file(tmp_path, monkeypatch):
    def full(tensors, filename):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(modelfile, "save_file", full)
    with pytest.raises(OSError) as error:
        save_model(tmp_path, torch.nn.Linear(3, 1), META)
    assert (error.value.errno, error.value.strerror) == (28, "No space left on device")
    assert error.value.filename == str(tmp_path / "model.safetensors")
    assert list(tmp_path.iterdir()) == []
