"""The weights shipped with prlkit (`pretrain.weights: simulated`, method frodo_simpretrained):
they load, their provenance is complete and true, and fine-tuning starts from them and moves them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from prlkit.cli import main
from prlkit.config import get_profile, load_config
from prlkit.errors import PrlkitError
from prlkit.methods.frodo import load_network_weights
from prlkit.methods.registry import method_config
from prlkit.models.frodo import FrodoNet, build_frodo
from prlkit.weights import PRETRAINING_PROFILES, SHIPPED_WEIGHTS, SIMULATED_QUICK, read_provenance, resolve_weights

from conftest import write_toy_rim_cohort


@pytest.mark.parametrize("name", sorted(SHIPPED_WEIGHTS))
@pytest.mark.parametrize("susceptibility", ["qsm", "phase"])
def test_shipped_weights_load_into_the_methods_network_and_say_how_they_were_made(name, susceptibility):
    path = SHIPPED_WEIGHTS[name][susceptibility]
    provenance = read_provenance(path)
    assert provenance["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    generator = provenance["generator"]["command"].split()
    assert generator[generator.index("--synth-profile") + 1] == PRETRAINING_PROFILES[name]
    assert provenance["generator"]["rim_pos"] > 100
    if name == "simulated_anatomy":  # a second stage, from the `simulated` file, on participants drawn on a real brain
        assert "--anatomy" in generator and len(provenance["generator"]["anatomy"]["sha256"]) == 64
        assert "--method frodo_simpretrained " in provenance["training"]["command"]
    assert provenance["prlkit_version"] and "pretrain_simulated.py" in provenance["command"]
    assert provenance["susceptibility"] == provenance["training"]["config"].get("susceptibility", "qsm") \
        == susceptibility
    config = method_config("frodo_simpretrained", get_profile("quick"))
    net = FrodoNet(config.frodo, seed=1)
    load_network_weights(net, resolve_weights(name, config.frodo, susceptibility))
    shipped = load_file(str(path))
    assert set(shipped) == set(net.state_dict())
    for key, value in net.state_dict().items():
        assert torch.equal(value, shipped[key]), key


def test_other_frodo_settings_get_one_line_naming_what_the_weights_need():
    assert method_config("frodo_simpretrained", get_profile("paper")).frodo == \
        method_config("frodo_simpretrained", get_profile("quick")).frodo  # the shipped network in every profile
    with pytest.raises(PrlkitError, match=r"base_width") as error:
        resolve_weights("simulated", get_profile("paper").frodo)
    assert "\n" not in str(error.value)
    with pytest.raises(PrlkitError, match=r"norm"):
        resolve_weights("simulated", dataclasses.replace(get_profile("quick").frodo, norm="batch"))


def test_phase_input_gets_the_phase_weights_or_one_line_saying_why_not(tmp_path, monkeypatch):
    from prlkit import weights

    frodo = method_config("frodo_simpretrained", get_profile("quick")).frodo
    phase = tmp_path / "phase.safetensors"
    monkeypatch.setitem(weights.SIMULATED_QUICK, "phase", phase)
    with pytest.raises(PrlkitError, match=r"phase.safetensors or its JSON is missing"):
        resolve_weights("simulated", frodo, "phase")
    phase.write_bytes(SIMULATED_QUICK["qsm"].read_bytes())
    provenance = read_provenance(SIMULATED_QUICK["qsm"])
    phase.with_suffix(".json").write_text(json.dumps(provenance))
    with pytest.raises(PrlkitError, match=r"trained on qsm input, not phase"):
        resolve_weights("simulated", frodo, "phase")
    phase.with_suffix(".json").write_text(json.dumps({**provenance, "susceptibility": "phase"}))
    assert resolve_weights("simulated", frodo, "phase") == phase
    assert resolve_weights("simulated", frodo) == SIMULATED_QUICK["qsm"]


@pytest.mark.parametrize("weights, learning_rate, moves",
                         [("simulated", 1e-12, False), ("simulated", 1e-3, True), ("simulated_anatomy", 1e-12, False),
                          (None, 1e-12, False)])
def test_fine_tuning_starts_from_the_shipped_weights(tmp_path, weights, learning_rate, moves):
    """None: the method's own start, `simulated_anatomy` since 2026-12-08."""
    dataset = write_toy_rim_cohort(tmp_path / "bids", n_participants=4)
    start = {"pretrain": {"weights": weights}} if weights else {}
    config = {"profile": "quick", "methods": {"frodo_simpretrained": {**start, "finetune": {
        "max_epochs": 1, "learning_rate": learning_rate, "weight_decay": 0.0}}}}
    weights = weights or "simulated_anatomy"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(dataset), "--out", str(tmp_path / "model"), "--method", "frodo_simpretrained",
                 "--config", str(tmp_path / "c.yaml"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    trained = load_file(str(tmp_path / "model" / "model.safetensors"))
    shipped = load_file(str(SHIPPED_WEIGHTS[weights]["qsm"]))
    assert set(trained) == {f"net.{key}" for key in shipped}  # the network inside the symmetry average
    changed = [key for key in shipped if not torch.allclose(trained[f"net.{key}"], shipped[key], atol=1e-6)]
    assert bool(changed) is moves, changed[:5]


def test_the_pair_starts_one_network_from_each_shipped_file(tmp_path):
    """frodo_simpretrained_pair: member k of the two-network average starts from `pretrain.weights[k]`."""
    dataset = write_toy_rim_cohort(tmp_path / "bids", n_participants=4)
    config = {"profile": "quick", "methods": {"frodo_simpretrained_pair": {"finetune": {
        "max_epochs": 1, "learning_rate": 1e-12, "weight_decay": 0.0}}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(dataset), "--out", str(tmp_path / "model"), "--method", "frodo_simpretrained_pair",
                 "--config", str(tmp_path / "c.yaml"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    trained = load_file(str(tmp_path / "model" / "model.safetensors"))
    for k, name in enumerate(["simulated", "simulated_core_balanced"]):
        shipped = load_file(str(SHIPPED_WEIGHTS[name]["qsm"]))
        assert {key for key in trained if key.startswith(f"net.members.{k}.")} == \
            {f"net.members.{k}.{key}" for key in shipped}
        for key, value in shipped.items():
            assert torch.allclose(trained[f"net.members.{k}.{key}"], value, atol=1e-6), (name, key)


def test_a_weights_list_needs_one_file_per_network(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"profile": "quick", "frodo": {"seeds": 3},
                                                     "pretrain": {"weights": ["simulated", "simulated"]}}))
    with pytest.raises(PrlkitError, match=r"lists 2 files for frodo.seeds: 3 networks") as error:
        load_config(tmp_path / "c.yaml")
    assert "\n" not in str(error.value)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"profile": "quick", "methods": {
        "frodo_simpretrained_pair": {"frodo": {"seeds": 3}}}}))
    with pytest.raises(PrlkitError, match=r"lists 2 files for frodo.seeds: 3"):
        method_config("frodo_simpretrained_pair", load_config(tmp_path / "c.yaml"))


def test_the_pairs_own_section_may_name_its_two_starts(tmp_path):
    """A `methods.frodo_simpretrained_pair` section listing two files is checked against the pair's two networks,
    not against the run's single-network default."""
    weights = ["simulated_anatomy", "simulated_core_balanced"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"profile": "quick", "methods": {
        "frodo_simpretrained_pair": {"pretrain": {"weights": weights}}}}))
    config = method_config("frodo_simpretrained_pair", load_config(tmp_path / "c.yaml"))
    assert config.pretrain.weights == tuple(weights) and config.frodo.seeds == 2


def test_a_symmetry_averaged_models_weights_start_another_network(tmp_path):
    """A frodo_simpretrained model folder's weights (saved inside the symmetry average) load as `pretrain.weights`."""
    config = method_config("frodo_simpretrained", get_profile("quick"))
    source = build_frodo(config.frodo)
    save_file(source.state_dict(), str(tmp_path / "model.safetensors"))
    net = FrodoNet(config.frodo, seed=5)
    load_network_weights(net, tmp_path / "model.safetensors")
    for key, value in source.net.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key


def test_the_pretraining_recipe_of_the_shipped_weights_is_a_valid_config(tmp_path):
    """benchmarks/pretrain_simulated.py's settings still load under today's `quick` profile (its documented
    reproduction command failed once `quick` gained a weight average that `keep: best` forbids)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from pretrain_simulated import ANATOMY_STAGE, TRAINING

    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(TRAINING))
    config = load_config(tmp_path / "pretrain.yaml")
    assert config.frodo.norm == "group" and config.finetune.keep == "best" and config.finetune.max_epochs == 24
    (tmp_path / "anatomy.yaml").write_text(yaml.safe_dump(ANATOMY_STAGE))  # `--anatomy`: the `simulated` file's stage
    assert method_config("frodo_simpretrained", load_config(tmp_path / "anatomy.yaml")).pretrain.weights == "simulated"


def test_the_pretraining_script_ships_the_plain_network(tmp_path):
    """pretrain_simulated.py's export drops the symmetry average's `net.` prefix, so the file loads into FrodoNet."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from pretrain_simulated import export_network

    config = method_config("frodo_simpretrained", get_profile("quick"))
    averaged = build_frodo(config.frodo)
    save_file(averaged.state_dict(), str(tmp_path / "model.safetensors"))
    export_network(tmp_path / "model.safetensors", tmp_path / "shipped.safetensors")
    shipped = load_file(str(tmp_path / "shipped.safetensors"))
    assert shipped.keys() == averaged.net.state_dict().keys()
    assert all(torch.equal(shipped[key], value) for key, value in averaged.net.state_dict().items())
