"""Inconsistencies that used to pass silently: each is now one line naming the file (or a layered config)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from prlkit.cli import build_parser, main
from prlkit.commands.common import config_from_args, qsm_unit
from prlkit.config import config_from_dict, get_profile, load_config, save_config
from prlkit.errors import InputFileError
from prlkit.eval.calibration import PriorShift
from prlkit.methods.trained import TrainedModel, load_trained_model
from prlkit.models.frodo import FrodoNet

from conftest import tiny_config


def args_of(*argv: str):
    return build_parser().parse_args(list(argv))


def test_config_file_layers_on_the_command_line_profile(tmp_path):
    partial = tmp_path / "c.yaml"
    partial.write_text("patches:\n  gate_k: 0.8\n")
    config = config_from_args(args_of("train", "ds", "--out", "o", "--profile", "quick", "--config", str(partial)))
    assert config.profile == "quick" and config.patches.size == 24 and config.patches.gate_k == 0.8
    assert config.finetune == get_profile("quick").finetune
    # no --profile: the command's own default (quick for train, paper for validate)
    assert config_from_args(args_of("train", "ds", "--out", "o", "--config", str(partial))).patches.size == 24
    assert config_from_args(args_of("validate", "ds", "--config", str(partial))).patches.size == 64


def test_config_file_naming_another_profile_than_the_command_line_is_refused(tmp_path):
    named = tmp_path / "c.yaml"
    named.write_text("profile: paper\n")
    assert config_from_args(args_of("train", "ds", "--out", "o", "--config", str(named))).profile == "paper"
    with pytest.raises(InputFileError, match=r"c\.yaml: says profile: paper but --profile quick was given"):
        config_from_args(args_of("train", "ds", "--out", "o", "--profile", "quick", "--config", str(named)))


def test_qsm_unit_goes_into_the_config_and_its_file(tmp_path):
    config = config_from_args(args_of("cv", "ds", "--out", "o", "--qsm-unit", "ppb"))
    assert config.qsm_unit == "ppb"
    save_config(config, tmp_path / "config.yaml")
    assert "qsm_unit: ppb" in (tmp_path / "config.yaml").read_text()
    assert config_from_args(args_of("cv", "ds", "--out", "o", "--config", str(tmp_path / "config.yaml"))).qsm_unit \
        == "ppb"
    assert args_of("predict", "--model", "m", "--out", "o").qsm_unit == "ppm"
    assert qsm_unit(args_of("segment", "predict", "ds", "--model", "m", "--out", "o", "--qsm-unit", "ppb")) == "ppb"
    assert qsm_unit(args_of("segment", "train", "ds", "--out", "o", "--config", str(tmp_path / "config.yaml"))) \
        == "ppb"


def test_resume_on_a_missing_folder_is_refused(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    assert main(["train", str(tmp_path), "--out", str(missing), "--resume"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"prlkit: error: {missing}: --resume: no such folder") and len(err.splitlines()) == 1
    assert not missing.exists()


def _saved_model(folder, config_data: dict):
    config = config_from_dict(config_data)
    model = TrainedModel(network="frodo", method="frodo", module=FrodoNet(config.frodo),
                         model_config=dataclasses.asdict(config.frodo),
                         config=config, threshold=0.5, calibrator=PriorShift(0.5, 0.5), training={})
    model.save(folder)
    return folder / "model.json"


def _edit(meta_path, change) -> None:
    meta = json.loads(meta_path.read_text())
    change(meta)
    meta_path.write_text(json.dumps(meta))


def test_model_json_with_another_patch_size_than_the_weights_is_refused(tmp_path):
    meta_path = _saved_model(tmp_path / "model", tiny_config())
    assert json.loads(meta_path.read_text())["trained_patch_size"] == 16
    assert load_trained_model(tmp_path / "model").config.patches.size == 16
    _edit(meta_path, lambda meta: meta["config"]["patches"].update(size=24))
    with pytest.raises(InputFileError, match=rf"{meta_path}: patch size 24 in the config, but the weights were "
                                             r"trained on 16\^3 patches"):
        load_trained_model(tmp_path / "model")


def test_unknown_config_key_in_model_json_names_the_file(tmp_path):
    meta_path = _saved_model(tmp_path / "model", tiny_config())
    _edit(meta_path, lambda meta: meta["config"]["patches"].update(sise=24))
    with pytest.raises(InputFileError, match=rf"{meta_path}: unknown config key patches\.sise"):
        load_trained_model(tmp_path / "model")


def test_load_config_names_an_unknown_profile(tmp_path):
    (tmp_path / "c.yaml").write_text("profile: fast\n")
    with pytest.raises(InputFileError, match=r"c\.yaml: unknown profile 'fast'"):
        load_config(tmp_path / "c.yaml")
