"""Configs: named profiles, YAML/JSON round trips, strict keys and values."""

import re

import pytest

from prlkit.config import Config, config_from_dict, get_profile, load_config, save_config
from prlkit.errors import PrlkitError


def test_profiles_differ_in_patch_size():
    assert get_profile("paper").patches.size == 64
    assert get_profile("quick").patches.size == 24
    with pytest.raises(PrlkitError, match="unknown profile"):
        get_profile("fast")


@pytest.mark.parametrize("name", ["run.yaml", "run.json"])
def test_round_trip(tmp_path, name):
    config = config_from_dict({"profile": "quick", "lesions": {"min_voxels": 50},
                               "patches": {"qsm_window_ppm": [-0.1, 0.2]}})
    save_config(config, tmp_path / name)
    assert load_config(tmp_path / name) == config


def test_partial_file_overrides_its_profile(tmp_path):
    (tmp_path / "c.yaml").write_text("profile: quick\npatches:\n  gate_k: 0.8\n")
    config = load_config(tmp_path / "c.yaml")
    assert config.patches.size == 24 and config.patches.gate_k == 0.8
    assert config.lesions == Config().lesions


def test_unknown_key_names_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text("patches:\n  sise: 24\n")
    with pytest.raises(PrlkitError, match=r"c\.yaml: unknown config key patches\.sise") as error:
        load_config(tmp_path / "c.yaml")
    assert "\n" not in str(error.value)


def test_yaml_1_1_exponent_strings_load_as_floats(tmp_path):
    # YAML 1.1 reads `1e-4` (no dot) as the string '1e-4'; the field's type makes it the float it means
    (tmp_path / "c.yaml").write_text("finetune:\n  learning_rate: 1e-4\n  max_epochs: 12.0\n"
                                     "segment:\n  train: {learning_rate: 5e-3}\n")
    config = load_config(tmp_path / "c.yaml")
    assert type(config.finetune.learning_rate) is float and config.finetune.learning_rate == 1e-4
    assert type(config.finetune.max_epochs) is int and config.finetune.max_epochs == 12
    assert config.segment.train.learning_rate == 5e-3


def test_a_method_override_is_typed_when_applied():
    from prlkit.methods.registry import method_config

    config = config_from_dict({"methods": {"frodo_scratch": {"finetune": {"learning_rate": "1e-4"}}}})
    assert method_config("frodo_scratch", config).finetune.learning_rate == 1e-4
    with pytest.raises(PrlkitError, match=r"^config methods\.frodo_scratch\.finetune\.max_epochs: .*valid integer"):
        config_from_dict({"methods": {"frodo_scratch": {"finetune": {"max_epochs": "ten"}}}})


@pytest.mark.parametrize(
    "text, message",
    [
        ("finetune:\n  max_epochs: ten\n", r"config finetune\.max_epochs: input should be a valid integer.*'ten'"),
        ("pretrain: {patience: 2.5}\n", r"config pretrain\.patience: .*fractional part"),
        ("segment:\n  train:\n    batch_size: many\n", r"config segment\.train\.batch_size: .*valid integer"),
        ("segment:\n  train:\n    max_epochs: 0\n", r"config segment\.train: train\.max_epochs must be >= 1"),
        ("segment:\n  train:\n    epochs: 3\n", r"unknown config key segment\.train\.epochs"),
        ("patches: {qsm_window_ppm: [-0.1, high]}\n", r"config patches\.qsm_window_ppm\[1\]: .*valid number"),
        ("patches: {gate: maybe}\n", r"config patches\.gate: .*valid boolean"),
        ("lesions: {map_kind: 3}\n", r"config lesions\.map_kind: .*valid string"),
        ("finetune: {calibration: isotonic}\n", r"finetune\.calibration must be prior, platt or temperature"),
        ("finetune: {max_epochs: yes}\n", r"config finetune\.max_epochs: a yes/no value where a int belongs"),
    ],
    ids=["int_word", "int_fraction", "nested_type", "nested_check", "nested_unknown", "tuple_item", "bool", "str",
         "choice", "yes_for_int"],
)
def test_a_wrong_value_is_one_line_naming_the_file_and_the_full_key(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(PrlkitError, match=rf"^{re.escape(str(tmp_path / 'bad.yaml'))}: {message}") as error:
        load_config(tmp_path / "bad.yaml")
    assert "\n" not in str(error.value)


def test_the_cli_reports_a_bad_config_in_one_line_before_any_work(tmp_path, capsys):
    from prlkit.cli import main

    (tmp_path / "bad.yaml").write_text("finetune:\n  max_epochs: ten\n")
    code = main(["train", str(tmp_path / "no_cohort"), "--config", str(tmp_path / "bad.yaml"),
                 "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{tmp_path}/bad.yaml: config finetune.max_epochs:" in err and not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"patches": {"size": 31}}, "even"),
        ({"lesions": {"connectivity": 8}}, "connectivity"),
        ({"patches": {"qsm_window_ppm": [0.1, 0.2]}}, "qsm_window_ppm"),
        ({"lesions": {"map_kind": "mask"}}, "map_kind"),
    ],
)
def test_invalid_values(data, message):
    with pytest.raises(PrlkitError, match=message):
        config_from_dict(data)


def test_broken_yaml(tmp_path):
    (tmp_path / "c.yaml").write_text("patches: [unclosed\n")
    with pytest.raises(PrlkitError, match="not valid YAML"):
        load_config(tmp_path / "c.yaml")


def test_stage_sections_round_trip_and_validate(tmp_path):
    config = config_from_dict({"profile": "quick", "frodo": {"base_width": 4}, "pretrain": {"kind": "none"}})
    assert config.frodo.widths == (4, 8, 16, 32) and config.pretrain.kind == "none"
    assert config.finetune == get_profile("quick").finetune
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config
    for bad in ({"pretrain": {"kind": "simclr"}}, {"finetune": {"batch_size": 0}}, {"split": {"by": "site"}}):
        with pytest.raises(PrlkitError):
            config_from_dict(bad)


def test_quick_gives_every_supervised_method_the_same_budget_and_its_own_papers_learning_rate():
    from prlkit.methods.registry import METHODS, deviations_from_paper, method_config

    quick, paper = get_profile("quick"), get_profile("paper")
    supervised = [name for name, spec in METHODS.items() if spec.network not in ("aprl", "prlseg")]
    for name in supervised:
        ours, theirs = method_config(name, quick), method_config(name, paper)
        assert ours.patches.size == 24
        # quick: a fixed 40 epochs, the last 10 averaged; the fixed recipes of prlkit's variants and
        # QSMRim-Net's paper keep their own budget and their last epoch in both profiles
        fixed = {"frodo_ensemble": 40, "qsmrimnet": 40, "frodo_simpretrained": 10, "frodo_simpretrained_pair": 10}
        recipe = ours.finetune.max_epochs, ours.finetune.keep, ours.finetune.averaged_epochs
        assert recipe == ((fixed[name], "last", 0) if name in fixed else (40, "last", 10)), name
        assert ours.finetune.patience >= ours.finetune.max_epochs, name
        if name not in fixed:
            assert (theirs.finetune.keep, theirs.finetune.averaged_epochs) == ("best", 0), name  # the papers stop early
        if name.startswith("frodo_simpretrained"):  # shipped weights fine-tuned at their own gentle rate, any profile
            assert ours.finetune.learning_rate == theirs.finetune.learning_rate == 1e-4
        elif METHODS[name].network == "frodo":  # the main method's own quick steps, named in its table row
            assert ours.finetune.learning_rate == 1e-3
            assert "finetune.learning_rate=0.001" in deviations_from_paper(name, quick)
        else:
            assert (ours.finetune.optimizer, ours.finetune.learning_rate) == \
                (theirs.finetune.optimizer, theirs.finetune.learning_rate), name
            assert not any(d.startswith("finetune.learning_rate") for d in deviations_from_paper(name, quick))
    assert method_config("resnet18", quick).finetune.learning_rate == 1e-4  # was quick's 1e-3 before
    assert method_config("deepprl", quick).finetune.weight_decay_all  # the released Adam decays every parameter
    assert "segment.train.learning_rate=0.003" in deviations_from_paper("prlseg", quick)
    assert not any(d.startswith(("finetune.", "frodo.")) for d in deviations_from_paper("aprl", quick))
