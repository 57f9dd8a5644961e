"""Participant-level cross-validation folds and the development train/validation split.

Folds follow QSMRim-Net §2.3 and the main paper §3.2: no participant in two folds; participants
are stratified by their number of Rim+ lesions (groups 0, 1–3, 4–6, >6) and the folds are
balanced in total lesion burden. Only non-excluded lesions count; unlabeled lesions (rim NaN)
count towards the burden but not towards Rim+ and never enter a split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from prlkit.atomic import write_text_atomic
from prlkit.config import VAL_SPLITS
from prlkit.errors import InputFileError, PrlkitError

RIM_GROUPS = ("0", "1-3", "4-6", ">6")
FOLD_COLUMNS = ("participant_id", "fold", "rim_group", "n_lesions", "n_rim")


def rim_group(n_rim: np.ndarray | Sequence[int]) -> np.ndarray:
    """QSMRim-Net's stratification group of each participant's Rim+ count: '0', '1-3', '4-6' or '>6'."""
    return np.asarray(RIM_GROUPS, dtype=object)[np.digitize(n_rim, [1, 4, 7])]


def _usable_lesions(lesions: pd.DataFrame) -> pd.DataFrame:
    """Validate a lesion table and return its non-excluded rows with `participant_id` as str."""
    missing = {"participant_id", "rim", "excluded"} - set(lesions.columns)
    if missing:
        raise PrlkitError(f"lesion table lacks columns {sorted(missing)}")
    rim = pd.to_numeric(lesions["rim"], errors="coerce")
    bad = lesions["rim"].notna() & ~rim.isin([0, 1])
    if bad.any():
        raise PrlkitError(f"lesion table: rim must be 0, 1 or empty, got {lesions.loc[bad, 'rim'].iloc[0]!r}")
    if not lesions.index.is_unique:
        raise PrlkitError("lesion table: the index must be unique (it names lesions in the splits)")
    excluded = lesions["excluded"].fillna("").astype(str).str.strip() != ""
    return lesions.assign(participant_id=lesions["participant_id"].astype(str), rim=rim)[~excluded]


def participant_burden(lesions: pd.DataFrame, participants: Sequence[str] | None = None) -> pd.DataFrame:
    """Per participant: `n_lesions` (non-excluded), `n_rim` (labeled Rim+) and `rim_group`, sorted by id.

    The cohort is every participant in `lesions` (also those whose lesions are all excluded), plus
    `participants` if given (participants without lesions get zero counts).
    """
    usable = _usable_lesions(lesions)
    extra = () if participants is None else participants
    cohort = sorted(set(lesions["participant_id"].astype(str)) | set(map(str, extra)))
    by_participant = (usable["rim"] == 1).groupby(usable["participant_id"])
    table = pd.DataFrame({"n_lesions": by_participant.size(), "n_rim": by_participant.sum()})
    table = table.reindex(cohort, fill_value=0).astype(int)
    table.index.name = "participant_id"
    return table.assign(rim_group=rim_group(table["n_rim"])).reset_index()


def make_folds(lesions: pd.DataFrame, n_folds: int = 5, seed: int = 0,
               participants: Sequence[str] | None = None) -> pd.DataFrame:
    """Assign every participant to one of `n_folds` folds (0-based), stratified and burden-balanced.

    1. Within each Rim+ group, participants are shuffled with the seed and dealt in blocks of
       `n_folds`, one per fold, each block to the folds with the fewest participants so far
       (QSMRim-Net: random split within groups). Each group is then spread within ±1 over the
       folds and fold sizes differ by at most 1.
    2. Lesion burden is balanced by swapping two participants of the same group between folds
       (which keeps step 1's counts) while the best swap lowers the sum of squared fold lesion
       totals (main paper: balanced total lesion burden).
    The same seed always gives the same folds. Returns columns `FOLD_COLUMNS`.
    """
    burden = participant_burden(lesions, participants)
    if n_folds < 2 or len(burden) < n_folds:
        raise PrlkitError(f"folds: need 2 <= n_folds <= number of participants ({len(burden)}), got {n_folds}")
    rng = np.random.default_rng(seed)
    n_lesions = burden["n_lesions"].to_numpy()
    groups = [np.flatnonzero(burden["rim_group"].to_numpy() == g) for g in RIM_GROUPS]
    fold = np.full(len(burden), -1)
    size = np.zeros(n_folds, int)
    for group in groups:
        members = rng.permutation(group)
        for start in range(0, members.size, n_folds):
            block = members[start:start + n_folds]
            fold[block] = np.lexsort((rng.random(n_folds), size))[:block.size]
            size[fold[block]] += 1
    _balance_lesions(fold, n_lesions, groups, n_folds)
    out = burden.assign(fold=fold)[list(FOLD_COLUMNS)]
    return out.sort_values(["fold", "participant_id"], ignore_index=True)


def _balance_lesions(fold: np.ndarray, n_lesions: np.ndarray, groups: list[np.ndarray], n_folds: int) -> None:
    """Apply, in place, the best within-group swap while it lowers the sum of squared fold lesion totals."""
    load = np.bincount(fold, weights=n_lesions, minlength=n_folds)
    while True:
        best_gain, best_pair = 0.0, None
        for members in groups:
            if members.size < 2:
                continue
            # Swapping i (fold a) and j (fold b) moves d = n_j - n_i lesions into a and out of b:
            # the sum of squares changes by 2d(load_a - load_b) + 2d².
            d = n_lesions[members][None, :] - n_lesions[members][:, None]
            la = load[fold[members]]
            gain = 2 * d * (la[:, None] - la[None, :]) + 2 * d**2
            k = int(np.argmin(gain))
            if gain.flat[k] < best_gain - 1e-9:
                best_gain, best_pair = gain.flat[k], (members[k // members.size], members[k % members.size])
        if best_pair is None:
            return
        i, j = best_pair
        d = n_lesions[j] - n_lesions[i]
        load[fold[i]] += d
        load[fold[j]] -= d
        fold[i], fold[j] = fold[j], fold[i]


def save_folds(folds: pd.DataFrame, path: Path | str) -> None:
    """Write the fold table as TSV, atomically."""
    _validate_folds(folds, path, None)
    write_text_atomic(path, folds[list(FOLD_COLUMNS)].to_csv(sep="\t", index=False))


def load_folds(path: Path | str, participants: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a fold TSV and check it: every participant once, folds 0..K-1 all used.

    With `participants` (the cohort), also check that exactly these participants are listed.
    """
    try:
        folds = pd.read_csv(path, sep="\t", dtype={"participant_id": str, "rim_group": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputFileError(path, f"cannot read fold table ({exc})") from exc
    _validate_folds(folds, path, participants)
    return folds[list(FOLD_COLUMNS)]


def _validate_folds(folds: pd.DataFrame, path: Path | str, participants: Sequence[str] | None) -> None:
    missing = set(FOLD_COLUMNS) - set(folds.columns)
    if missing:
        raise InputFileError(path, f"fold table lacks columns {sorted(missing)}")
    counts = folds["participant_id"].value_counts()
    if (counts > 1).any():
        raise InputFileError(path, f"participant {counts.index[0]} appears {counts.iloc[0]} times (one fold each)")
    fold = pd.to_numeric(folds["fold"], errors="coerce")
    if fold.isna().any() or (fold % 1 != 0).any() or (fold < 0).any():
        raise InputFileError(path, "fold must be a non-negative integer in every row")
    if not folds["rim_group"].isin(RIM_GROUPS).all():
        raise InputFileError(path, f"rim_group must be one of {list(RIM_GROUPS)}")
    unused = sorted(set(range(int(fold.max()) + 1)) - set(fold.astype(int)))
    if unused:
        raise InputFileError(path, f"folds {unused} have no participant")
    if participants is not None:
        cohort, listed = set(map(str, participants)), set(folds["participant_id"].astype(str))
        if cohort - listed:
            raise InputFileError(path, f"participants of the cohort in no fold: {sorted(cohort - listed)[:5]}")
        if listed - cohort:
            raise InputFileError(path, f"participants not in the cohort: {sorted(listed - cohort)[:5]}")


@dataclass(frozen=True)
class FoldSplit:
    """Lesion-table index labels of one outer fold: development `train` and `val`, held-out `test`."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_fold(lesions: pd.DataFrame, folds: pd.DataFrame, test_fold: int, *, val_fraction: float = 0.2,
               by: str = "participant", seed: int = 0) -> FoldSplit:
    """Split one outer fold: the test fold's lesions, and the other folds' lesions into train/validation.

    Only non-excluded, labeled lesions are split; see :func:`split_development` for the
    train/validation rule.
    """
    if test_fold not in set(folds["fold"]):
        raise PrlkitError(f"development split: fold {test_fold} is not in the fold table")
    usable = labelled_lesions(lesions)
    fold_of = folds.assign(participant_id=folds["participant_id"].astype(str)).set_index("participant_id")["fold"]
    unassigned = sorted(set(usable["participant_id"]) - set(fold_of.index))
    if unassigned:
        raise PrlkitError(f"development split: participants without a fold: {unassigned[:5]}")
    in_test = usable["participant_id"].map(fold_of).to_numpy() == test_fold
    try:
        train, val = split_development(usable[~in_test], val_fraction=val_fraction, by=by, seed=seed)
    except PrlkitError as error:
        raise PrlkitError(f"fold {test_fold}: {error}") from None
    return FoldSplit(train, val, np.sort(usable.index.to_numpy()[in_test]))


def labelled_lesions(lesions: pd.DataFrame) -> pd.DataFrame:
    """The non-excluded lesions with a rim label (the only ones any split uses)."""
    usable = _usable_lesions(lesions)
    return usable[usable["rim"].notna()]


def split_development(dev: pd.DataFrame, *, val_fraction: float = 0.2, by: str = "participant",
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sorted index labels (train, validation) of development lesions (from :func:`labelled_lesions`).

    ``by="participant"`` (the authors' code, ``split_train_val``): ceil(`val_fraction` · n) of the n
    development participants, drawn by scikit-learn's ``GroupShuffleSplit`` with seed, seed + 1, ...
    until the validation set holds a participant with a Rim+ lesion (it drives early stopping and the
    F1 threshold); prlkit also requires one left for training. ``by="participant_stratified"``
    (prlkit's choice): the same number of whole participants, of 50 such draws the one whose share of the
    Rim+ lesions is closest to `val_fraction` (not one Rim+ participant's few). ``by="lesion"``
    (the paper text, §3.2) draws `val_fraction` of the lesions at random, stratified by rim label
    (``train_test_split``).
    """
    if by not in VAL_SPLITS:
        raise PrlkitError(f"development split: by must be one of {', '.join(VAL_SPLITS)}, got {by!r}")
    if not 0 < val_fraction < 1:
        raise PrlkitError(f"development split: val_fraction must be in (0, 1), got {val_fraction}")
    if by == "lesion":
        if dev["rim"].value_counts().reindex([0.0, 1.0], fill_value=0).min() < 2:
            raise PrlkitError("development split: needs at least 2 Rim+ and 2 Rim- development lesions")
        train, val = train_test_split(dev.index.to_numpy(), test_size=val_fraction, stratify=dev["rim"],
                                      random_state=seed)
    else:
        choose = _stratified_validation_participants if by == "participant_stratified" else _validation_participants
        is_val = dev["participant_id"].isin(choose(dev, val_fraction, seed)).to_numpy()
        train, val = dev.index.to_numpy()[~is_val], dev.index.to_numpy()[is_val]
    if not (dev.loc[val, "rim"] == 1).any():
        raise PrlkitError("development split: the validation set has no Rim+ lesion")
    return np.sort(train), np.sort(val)


SPLIT_ATTEMPTS = 50  # the authors' code redraws the validation participants up to 50 times


def _validation_participants(dev: pd.DataFrame, val_fraction: float, seed: int) -> list[str]:
    """The validation participants of the authors' redrawn participant split (see :func:`split_development`)."""
    return _usable_draws(dev, val_fraction, first_state=seed)[0]


def _stratified_validation_participants(dev: pd.DataFrame, val_fraction: float, seed: int) -> list[str]:
    """The validation participants of prlkit's stratified split (see :func:`split_development`): of the draws
    from random states `SPLIT_ATTEMPTS` · seed onwards (so that each seed has draws of its own), the first
    whose share of the Rim+ lesions is closest to `val_fraction`."""
    rim_per_participant = dev[dev["rim"] == 1].groupby(dev["participant_id"].astype(str)).size()

    def gap(participants: list[str]) -> float:
        share = rim_per_participant.reindex(participants, fill_value=0).sum() / rim_per_participant.sum()
        return abs(share - val_fraction)

    return min(_usable_draws(dev, val_fraction, first_state=SPLIT_ATTEMPTS * seed), key=gap)


def _usable_draws(dev: pd.DataFrame, val_fraction: float, *, first_state: int) -> list[list[str]]:
    """The validation participants of each of `SPLIT_ATTEMPTS` ``GroupShuffleSplit`` draws (random states
    `first_state`, `first_state` + 1, ...)
    that leave a participant with a Rim+ lesion on both sides, in draw order (at least one, else an error)."""
    ids = np.array(sorted(dev["participant_id"].astype(str).unique()))
    with_rim = set(dev.loc[dev["rim"] == 1, "participant_id"].astype(str))
    if len(with_rim) < 2:
        raise PrlkitError(f"development split: {len(with_rim)} development participant(s) with a Rim+ lesion; a "
                          "participant-level validation split needs at least 2 (one for training, one for validation)"
                          "; use --val-split lesion for the paper text's lesion-level split")
    draws = []
    for attempt in range(SPLIT_ATTEMPTS):
        splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=first_state + attempt)
        train_rows, val_rows = next(splitter.split(ids, groups=ids))
        if with_rim & set(ids[val_rows]) and with_rim & set(ids[train_rows]):
            draws.append(ids[val_rows].tolist())
    if not draws:
        raise PrlkitError(f"development split: {SPLIT_ATTEMPTS} draws of the validation participants never put a "
                          "Rim+ participant on both sides; use --val-split lesion or a larger --val-fraction")
    return draws


def pretraining_split(dev: pd.DataFrame, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted index labels (train, validation) of the label-free stage 1: ceil(`val_fraction` · n) of the
    development participants held out by ``GroupShuffleSplit`` (the authors' ``train_ssl.py``)."""
    ids = np.array(sorted(dev["participant_id"].astype(str).unique()))
    if ids.size < 2:
        raise PrlkitError("pretraining split: needs at least 2 development participants")
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    _, val_rows = next(splitter.split(ids, groups=ids))
    is_val = dev["participant_id"].astype(str).isin(ids[val_rows]).to_numpy()
    return np.sort(dev.index.to_numpy()[~is_val]), np.sort(dev.index.to_numpy()[is_val])


FOLD_PLAN_COLUMNS = (
    "fold", "test_participants", "test_rim_participants", "test_lesions", "test_rim_lesions",
    "dev_participants", "dev_rim_participants", "dev_lesions", "dev_rim_lesions", "problem",
)


def fold_plan(lesions: pd.DataFrame, folds: pd.DataFrame, *, val_fraction: float = 0.2, by: str = "participant",
              seed: int = 0) -> pd.DataFrame:
    """Per outer fold, before any training: participants, participants with a Rim+ lesion, labelled
    lesions and Rim+ lesions of the held-out (`test_`) and development (`dev_`) sets, and `problem`:
    why the fold's development split cannot be drawn, with what to do ("" when it can)."""
    usable = labelled_lesions(lesions)
    fold_of = folds.assign(participant_id=folds["participant_id"].astype(str)).set_index("participant_id")["fold"]
    in_fold = usable["participant_id"].map(fold_of)
    rows = []
    for fold in sorted(folds["fold"].unique()):
        counts = {"test_participants": int((folds["fold"] == fold).sum()),
                  "dev_participants": int((folds["fold"] != fold).sum())}
        for side, part in (("test", usable[in_fold == fold]), ("dev", usable[in_fold != fold])):
            rim = part[part["rim"] == 1]
            counts |= {f"{side}_rim_participants": rim["participant_id"].nunique(),
                       f"{side}_lesions": len(part), f"{side}_rim_lesions": len(rim)}
        try:
            split_fold(lesions, folds, int(fold), val_fraction=val_fraction, by=by, seed=seed)
            problem = ""
        except PrlkitError as error:
            other_split = "a larger --val-fraction" if by == "lesion" else "--val-split lesion"
            remedy = f"fewer folds (--n-folds) or {other_split}"
            problem = f"{error}; try {remedy}"
        rows.append({"fold": int(fold), **counts, "problem": problem})
    return pd.DataFrame(rows, columns=list(FOLD_PLAN_COLUMNS))


def describe_fold(row: pd.Series) -> str:
    """One line of a `fold_plan` row: the Rim+ counts of both sides."""
    return (f"fold {row['fold']}: held out {row['test_participants']} participants ({row['test_rim_participants']} "
            f"with Rim+; {row['test_rim_lesions']} Rim+ of {row['test_lesions']} lesions), development "
            f"{row['dev_participants']} ({row['dev_rim_participants']} with Rim+; {row['dev_rim_lesions']} Rim+ of "
            f"{row['dev_lesions']} lesions)")
