"""Participant-level folds: disjoint, complete, stratified, burden-balanced, seeded; development splits."""

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupShuffleSplit

from prlkit.errors import InputFileError, PrlkitError
from prlkit.eval.folds import (
    FOLD_COLUMNS,
    RIM_GROUPS,
    load_folds,
    make_folds,
    participant_burden,
    pretraining_split,
    rim_group,
    save_folds,
    split_fold,
)


def _cohort(n_participants: int = 60, seed: int = 0) -> pd.DataFrame:
    """A lesion table with skewed lesion and Rim+ burdens, some excluded and some unlabeled lesions."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_participants):
        n = 1 + rng.geometric(0.08)
        n_rim = min(n, int(rng.choice([0, 0, 0, 1, 2, 3, 5, 8])))
        for j in range(n):
            rows.append({"participant_id": f"sub-{k:03d}", "rim": float(j < n_rim), "excluded": ""})
    table = pd.DataFrame(rows)
    table.loc[table.sample(frac=0.05, random_state=1).index, "excluded"] = "smaller than 110 voxels"
    table.loc[table.sample(frac=0.03, random_state=2).index, "rim"] = np.nan
    return table


def test_rim_group_boundaries():
    assert rim_group([0, 1, 3, 4, 6, 7, 20]).tolist() == ["0", "1-3", "1-3", "4-6", "4-6", ">6", ">6"]


def test_burden_counts_only_non_excluded_and_keeps_everyone():
    table = pd.DataFrame({"participant_id": ["a", "a", "a", "b", "c"], "rim": [1, 1, np.nan, 1, 0],
                          "excluded": ["", np.nan, "", "too small", ""]})
    burden = participant_burden(table, participants=["a", "b", "c", "d"]).set_index("participant_id")
    assert burden["n_lesions"].to_dict() == {"a": 3, "b": 0, "c": 1, "d": 0}
    assert burden["n_rim"].to_dict() == {"a": 2, "b": 0, "c": 0, "d": 0}
    assert burden.loc["a", "rim_group"] == "1-3"


def test_folds_are_a_stratified_balanced_partition():
    lesions = _cohort()
    folds = make_folds(lesions, n_folds=5, seed=3)
    assert list(folds.columns) == list(FOLD_COLUMNS)
    assert folds["participant_id"].is_unique
    assert set(folds["participant_id"]) == set(lesions["participant_id"])
    assert set(folds["fold"]) == set(range(5))
    sizes = folds["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 1
    per_group = pd.crosstab(folds["rim_group"], folds["fold"])
    assert set(per_group.index) <= set(RIM_GROUPS)
    assert ((per_group.max(axis=1) - per_group.min(axis=1)) <= 1).all()
    load = folds.groupby("fold")["n_lesions"].sum()
    assert (load.max() - load.min()) / load.mean() < 0.05, load.to_dict()
    burden = participant_burden(lesions).set_index("participant_id")
    assert folds.set_index("participant_id")["n_rim"].sort_index().equals(burden["n_rim"])


def test_folds_are_deterministic_by_seed():
    lesions = _cohort()
    a, b = make_folds(lesions, seed=7), make_folds(lesions, seed=7)
    pd.testing.assert_frame_equal(a, b)

    def partition(folds):
        return {frozenset(ids) for _, ids in folds.groupby("fold")["participant_id"]}
    assert partition(a) != partition(make_folds(lesions, seed=8))  # not merely relabelled folds


def test_too_few_participants():
    with pytest.raises(PrlkitError, match="n_folds"):
        make_folds(_cohort(3), n_folds=5)
    with pytest.raises(PrlkitError, match="rim must be"):
        make_folds(_cohort(10).assign(rim=2), n_folds=5)


def test_save_load_round_trip_and_validation(tmp_path):
    folds = make_folds(_cohort(20), seed=0)
    path = tmp_path / "folds.tsv"
    save_folds(folds, path)
    loaded = load_folds(path, participants=folds["participant_id"])
    pd.testing.assert_frame_equal(loaded, folds)
    assert [p.name for p in tmp_path.iterdir()] == ["folds.tsv"]

    def broken(table, **kwargs):
        table.to_csv(path, sep="\t", index=False)
        with pytest.raises(InputFileError, match=r"folds\.tsv") as info:
            load_folds(path, **kwargs)
        return str(info.value)

    duplicated = pd.concat([folds, folds.iloc[[0]].assign(fold=(folds.at[0, "fold"] + 1) % 5)])
    assert "appears 2 times" in broken(duplicated)
    assert "in no fold" in broken(folds.iloc[1:], participants=folds["participant_id"])
    assert "not in the cohort" in broken(folds, participants=folds["participant_id"][1:])
    assert "non-negative integer" in broken(folds.assign(fold=folds["fold"].astype(float) + 0.5))
    assert "no participant" in broken(folds.assign(fold=folds["fold"].replace(1, 2)))
    assert "lacks columns" in broken(folds.drop(columns="rim_group"))
    assert "rim_group" in broken(folds.assign(rim_group="many"))
    with pytest.raises(InputFileError, match="cannot read"):
        load_folds(tmp_path / "missing.tsv")


def _usable_index(lesions):
    return set(lesions.index[(lesions["excluded"] == "") & lesions["rim"].notna()])


def test_lesion_level_split():
    lesions = _cohort()
    folds = make_folds(lesions, seed=0)
    fold_of = folds.set_index("participant_id")["fold"]
    for test_fold in range(5):
        split = split_fold(lesions, folds, test_fold, by="lesion", seed=1)
        train, val, test = set(split.train), set(split.val), set(split.test)
        assert not (train & val or train & test or val & test)
        assert train | val | test == _usable_index(lesions)
        test_participants = set(folds.loc[folds["fold"] == test_fold, "participant_id"])
        assert set(lesions.loc[list(test), "participant_id"]) <= test_participants
        assert set(lesions.loc[list(train | val), "participant_id"]).isdisjoint(test_participants)
        assert (lesions.loc[list(test), "participant_id"].map(fold_of) == test_fold).all()
        assert len(val) == pytest.approx(0.2 * (len(train) + len(val)), abs=1)
        dev_rate = lesions.loc[list(train | val), "rim"].mean()
        assert lesions.loc[list(val), "rim"].mean() == pytest.approx(dev_rate, abs=0.03)
    again = split_fold(lesions, folds, 2, by="lesion", seed=1)
    assert np.array_equal(again.val, split_fold(lesions, folds, 2, by="lesion", seed=1).val)
    assert not np.array_equal(again.val, split_fold(lesions, folds, 2, by="lesion", seed=2).val)


def test_participant_level_split_is_the_authors_redrawn_group_shuffle_split():
    """Default: ceil(0.2 n) development participants by GroupShuffleSplit(seed + attempt), redrawn until
    the validation set (and, prlkit's addition, the training set) holds a Rim+ participant."""
    lesions = _cohort()
    folds = make_folds(lesions, seed=0)
    for seed in range(6):
        split = split_fold(lesions, folds, 0, seed=seed)
        assert np.array_equal(split.val, split_fold(lesions, folds, 0, by="participant", seed=seed).val)
        train_p = set(lesions.loc[split.train, "participant_id"])
        val_p = set(lesions.loc[split.val, "participant_id"])
        assert train_p.isdisjoint(val_p)
        assert (lesions.loc[split.val, "rim"] == 1).any() and (lesions.loc[split.train, "rim"] == 1).any()
        dev = lesions.loc[np.r_[split.train, split.val]]
        ids = np.array(sorted(dev["participant_id"].unique()))
        with_rim = set(dev.loc[dev["rim"] == 1, "participant_id"])
        for attempt in range(50):
            train_rows, val_rows = next(GroupShuffleSplit(1, test_size=0.2, random_state=seed + attempt).split(
                ids, groups=ids))
            if with_rim & set(ids[val_rows]) and with_rim & set(ids[train_rows]):
                break
        assert val_p == set(ids[val_rows]) and len(val_p) == int(np.ceil(0.2 * ids.size))
        assert set(split.train) | set(split.val) | set(split.test) == _usable_index(lesions)


def test_stratified_participant_split_holds_the_validation_fraction_of_the_rim_lesions():
    """prlkit's `participant_stratified`: as many whole participants as the authors' split, but of 50 draws
    (random states 50 * seed onwards) the one whose Rim+ share is closest to the validation fraction."""
    lesions = _cohort()
    folds = make_folds(lesions, seed=0)
    stratified_gaps, authors_gaps, validation_sets = [], [], set()
    for seed in range(6):
        split = split_fold(lesions, folds, 0, by="participant_stratified", seed=seed)
        authors = split_fold(lesions, folds, 0, by="participant", seed=seed)
        val_p = set(lesions.loc[split.val, "participant_id"])
        assert val_p.isdisjoint(lesions.loc[split.train, "participant_id"])
        assert len(val_p) == lesions.loc[authors.val, "participant_id"].nunique()
        assert set(split.train) | set(split.val) == set(authors.train) | set(authors.val)
        assert (lesions.loc[split.train, "rim"] == 1).any()
        dev_rim = (lesions.loc[np.r_[split.train, split.val], "rim"] == 1).sum()
        stratified_gaps.append(abs((lesions.loc[split.val, "rim"] == 1).sum() / dev_rim - 0.2))
        authors_gaps.append(abs((lesions.loc[authors.val, "rim"] == 1).sum() / dev_rim - 0.2))
        validation_sets.add(frozenset(val_p))
        assert np.array_equal(split.val, split_fold(lesions, folds, 0, by="participant_stratified", seed=seed).val)
    assert max(stratified_gaps) < 0.02 < max(authors_gaps)
    assert len(validation_sets) == 6  # every seed draws its own validation participants


def test_pretraining_split_holds_out_participants():
    lesions = _cohort()
    dev = lesions[(lesions["excluded"] == "") & lesions["rim"].notna()]
    train, val = pretraining_split(dev, 0.15, seed=3)
    assert set(train) | set(val) == set(dev.index) and not set(train) & set(val)
    train_p, val_p = set(dev.loc[train, "participant_id"]), set(dev.loc[val, "participant_id"])
    assert train_p.isdisjoint(val_p) and len(val_p) == int(np.ceil(0.15 * dev["participant_id"].nunique()))
    assert np.array_equal(val, pretraining_split(dev, 0.15, seed=3)[1])
    with pytest.raises(PrlkitError, match="at least 2"):
        pretraining_split(dev[dev["participant_id"] == dev["participant_id"].iloc[0]], 0.15, seed=0)


def test_split_errors():
    lesions = _cohort(20)
    folds = make_folds(lesions, seed=0)
    with pytest.raises(PrlkitError, match="fold 9"):
        split_fold(lesions, folds, 9)
    with pytest.raises(PrlkitError, match="without a fold"):
        split_fold(lesions, folds.iloc[1:], 0)
    with pytest.raises(PrlkitError, match="at least 2 Rim"):
        split_fold(lesions.assign(rim=0.0), folds, 0, by="lesion")
    with pytest.raises(PrlkitError, match="0 development participant"):
        split_fold(lesions.assign(rim=0.0), folds, 0)
    one_rim = lesions.assign(rim=0.0)
    one_rim.loc[one_rim.index[one_rim["excluded"] == ""][:3], "rim"] = 1.0  # a single Rim+ participant
    with pytest.raises(PrlkitError, match=r"1 development participant.*needs at least 2.*--val-split lesion"):
        split_fold(one_rim, make_folds(one_rim, seed=0), 4, by="participant", seed=0)
