"""cv on cohorts with few Rim+ participants: counts per fold before training; untrainable folds skipped, with a
remedy."""

from __future__ import annotations

import dataclasses
import logging
from types import SimpleNamespace

import pandas as pd
import pytest

import prlkit.crossval as experiment
from prlkit.config import get_profile
from prlkit.errors import PrlkitError
from prlkit.eval.folds import describe_fold, fold_plan, make_folds


def few_rim_cohort(rim_participants: int = 2, participants: int = 6) -> pd.DataFrame:
    """Four lesions per participant; the first `rim_participants` have two Rim+ lesions each."""
    rows = [{"participant_id": f"sub-{k:02d}", "rim": float(k < rim_participants and j < 2), "excluded": ""}
            for k in range(participants) for j in range(4)]
    rows.append({"participant_id": "sub-00", "rim": 1.0, "excluded": "too_small"})  # never counted
    return pd.DataFrame(rows)


def test_counts_per_fold_agree_with_a_direct_count():
    lesions = few_rim_cohort()
    folds = make_folds(lesions, n_folds=3, seed=0)
    plan = fold_plan(lesions, folds)
    usable = lesions[lesions["excluded"] == ""]
    fold_of = usable["participant_id"].map(folds.set_index("participant_id")["fold"])
    for _, row in plan.iterrows():
        test, dev = usable[fold_of == row["fold"]], usable[fold_of != row["fold"]]
        assert row["test_lesions"] == len(test) and row["dev_lesions"] == len(dev)
        assert row["test_rim_lesions"] == (test["rim"] == 1).sum() and row["dev_rim_lesions"] == (dev["rim"] == 1).sum()
        assert row["dev_rim_participants"] == dev.loc[dev["rim"] == 1, "participant_id"].nunique()
        assert row["test_participants"] + row["dev_participants"] == 6
    assert plan["test_rim_lesions"].sum() == 4
    line = describe_fold(plan.iloc[0])
    assert line.startswith("fold 0: held out 2 participants (") and "Rim+ of 8 lesions" in line


def test_a_fold_whose_development_set_has_one_rim_participant_says_what_to_do():
    lesions = few_rim_cohort()
    plan = fold_plan(lesions, make_folds(lesions, n_folds=3, seed=0))
    blocked = plan[plan["dev_rim_participants"] < 2]
    assert len(blocked) == 2 and (plan["problem"] == "").sum() == 1  # the two Rim+ participants sit in two folds
    for problem in blocked["problem"]:
        assert "1 development participant(s) with a Rim+ lesion" in problem
        assert problem.endswith("try fewer folds (--n-folds) or --val-split lesion")
    folds = make_folds(lesions, n_folds=3, seed=0)
    lesion_plan = fold_plan(lesions, folds, by="lesion")  # 20 % of 2 Rim+ development lesions: none
    lesion_blocked = lesion_plan[lesion_plan["problem"] != ""]
    assert lesion_blocked["fold"].tolist() == plan.loc[plan["dev_rim_lesions"] == 2, "fold"].tolist()
    assert lesion_blocked["problem"].str.endswith("try fewer folds (--n-folds) or a larger --val-fraction").all()
    assert (fold_plan(lesions, folds, by="lesion", val_fraction=0.5)["problem"] == "").all()


def _cross_validate(lesions, folds, tmp_path, monkeypatch):
    trained = []

    def fake_fold_predictions(patch_set, folds, method, fold, config, out_dir, device, *, progress, recompute):
        trained.append(fold)
        return pd.DataFrame({column: [0] for column in experiment.PREDICTION_COLUMNS} | {"fold": [fold]})

    monkeypatch.setattr(experiment, "fold_predictions", fake_fold_predictions)
    config = get_profile("quick")
    config = dataclasses.replace(config, split=dataclasses.replace(config.split, n_folds=3))
    patch_set = SimpleNamespace(lesions=lesions, folder=tmp_path / "patches-key")
    oof = experiment.cross_validate(patch_set, folds, ["frodo"], config, tmp_path, None)
    return oof, trained


def test_cross_validation_scores_the_folds_it_can_and_reports_the_others(tmp_path, monkeypatch, caplog):
    lesions = few_rim_cohort()
    folds = make_folds(lesions, n_folds=3, seed=0)
    plan = fold_plan(lesions, folds)
    with caplog.at_level(logging.INFO, logger="prlkit"):
        oof, trained = _cross_validate(lesions, folds, tmp_path, monkeypatch)
    assert trained == plan.loc[plan["problem"] == "", "fold"].tolist() and sorted(oof["fold"]) == trained
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert [line for line in infos if line.startswith("fold ")] == [describe_fold(row) for _, row in plan.iterrows()]
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(skipped) == 2 and all("skipped" in s and "--val-split lesion" in s for s in skipped)
    written = pd.read_csv(tmp_path / "fold_plan.tsv", sep="\t", keep_default_na=False)
    assert written["problem"].tolist() == plan["problem"].tolist()


def test_cross_validation_with_no_trainable_fold_is_one_error(tmp_path, monkeypatch):
    lesions = few_rim_cohort(rim_participants=1)
    with pytest.raises(PrlkitError, match=r"no fold can be trained \(fold 0: .*try fewer folds"):
        _cross_validate(lesions, make_folds(lesions, n_folds=3, seed=0), tmp_path, monkeypatch)
