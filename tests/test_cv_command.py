"""`prlkit cv`: folds, out-of-fold predictions, tables and plots; resumable; no leakage."""

import dataclasses
import json
import logging
import shutil

import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import brier_score_loss, roc_curve

import prlkit.crossval as experiment
from prlkit.cli import main
from prlkit.config import config_from_dict
from prlkit.crossval import fold_predictions
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set
from prlkit.errors import PrlkitError
from prlkit.eval.folds import make_folds
from prlkit.methods import registry

from conftest import tiny_config, write_toy_rim_cohort

TINY = tiny_config(finetune={"max_epochs": 2, "patience": 2}, split={"n_folds": 3})


CV_WARNINGS: list[str] = []  # what the first run of `cv_run` logged at WARNING


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    dataset = write_toy_rim_cohort(root / "bids", n_participants=9)
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    args = ["cv", str(dataset), "--out", str(root / "out"), "--methods", "frodo,frodo_scratch",
            "--config", str(root / "tiny.yaml"), "--cache-dir", str(root / "cache"), "--no-progress"]
    collector = logging.Handler(logging.WARNING)
    collector.emit = lambda record: CV_WARNINGS.append(record.getMessage())
    logging.getLogger("prlkit").addHandler(collector)
    try:
        assert main(args) == 0
    finally:
        logging.getLogger("prlkit").removeHandler(collector)
    return root, args


def test_each_fold_whose_validation_cannot_vouch_for_its_model_says_so_naming_the_fold(cv_run):
    """Six development participants leave one or two for validation: too few Rim+ in every fold."""
    for method in ("frodo", "frodo_scratch"):
        for fold in range(3):
            lines = [w for w in CV_WARNINGS if w.startswith(f"{method} fold {fold}: validation ROC-AUC")]
            assert len(lines) == 1 and "fewer than 5 validation Rim+" in lines[0], (method, fold, CV_WARNINGS)


def test_outputs_and_out_of_fold_coverage(cv_run):
    root, _ = cv_run
    out = root / "out"
    for name in ("folds.tsv", "oof_predictions.tsv", "per_fold_metrics.tsv", "results.md", "results.json",
                 "config.yaml", "cv_curves.png", "counts.png", "calibration.png"):
        assert (out / name).is_file(), name
    oof = pd.read_csv(out / "oof_predictions.tsv", sep="\t")
    folds = pd.read_csv(out / "folds.tsv", sep="\t")
    assert len(oof) == 2 * 36  # every lesion predicted once per method
    for _method, rows in oof.groupby("method"):
        assert rows["lesion_row"].is_unique and len(rows) == 36
    fold_of = folds.set_index("participant_id")["fold"]
    assert (oof["participant_id"].map(fold_of) == oof["fold"]).all()  # predicted by the model that never saw it
    assert oof.groupby(["method", "fold"])["threshold"].nunique().eq(1).all()
    markdown = (out / "results.md").read_text()
    assert "| frodo |" in markdown and "| frodo_scratch |" in markdown and "DeLong" in markdown
    assert (out / "frodo" / "fold-0" / "model.json").is_file()


def test_high_specificity_point_and_brier_score_match_sklearn(cv_run):
    root, _ = cv_run
    results = json.loads((root / "out" / "results.json").read_text())
    oof = pd.read_csv(root / "out" / "oof_predictions.tsv", sep="\t")
    for method, rows in oof.groupby("method"):
        y, p = rows["label"].to_numpy(), rows["probability"].to_numpy()
        point = results["high_specificity_operating_point"][method]
        assert point["brier"] == pytest.approx(brier_score_loss(y, p))
        fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
        assert point["specificity"] >= 0.95 and point["sensitivity"] == pytest.approx(tpr[fpr <= 0.05].max())
    assert "specificity ≥ 0.95" in (root / "out" / "results.md").read_text()


def test_results_carry_participant_bootstrap_switches_and_test_chosen_labels(cv_run):
    root, _ = cv_run
    results = json.loads((root / "out" / "results.json").read_text())
    boot = results["bootstrap"]
    assert boot["resampled"] == "participants" and boot["n_resamples"] == 2000 and boot["n_skipped"] >= 0
    for method in ("frodo", "frodo_scratch"):
        for key in ("roc_auc_ci", "pr_auc_ci"):
            low, high = boot["methods"][method][key]
            assert 0 <= low <= high <= 1
    assert "roc_auc_difference_ci" in boot["methods"]["frodo_scratch"]
    assert "roc_auc_difference_ci" not in boot["methods"]["frodo"]  # the reference
    markdown = (root / "out" / "results.md").read_text()
    assert "| frodo [base_width=2, " in markdown and ", lr=0.001] | quick |" in markdown  # switches and profile
    assert "participant-level bootstrap" in markdown and "bootstrap 95 % CI" in markdown
    assert markdown.count("chosen on the test predictions") == 2
    assert "Holm" not in markdown  # one comparison: nothing to adjust


def test_rerun_skips_finished_folds(cv_run, monkeypatch):
    _, args = cv_run

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished (method, fold) was trained again")

    monkeypatch.setattr(experiment, "split_fold", must_not_train)
    assert main(args) == 0


def test_other_settings_need_another_folder(cv_run, capsys):
    _root, args = cv_run
    assert main(args + ["--seed", "5"]) == 1
    assert "other settings" in capsys.readouterr().err


def test_another_fold_table_is_refused_before_anything_is_written(cv_run, tmp_path, capsys):
    root, args = cv_run
    out = root / "out"
    before = {name: (out / name).read_bytes() for name in ("folds.tsv", "results.json", "oof_predictions.tsv")}
    folds = pd.read_csv(out / "folds.tsv", sep="\t")
    folds["fold"] = (folds["fold"] + 1) % 3  # the same groups, other fold numbers
    folds.to_csv(tmp_path / "other.tsv", sep="\t", index=False)
    assert main(args + ["--folds", str(tmp_path / "other.tsv")]) == 1
    error = capsys.readouterr().err
    assert "frodo/fold-0/fingerprint.json: this fold's saved outputs were made under another fold table;" in error
    assert "--recompute" in error and "patch cache" not in error and "method config" not in error
    assert {name: (out / name).read_bytes() for name in before} == before  # nothing was written


def test_recompute_replaces_only_outputs_of_another_fingerprint(tmp_path):
    fold_dir = tmp_path / "frodo" / "fold-0"
    fold_dir.mkdir(parents=True)
    fingerprint = {"fold_table": "a", "patch_cache": "patches-b", "method_config": "c"}
    (fold_dir / "fingerprint.json").write_text(json.dumps(fingerprint))
    (fold_dir / "predictions.tsv").write_text("saved")
    experiment.claim_fold_dir(fold_dir, fingerprint)  # the same: kept
    assert (fold_dir / "predictions.tsv").is_file()
    other = fingerprint | {"patch_cache": "patches-x", "method_config": "y"}
    with pytest.raises(experiment.InputFileError, match="another patch cache and method config"):
        experiment.claim_fold_dir(fold_dir, other)
    experiment.claim_fold_dir(fold_dir, other, recompute=True)
    assert not fold_dir.exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "predictions.tsv").write_text("made before fingerprints")
    with pytest.raises(experiment.InputFileError, match=r"fingerprint\.json: missing"):
        experiment.claim_fold_dir(tmp_path / "old", fingerprint)


def test_seeds_train_again_on_the_same_folds_and_report_mean_and_sd_over_seeds(cv_run, capsys):
    from prlkit.eval.results import per_fold_metrics

    root, _ = cv_run
    out = root / "seeds"
    args = ["cv", str(root / "bids"), "--out", str(out), "--methods", "aprl", "--config", str(root / "tiny.yaml"),
            "--cache-dir", str(root / "cache"), "--no-progress", "--seeds", "2", "--seed", "3", "--bootstrap", "0"]
    assert main(args) == 0
    first, second = (pd.read_csv(folder / "oof_predictions.tsv", sep="\t") for folder in (out, out / "seed-103"))
    assert (first["lesion_row"] == second["lesion_row"]).all() and (first["fold"] == second["fold"]).all()
    assert not first["probability"].equals(second["probability"])  # another forest
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"]["seeds"] == [3, 103] and results["bootstrap"] is None
    fold_means = [per_fold_metrics(oof)["roc_auc"].mean() for oof in (first, second)]
    cell = results["seeds"]["summary"]["aprl"]["roc_auc"]
    assert cell["mean"] == pytest.approx(sum(fold_means) / 2)
    assert cell["sd"] == pytest.approx(abs(fold_means[0] - fold_means[1]) / 2**0.5)
    assert "## Over training seeds (mean ± SD over seeds 3, 103" in (out / "results.md").read_text()
    with pytest.raises(SystemExit):
        main(["cv", str(root / "bids"), "--out", str(root / "none"), "--seeds", "0"])
    assert "--seeds: must be >= 1" in capsys.readouterr().err and not (root / "none").exists()


def test_threshold_ignores_test_labels(cv_run, tmp_path):
    root, _ = cv_run
    config = config_from_dict(TINY | {"pretrain": {"kind": "none"}, "finetune": {"max_epochs": 1, "batch_size": 8}})
    patch_set = build_patch_set(discover_cohort(root / "bids"), config, cache_dir=root / "cache", progress=False)
    folds = make_folds(patch_set.lesions, n_folds=3, seed=0)
    first = fold_predictions(patch_set, folds, "frodo", 0, config, tmp_path / "a", torch.device("cpu"),
                             progress=False)
    lesions = patch_set.lesions.copy()
    test_rows = first["lesion_row"].to_numpy()
    lesions.loc[test_rows, "rim"] = 1 - lesions.loc[test_rows, "rim"]  # flip every test label
    flipped = fold_predictions(dataclasses.replace(patch_set, lesions=lesions), folds, "frodo", 0, config,
                               tmp_path / "b", torch.device("cpu"), progress=False)
    assert flipped["threshold"].iloc[0] == first["threshold"].iloc[0]
    pd.testing.assert_series_equal(flipped["probability"], first["probability"])
    assert (flipped["label"] != first["label"]).all()


def test_compare_merges_runs_on_the_same_folds(cv_run, tmp_path, capsys):
    root, _ = cv_run
    out = root / "out"
    oof = pd.read_csv(out / "oof_predictions.tsv", sep="\t")
    other = tmp_path / "other"
    other.mkdir()
    (other / "folds.tsv").write_text((out / "folds.tsv").read_text())
    renamed = oof[oof["method"] == "frodo"].assign(method="frodo_copy")
    renamed.to_csv(other / "oof_predictions.tsv", sep="\t", index=False)
    assert main(["compare", str(out), str(other), "--out", str(tmp_path / "merged")]) == 0
    markdown = (tmp_path / "merged" / "results.md").read_text()
    assert "| frodo_copy |" in markdown and "| frodo_scratch |" in markdown
    results = __import__("json").loads((tmp_path / "merged" / "results.json").read_text())
    copy = next(c for c in results["comparisons"] if c["method"] == "frodo_copy")
    assert copy["delong"]["difference"] == 0 and copy["delong"]["p_value"] == 1.0  # identical scores
    folds = pd.read_csv(out / "folds.tsv", sep="\t")
    folds["fold"] = (folds["fold"] + 1) % 3
    folds.to_csv(other / "folds.tsv", sep="\t", index=False)
    assert main(["compare", str(out), str(other), "--out", str(tmp_path / "bad")]) == 1
    assert "folds differ" in capsys.readouterr().err


def test_a_fold_without_positives_reports_undefined_aucs_with_a_warning():
    from prlkit.data.bids import PrlkitWarning
    from prlkit.eval.results import per_fold_metrics

    oof = pd.DataFrame({"method": "m", "fold": [0, 0, 0, 1, 1, 1], "label": [0, 0, 0, 1, 0, 1],
                        "probability": [0.1, 0.2, 0.7, 0.9, 0.3, 0.6], "threshold": 0.5})
    with pytest.warns(PrlkitWarning, match="fold 0: .*undefined"):
        table = per_fold_metrics(oof).set_index("fold")
    assert pd.isna(table.loc[0, "roc_auc"]) and table.loc[0, "specificity"] == pytest.approx(2 / 3)
    assert table.loc[1, "roc_auc"] == 1.0


def test_list_methods_prints_every_registered_method_without_a_dataset(capsys):
    from prlkit.methods.registry import METHODS

    with pytest.raises(SystemExit) as exit_info:
        main(["cv", "--list-methods"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(METHODS)
    assert len({line.index(METHODS[line.split()[0]].description) for line in lines}) == 1  # one column


@pytest.mark.parametrize(("error", "code", "message"), [
    (PrlkitError("the validation set has no Rim+ lesion"), 1, "prlkit: error: the validation set has no Rim+ lesion"),
    (KeyboardInterrupt(), 130, "prlkit: interrupted"),
])
def test_a_first_run_failing_on_its_first_fold_leaves_nothing(cv_run, tmp_path, monkeypatch, capsys, error, code,
                                                              message):
    _root, args = cv_run

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setitem(registry.METHODS, "frodo", dataclasses.replace(registry.METHODS["frodo"], train=failing))
    out = tmp_path / "cv"
    assert main([*args[:2], "--out", str(out), *args[4:]]) == code
    assert capsys.readouterr().err.strip().splitlines()[-1] == message
    assert not out.exists()  # no config.yaml and folds.tsv blocking a rerun with other settings


def test_an_interrupted_run_with_finished_work_says_how_to_continue(cv_run, tmp_path, monkeypatch, capsys):
    root, args = cv_run
    out = tmp_path / "cv"
    shutil.copytree(root / "out", out)
    shutil.rmtree(out / "frodo_scratch")
    (out / "results.md").unlink()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setitem(registry.METHODS, "frodo_scratch",
                        dataclasses.replace(registry.METHODS["frodo_scratch"], train=interrupted))
    assert main([*args[:2], "--out", str(out), *args[4:]]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "prlkit: interrupted; rerun the same command to continue"
    assert (out / "frodo" / "fold-0" / "predictions.tsv").is_file()


def test_mean_sd_names_the_folds_that_defined_a_metric():
    from prlkit.eval.results import mean_sd

    assert mean_sd({"mean": 0.8, "sd": 0.1, "n": 4}, n_folds=5) == "0.800 ± 0.100 (n=4)"
    assert mean_sd({"mean": 0.8, "sd": 0.1, "n": 5}, n_folds=5) == "0.800 ± 0.100"
    assert mean_sd({"mean": float("nan"), "sd": float("nan"), "n": 0}, n_folds=5) == "n/a"
