"""`prlkit train` and the main method's pipeline on a toy cohort whose rims are obvious."""

import dataclasses
import errno
import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from safetensors import SafetensorError

from prlkit import modelfile
from prlkit.cli import main
from prlkit.config import config_from_dict
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set
from prlkit.eval.folds import labelled_lesions, split_development
from prlkit.eval.metrics import roc_auc
from prlkit.methods import registry
from prlkit.methods.contract import TrainingJob
from prlkit.methods.frodo import train_frodo
from prlkit.methods.splits import lesion_split
from prlkit.methods.trained import load_trained_model

from conftest import tiny_config, write_toy_rim_cohort

TINY = tiny_config(pretrain={"max_epochs": 2}, finetune={"max_epochs": 8, "patience": 8, "learning_rate": 3e-3})


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    dataset = write_toy_rim_cohort(root / "bids", n_participants=9)
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(TINY))
    return dataset, config_path, root


def test_beats_chance_on_held_out_participants(toy, tmp_path):
    dataset, _, root = toy
    config = config_from_dict(TINY)
    patch_set = build_patch_set(discover_cohort(dataset), config, cache_dir=root / "cache", progress=False)
    lesions = labelled_lesions(patch_set.lesions)
    held_out = lesions["participant_id"].isin(["sub-07", "sub-08"])
    train_index, val_index = split_development(lesions[~held_out], val_fraction=0.25, seed=0)
    model, fits = train_frodo(TrainingJob(method="frodo", patch_set=patch_set, train_index=train_index,
                                           val_index=val_index, config=config, run_dir=tmp_path,
                                           device=torch.device("cpu"), progress=False))
    test = lesion_split(patch_set, lesions.index[held_out])
    probabilities = model.probabilities(test.x, torch.device("cpu"))
    assert roc_auc(test.y.numpy(), probabilities) > 0.7
    assert set(fits) == {"pretrain", "finetune"} and 0.0 < model.threshold < 1.0
    assert set(lesions.loc[train_index, "participant_id"]).isdisjoint({"sub-07", "sub-08"})


@pytest.mark.slow
def test_train_command_writes_a_loadable_model(toy, capsys):
    dataset, config_path, root = toy
    out = root / "model"
    args = ["train", str(dataset), "--out", str(out), "--config", str(config_path), "--cache-dir", str(root / "cache"),
            "--no-progress"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n_train"] + summary["n_val"] == 36
    for name in ("model.safetensors", "model.json", "config.yaml", "lesions.tsv", "training_curves.png"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "model.json").read_text())
    assert meta["method"] == "frodo" and meta["threshold"] == summary["threshold"]
    assert meta["training"]["stages"]["finetune"]["epochs_run"] >= 1
    loaded = load_trained_model(out)
    patches = np.asarray(build_patch_set(discover_cohort(dataset), loaded.config, cache_dir=root / "cache",
                                         progress=False).patches[:6])
    again = load_trained_model(out).probabilities(patches, torch.device("cpu"))
    np.testing.assert_array_equal(loaded.probabilities(patches, torch.device("cpu")), again)
    assert main(args) == 1  # a second run into the same folder needs --resume
    assert "use --resume" in capsys.readouterr().err
    # a finished run keeps its per-stage metrics, not the checkpoints that only a resume needs
    assert {p.name for p in (out / "runs").rglob("*") if p.is_file()} == {"metrics.jsonl"}
    assert sorted(p.parent.name for p in (out / "runs").rglob("metrics.jsonl")) == ["finetune", "pretrain"]
    assert main([*args, "--resume"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"prlkit: error: {out}: --resume: this run finished (model.json is there), nothing to continue; " \
                  "choose another --out to train again"


def test_train_without_labels_is_an_error(toy, tmp_path, capsys):
    dataset, config_path, _root = toy
    unlabelled = tmp_path / "bids"
    shutil.copytree(dataset, unlabelled)
    for table in unlabelled.rglob("*_dseg.tsv"):
        table.write_text("index\trim\n" + "".join(f"{k}\tn/a\n" for k in range(1, 5)))
    code = main(["train", str(unlabelled), "--out", str(tmp_path / "m"), "--config", str(config_path),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert code == 1 and "no labelled lesions" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_train_command_trains_any_registered_method_for_predict(toy, tmp_path, capsys):
    # the tiny config's `methods.aprl.network` makes a 20-tree forest: the wiring is tested, not the forest;
    # also prlkit's stratified validation split reaches the saved config from the command line
    dataset, config_path, root = toy
    out = tmp_path / "aprl"
    assert main(["train", str(dataset), "--method", "aprl", "--out", str(out), "--config", str(config_path),
                 "--val-split", "participant_stratified", "--cache-dir", str(root / "cache"), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["method"] == "aprl"
    saved = json.loads((out / "model.json").read_text())
    assert saved["method"] == "aprl" and saved["config"]["split"]["by"] == "participant_stratified"
    assert not (out / "training_curves.png").exists()  # no epochs to plot
    predictions = tmp_path / "predictions"
    assert main(["predict", str(dataset), "--model", str(out), "--out", str(predictions), "--participant-label", "00",
                 "--no-progress"]) == 0
    assert (predictions / "derivatives" / "prlkit" / "subjects.tsv").is_file()


@pytest.mark.parametrize(("method", "message"), [("prlseg", "prlkit segment train"), ("svm", "unknown method")])
def test_train_command_refuses_methods_it_cannot_train(toy, tmp_path, capsys, method, message):
    dataset, config_path, _ = toy
    code = main(["train", str(dataset), "--method", method, "--out", str(tmp_path / "m"), "--config", str(config_path),
                 "--no-progress"])
    assert code == 1 and message in capsys.readouterr().err and not (tmp_path / "m").exists()


def _stopping_frodo(monkeypatch, error, checkpointed):
    """frodo's training replaced by one that makes its run folder (and a checkpoint), then stops with `error`."""

    def stopping(job):
        (job.run_dir / "pretrain").mkdir(parents=True)
        if checkpointed:
            (job.run_dir / "pretrain" / "checkpoint.json").write_text("{}")
        raise error

    monkeypatch.setitem(registry.METHODS, "frodo", dataclasses.replace(registry.METHODS["frodo"], train=stopping))


@pytest.mark.parametrize(
    ("error", "checkpointed", "code", "message"),
    [
        (KeyboardInterrupt(), False, 130, "prlkit: interrupted"),
        (KeyboardInterrupt(), True, 130, "prlkit: interrupted; rerun with --resume to continue"),
        (OSError(errno.ENOSPC, "No space left on device", "RUN/pretrain/metrics.jsonl"), False, 1,
         "prlkit: error: RUN/pretrain/metrics.jsonl: No space left on device"),
    ],
)
def test_a_stopped_train_leaves_nothing_but_checkpoints(toy, tmp_path, monkeypatch, capsys, error, checkpointed, code,
                                                        message):
    dataset, config_path, root = toy
    _stopping_frodo(monkeypatch, error, checkpointed)
    out = tmp_path / "m"
    assert main(["train", str(dataset), "--out", str(out), "--config", str(config_path), "--cache-dir",
                 str(root / "cache"), "--no-progress"]) == code
    assert capsys.readouterr().err.strip().splitlines() == [message]
    kept = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else None
    assert kept == (["runs", "runs/pretrain", "runs/pretrain/checkpoint.json"] if checkpointed else None)


def test_full_disk_while_saving_the_model_leaves_nothing(toy, tmp_path, monkeypatch, capsys):
    dataset, config_path, root = toy

    def full(tensors, filename):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(modelfile, "save_file", full)
    out = tmp_path / "aprl"
    assert main(["train", str(dataset), "--method", "aprl", "--out", str(out), "--config", str(config_path),
                 "--cache-dir", str(root / "cache"), "--no-progress"]) == 1
    assert capsys.readouterr().err.strip() == f"prlkit: error: {out}/model.safetensors: No space left on device"
    assert not out.exists()
