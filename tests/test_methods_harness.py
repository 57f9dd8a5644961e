"""Every registered method trains through the one harness and round-trips through its model files."""

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from imblearn.over_sampling import SMOTE
from sklearn.preprocessing import StandardScaler

from prlkit.cli import main
from prlkit.config import config_from_dict
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set
from prlkit.errors import InputFileError, PrlkitError
from prlkit.eval.folds import labelled_lesions, split_development
from prlkit.methods.contract import TrainingJob
from prlkit.methods.networks import network_config
from prlkit.methods.registry import METHODS, get_method, method_config
from prlkit.methods.splits import lesion_split
from prlkit.methods.trained import load_trained_model
from prlkit.models.frodo import SymmetryAveraged
from prlkit.train.checkpoint import discard_resume_state

from conftest import tiny_config, write_toy_rim_cohort

TINY = tiny_config()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("harness")
    config = config_from_dict(TINY)
    dataset = write_toy_rim_cohort(root / "bids", n_participants=5)
    patch_set = build_patch_set(discover_cohort(dataset), config, cache_dir=root / "cache", progress=False)
    train, val = split_development(labelled_lesions(patch_set.lesions), val_fraction=0.3, seed=0)
    return patch_set, train, val, config


def train_method(data, method, tmp_path):
    patch_set, train, val, config = data
    job = training_job(method, patch_set, train, val, method_config(method, config), tmp_path)
    return get_method(method).train(job)


def training_job(method, patch_set, train, val, config, tmp_path):
    """A CPU training job without progress bars, checkpointing under tmp_path/runs."""
    return TrainingJob(method=method, patch_set=patch_set, train_index=train, val_index=val, config=config,
                       run_dir=tmp_path / "runs", device=torch.device("cpu"), progress=False)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """method -> (model, fits, saved folder), each trained and saved once per module (APRL: 20 trees)."""
    models = {}

    def get(method):
        if method not in models:
            folder = tmp_path_factory.mktemp(method)
            model, fits = train_method(data, method, folder)  # APRL: 20 trees (tiny config)
            model.save(folder / "model")
            discard_resume_state(folder / "runs")  # as the commands do: ResNet-18's checkpoints hold 0.5 GB
            models[method] = model, fits, folder / "model"
        return models[method]

    return get


def test_model_json_names_method_and_network_and_old_files_still_load(trained, tmp_path):
    _, _, folder = trained("frodo_contrastive")
    shutil.copytree(folder, tmp_path / "model")
    meta = json.loads((tmp_path / "model/model.json").read_text())
    assert (meta["method"], meta["network"]) == ("frodo_contrastive", "frodo")
    old = {key: value for key, value in meta.items() if key != "network"} | {"method": "frodo"}  # before `network`
    (tmp_path / "model/model.json").write_text(json.dumps(old))
    loaded = load_trained_model(tmp_path / "model")
    assert (loaded.network, loaded.method) == ("frodo", "frodo")


@pytest.mark.parametrize("method", ["resnet18", "rimnet", "deepprl", "frodo_contrastive", "qsmrimnet", "aprl"])
def test_method_trains_saves_and_loads(data, trained, method, tmp_path):
    patch_set, _train, val, _config = data
    model, fits, folder = trained(method)
    assert all(fit.epochs_run == 1 for fit in fits.values())
    shutil.copytree(folder, tmp_path / "model")
    loaded = load_trained_model(tmp_path / "model")
    assert (loaded.network, loaded.method) == (get_method(method).network, method)
    assert loaded.threshold == model.threshold
    assert loaded.needs_features == (method in ("qsmrimnet", "aprl"))
    split = lesion_split(patch_set, val)
    probabilities = model.probabilities(split.x, torch.device("cpu"), split.features)
    np.testing.assert_array_equal(loaded.probabilities(split.x, torch.device("cpu"), split.features), probabilities)
    assert probabilities.shape == (len(val),) and ((probabilities >= 0) & (probabilities <= 1)).all()
    if loaded.needs_features:  # a model from another feature set must not be fed this one's
        meta = json.loads((tmp_path / "model/model.json").read_text())
        meta["training"]["features"] = meta["training"]["features"][::-1]
        (tmp_path / "model/model.json").write_text(json.dumps(meta))
        with pytest.raises(InputFileError, match="other lesion features"):
            load_trained_model(tmp_path / "model")


def test_qsmrimnet_standardises_with_training_rows_only(data, trained):
    patch_set, train, val, _ = data
    model, _, _ = trained("qsmrimnet")
    features = patch_set.features
    np.testing.assert_allclose(model.module.feature_mean.numpy(), features[train].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.module.feature_scale.numpy(), features[train].std(axis=0), rtol=1e-12)
    with_val = features[np.r_[train, val]].mean(axis=0)
    assert not np.allclose(model.module.feature_mean.numpy(), with_val)


def test_aprl_fits_scaler_and_smote_on_training_rows_only(data, tmp_path, monkeypatch):
    patch_set, train, val, _ = data
    scaled, resampled = [], []
    scaler_fit, smote_fit = StandardScaler.fit, SMOTE.fit_resample

    def spy_scaler(self, X, *args, **kwargs):
        scaled.append(np.array(X))
        return scaler_fit(self, X, *args, **kwargs)

    def spy_smote(self, X, y, **kwargs):
        resampled.append(len(X))
        return smote_fit(self, X, y, **kwargs)

    monkeypatch.setattr(StandardScaler, "fit", spy_scaler)
    monkeypatch.setattr(SMOTE, "fit_resample", spy_smote)
    model, _ = train_method(data, "aprl", tmp_path)
    model.save(tmp_path / "model")
    load_trained_model(tmp_path / "model").probabilities(*_val_inputs(patch_set, val))  # refits on load
    training_rows = {row.tobytes() for row in patch_set.features[train]}
    held_out = {row.tobytes() for row in patch_set.features[val]}
    assert len(scaled) == len(resampled) >= 2
    for X, n in zip(scaled, resampled):
        rows = {row.tobytes() for row in X}
        assert rows <= training_rows and not rows & held_out and n == len(X)
    assert len(scaled[-1]) == len(train)  # the refit on load: all training rows


def _val_inputs(patch_set, val):
    split = lesion_split(patch_set, val)
    return split.x, torch.device("cpu"), split.features


def _assert_saved_model_predicts_the_same(model, patch_set, val, folder):
    model.save(folder)
    x, device, features = _val_inputs(patch_set, val)
    np.testing.assert_array_equal(load_trained_model(folder).probabilities(x, device, features),
                                  model.probabilities(x, device, features))


def test_every_method_is_described():
    assert all(spec.description for spec in METHODS.values())
    assert {"frodo", "resnet18", "qsmrimnet", "rimnet", "deepprl", "aprl"} <= set(METHODS)


@pytest.mark.parametrize("method", ["qsmrimnet", "aprl"])
def test_predict_command_gives_feature_methods_their_features(data, trained, method, tmp_path):
    patch_set, _, _, _ = data
    model, _, folder = trained(method)
    dataset = patch_set.folder.parent.parent / "bids"
    assert main(["predict", str(dataset), "--model", str(folder), "--out", str(tmp_path / "out"),
                 "--participant-label", "sub-01", "--no-progress"]) == 0
    table = pd.read_csv(tmp_path / "out/derivatives/prlkit/sub-01/anat/sub-01_lesions.tsv", sep="\t")
    rows = np.flatnonzero(patch_set.lesions["participant_id"] == "sub-01")
    split = lesion_split(patch_set, rows)
    expected = model.probabilities(split.x, torch.device("cpu"), split.features)
    # the cache holds float16 patches, predict computes float32 ones (APRL ignores them: features are
    # float64 in both); the table is written with 6 significant digits
    np.testing.assert_allclose(table["probability"].to_numpy(), expected, atol=1e-3 if method == "qsmrimnet" else 1e-6)


def test_a_config_file_overrides_the_registry_recipe_per_method():
    config = config_from_dict(tiny_config(methods={"rimnet": {"finetune": {"learning_rate": 3e-4}},
                                                   "qsmrimnet": {"network": {"fusion": "concat"}}}))
    rimnet = method_config("rimnet", config)
    assert rimnet.finetune.learning_rate == 3e-4  # the user's value wins ...
    assert (rimnet.finetune.optimizer, rimnet.finetune.schedule) == ("adam", "plateau")  # ... over the paper's rest
    qsmrimnet = method_config("qsmrimnet", config)
    assert qsmrimnet.network["fusion"] == "concat" and qsmrimnet.finetune.schedule == "multistep"
    assert method_config("resnet18", config).network == {} and method_config("resnet18", config).methods == {}
    assert method_config("deepprl", config).finetune.weight_decay == 3e-5


@pytest.mark.parametrize(("methods", "message"), [
    ({"svm": {"finetune": {"learning_rate": 1e-3}}}, "methods.svm: unknown method"),
    ({"frodo": {"network": {"fusion": "sum"}}}, "`frodo` section"),
])
def test_method_overrides_that_cannot_apply_are_errors(methods, message):
    with pytest.raises(PrlkitError, match=message):
        method_config("frodo", config_from_dict(tiny_config(methods=methods)))


def test_network_settings_reach_the_trained_model(data, tmp_path):
    patch_set, train, val, config = data
    config = config_from_dict(tiny_config(methods={"qsmrimnet": {"network": {"fusion": "concat"}}}))
    job = training_job("qsmrimnet", patch_set, train, val, method_config("qsmrimnet", config), tmp_path)
    model, _ = get_method("qsmrimnet").train(job)
    assert model.model_config["fusion"] == "concat" and model.config.finetune.schedule == "multistep"
    with pytest.raises(PrlkitError, match=r"network\.fusoin: not a resnet18 setting"):
        network_config("resnet18", {"fusoin": "sum"})


def test_qsmrimnet_on_pyradiomics_features_trains_saves_and_predicts(data, pyradiomics_installed, tmp_path):
    patch_set, train, val, _ = data
    config = config_from_dict(tiny_config(methods={"qsmrimnet": {"network": {"features": "pyradiomics"}}}))
    job = training_job("qsmrimnet", patch_set, train, val, method_config("qsmrimnet", config), tmp_path)
    model, _ = get_method("qsmrimnet").train(job)
    assert model.model_config["radiomics_features"] == 527 and model.feature_set == "pyradiomics"
    assert model.training["features"][0] == "original_shape_MeshVolume"
    cached = np.load(patch_set.folder / "features-pyradiomics.npy")  # next to the patches, for every fold
    with_patch = (patch_set.lesions["patch"] >= 0).to_numpy()
    assert cached.shape == (len(patch_set.lesions), 527) and np.isfinite(cached[with_patch]).all()
    assert np.isnan(cached[~with_patch]).all()
    model.save(tmp_path / "model")
    dataset = patch_set.folder.parent.parent / "bids"
    assert main(["predict", str(dataset), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "out"),
                 "--participant-label", "sub-01", "--no-progress"]) == 0
    table = pd.read_csv(tmp_path / "out/derivatives/prlkit/sub-01/anat/sub-01_lesions.tsv", sep="\t")
    rows = np.flatnonzero((patch_set.lesions["participant_id"] == "sub-01") & with_patch)
    expected = model.lesion_probabilities(patch_set, rows, torch.device("cpu"))  # features from the cache file
    np.testing.assert_allclose(table["probability"].dropna().to_numpy(), expected, atol=1e-3)  # float16 patches


@pytest.mark.slow
def test_qsmrimnet_three_seed_vote_trains_three_members_and_round_trips(data, tmp_path):
    patch_set, train, val, _ = data
    config = method_config("qsmrimnet", config_from_dict(tiny_config(methods={"qsmrimnet": {"network": {"seeds": 3}}})))
    model, fits = get_method("qsmrimnet").train(training_job("qsmrimnet", patch_set, train, val, config, tmp_path))
    assert sorted(fits) == ["train-seed0", "train-seed1", "train-seed2"] and len(model.module.members) == 3
    first, second = (member.net.head[-1].weight for member in model.module.members[:2])
    assert not torch.equal(first, second)  # own seeds: different networks
    _assert_saved_model_predicts_the_same(model, patch_set, val, tmp_path / "model")


def test_frodo_seed_ensemble_trains_each_member_with_its_own_seed_and_round_trips(data, tmp_path):
    patch_set, train, val, _ = data
    config = method_config("frodo", config_from_dict(tiny_config(frodo={"seeds": 2}, pretrain={"kind": "none"})))
    model, fits = get_method("frodo").train(training_job("frodo", patch_set, train, val, config, tmp_path))
    assert sorted(fits) == ["finetune-seed0", "finetune-seed1"] and len(model.module.members) == 2
    first, second = (member.head.out.weight for member in model.module.members)
    assert not torch.equal(first, second)
    _assert_saved_model_predicts_the_same(model, patch_set, val, tmp_path / "model")


def test_frodo_symmetry_averaging_calibrates_on_the_averaged_scores_and_round_trips(data, tmp_path):
    patch_set, train, val, _ = data
    config = method_config("frodo", config_from_dict(tiny_config(frodo={"test_time_symmetries": "flips"},
                                                                 pretrain={"kind": "none"})))
    model, _ = get_method("frodo").train(training_job("frodo", patch_set, train, val, config, tmp_path))
    assert isinstance(model.module, SymmetryAveraged) and model.model_config["test_time_symmetries"] == "flips"
    x, device, features = _val_inputs(patch_set, val)
    plain = model.calibrator.apply(torch.sigmoid(model.module.net(x.float())).detach().double().numpy())
    assert not np.allclose(model.probabilities(x, device, features), plain)
    _assert_saved_model_predicts_the_same(model, patch_set, val, tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "model.json").read_text())
    assert saved["model_config"]["test_time_symmetries"] == "flips"


def test_frodo_ensemble_is_the_measured_recipe_on_the_same_network():
    config = method_config("frodo_ensemble", config_from_dict(tiny_config()))
    assert config.frodo.seeds == 3 and config.pretrain.kind == "none"
    assert (config.finetune.max_epochs, config.finetune.patience, config.finetune.keep) == (40, 40, "last")
    faithful = method_config("frodo", config_from_dict(tiny_config()))
    assert dataclasses.replace(config.frodo, seeds=1) == faithful.frodo


def test_the_paper_profile_averages_over_symmetries_only_in_the_pretrained_variants():
    paper, quick = config_from_dict({"profile": "paper"}), config_from_dict({"profile": "quick"})
    pretrained = ("frodo_simpretrained", "frodo_simpretrained_pair")
    assert {method_config(name, paper).frodo.test_time_symmetries for name in pretrained} == {"cube"}
    assert {method_config(name, paper).frodo.test_time_symmetries for name in METHODS
            if name not in pretrained} == {"none"}  # the authors' code: one forward pass
    assert {method_config(name, quick).frodo.test_time_symmetries for name in METHODS} == {"cube"}


def test_deviations_from_paper_list_only_the_sections_a_method_uses():
    from prlkit.methods.registry import deviations_from_paper

    quick = config_from_dict({"profile": "quick"})
    frodo, aprl = deviations_from_paper("frodo", quick), deviations_from_paper("aprl", quick)
    assert "frodo.base_width=8" in frodo and "patches.size=24" in frodo and "pretrain.max_epochs=8" in frodo
    assert "patches.size=24" in aprl and not any(d.startswith(("frodo.", "pretrain.")) for d in aprl)
    assert deviations_from_paper("frodo", config_from_dict({"profile": "paper"})) == []


def test_deviations_from_paper_leave_out_stage1_settings_a_given_start_skips():
    from prlkit.methods.registry import deviations_from_paper

    given_start = config_from_dict({"profile": "quick", "pretrain": {"weights": "simulated"}})
    started = deviations_from_paper("frodo", given_start)
    assert "pretrain.weights=simulated" in started and "frodo.base_width=8" in started
    assert not any(d.startswith("pretrain.") and d != "pretrain.weights=simulated" for d in started)
    assert not any(d.startswith("pretrain.") for d in deviations_from_paper("frodo_simpretrained",
                                                                             config_from_dict({"profile": "quick"})))
