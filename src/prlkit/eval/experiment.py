"""Cross-validation: methods × participant-level folds -> out-of-fold predictions (resumable).

Per outer fold, every method trains on the development folds (its validation split drives early
stopping, the threshold and calibration) and predicts the held-out fold exactly once. Finished
(method, fold) pairs are read back from disk on rerun; interrupted ones resume from their checkpoint —
but only when the fold table, the patch cache and the method's config are those that made them
(`fingerprint.json` beside each fold's outputs); otherwise one error, or a fresh start with `recompute`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from prlkit.atomic import atomic_path, write_text_atomic
from prlkit.config import Config, config_to_dict
from prlkit.data.cache import PatchSet
from prlkit.errors import InputFileError, PrlkitError
from prlkit.eval.folds import describe_fold, fold_plan, split_fold
from prlkit.methods.registry import get_method, method_config

log = logging.getLogger("prlkit")

PREDICTION_COLUMNS = [
    "participant_id", "session_id", "index", "lesion_row", "fold", "method",
    "probability", "label", "threshold", "decision",
]  # fmt: skip


def fold_predictions(
    patch_set: PatchSet,
    folds: pd.DataFrame,
    method: str,
    fold: int,
    config: Config,
    out_dir: Path,
    device: torch.device,
    progress: bool = True,
    recompute: bool = False,
) -> pd.DataFrame:
    """Out-of-fold predictions of one method on one held-out fold (computed once, then read from disk).

    Saved outputs are reused only under the same fingerprint (`claim_fold_dir`).
    """
    fold_dir = out_dir / method / f"fold-{fold}"
    done = fold_dir / "predictions.tsv"
    spec = get_method(method)
    run_config = method_config(method, config)
    fingerprint = run_fingerprint(folds, patch_set, run_config)
    claim_fold_dir(fold_dir, fingerprint, recompute)
    if done.is_file():
        return read_predictions(done)
    write_text_atomic(fold_dir / "fingerprint.json", json.dumps(fingerprint, indent=2) + "\n")
    split = split_fold(patch_set.lesions, folds, fold, val_fraction=config.split.val_fraction, by=config.split.by,
                       seed=config.split.seed)  # fmt: skip
    log.info("%s fold %d: %d train, %d validation, %d test lesions", method, fold, len(split.train), len(split.val),
             len(split.test))  # fmt: skip
    model, _ = spec.train(patch_set, split.train, split.val, run_config, fold_dir / "runs", device,
                          resume=True, progress=progress)  # fmt: skip
    model.save(fold_dir)
    probability = model.lesion_probabilities(patch_set, split.test, device)
    rows = patch_set.lesions.loc[split.test]
    predictions = pd.DataFrame(
        {
            "participant_id": rows["participant_id"].to_numpy(),
            "session_id": rows["session_id"].to_numpy(),
            "index": rows["index"].to_numpy(),
            "lesion_row": split.test,
            "fold": fold,
            "method": method,
            "probability": probability,
            "label": rows["rim"].astype(int).to_numpy(),
            "threshold": model.threshold,
            "decision": (probability >= model.threshold).astype(int),
        }
    )
    with atomic_path(done) as tmp:
        predictions.to_csv(tmp, sep="\t", index=False)
    return predictions


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_fingerprint(folds: pd.DataFrame, patch_set: PatchSet, run_config: Config) -> dict[str, str]:
    """What a fold's predictions depend on: a hash of the fold table (participant -> fold), the patch-cache
    key (settings and input files of the patches) and a hash of the method's full config."""
    table = folds[["participant_id", "fold"]].astype(str).sort_values("participant_id")
    return {"fold_table": _digest(table.to_csv(sep="\t", index=False)), "patch_cache": patch_set.folder.name,
            "method_config": _digest(json.dumps(config_to_dict(run_config), sort_keys=True))}  # fmt: skip


def claim_fold_dir(fold_dir: Path, fingerprint: dict[str, str], recompute: bool = False) -> None:
    """Keep a fold's saved outputs (predictions, checkpoints) only if `fingerprint` made them: otherwise raise
    one error naming the file and what differs, or, with `recompute`, delete them so the fold is trained again."""
    if not fold_dir.is_dir() or not any(fold_dir.iterdir()):
        return
    try:
        check_fingerprint(fold_dir / "fingerprint.json", fingerprint)
    except InputFileError:
        if not recompute:
            raise
        log.info("%s: made under another fold table, patch cache or config; recomputing", fold_dir)
        shutil.rmtree(fold_dir)


def claim_outputs(patch_set: PatchSet, folds: pd.DataFrame, methods: list[str], config: Config, out_dir: Path,
                  recompute: bool = False) -> None:  # fmt: skip
    """`claim_fold_dir` for every (method, fold) of a run, before anything is trained or written."""
    for method in methods:
        fingerprint = run_fingerprint(folds, patch_set, method_config(method, config))
        for fold in sorted(folds["fold"].unique()):
            claim_fold_dir(out_dir / method / f"fold-{fold}", fingerprint, recompute)


def check_fingerprint(path: Path, expected: dict[str, str]) -> None:
    """Raise one error naming `path` and what differs when saved outputs were made under another fingerprint."""
    if not path.is_file():
        raise InputFileError(path, "missing: this fold's saved outputs do not record the fold table, patch cache "
                             "and config that made them; rerun with --recompute or choose another --out")  # fmt: skip
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputFileError(path, f"unreadable fingerprint ({error}); rerun with --recompute") from None
    differ = [name.replace("_", " ") for name in expected if saved.get(name) != expected[name]]
    if differ:
        raise InputFileError(path, f"this fold's saved outputs were made under another {' and '.join(differ)}; "
                             "rerun with --recompute to replace them, or choose another --out")  # fmt: skip


def read_predictions(path: Path) -> pd.DataFrame:
    """A predictions TSV written by :func:`fold_predictions`."""
    return pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str}, keep_default_na=False)


def cross_validate(
    patch_set: PatchSet,
    folds: pd.DataFrame,
    methods: list[str],
    config: Config,
    out_dir: Path,
    device: torch.device,
    progress: bool = True,
    recompute: bool = False,
) -> pd.DataFrame:
    """Every method on every fold that can be trained (the others are logged as skipped and listed in
    fold_plan.tsv with the reason); all out-of-fold predictions in one table."""
    claim_outputs(patch_set, folds, methods, config, out_dir, recompute)  # fail before any training
    plan = fold_plan(patch_set.lesions, folds, val_fraction=config.split.val_fraction, by=config.split.by,
                     seed=config.split.seed)  # fmt: skip
    write_text_atomic(out_dir / "fold_plan.tsv", plan.to_csv(sep="\t", index=False))
    for _, row in plan.iterrows():
        log.info(describe_fold(row))
        if row["problem"]:
            log.warning("fold %d skipped: %s", row["fold"], row["problem"])
    if (plan["problem"] != "").all():
        raise PrlkitError(f"no fold can be trained (fold {plan['fold'].iloc[0]}: {plan['problem'].iloc[0]})")
    tables = [
        fold_predictions(patch_set, folds, method, int(fold), config, out_dir, device, progress, recompute)
        for method in methods
        for fold in plan.loc[plan["problem"] == "", "fold"]
    ]
    oof = pd.concat(tables, ignore_index=True)[PREDICTION_COLUMNS]
    return oof.astype({"label": int, "decision": int, "fold": int})


def paired_by_lesion(oof: pd.DataFrame, method_a: str, method_b: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities and decisions of two methods on the same lesions, aligned by lesion row."""
    a = oof[oof["method"] == method_a].set_index("lesion_row").sort_index()
    b = oof[oof["method"] == method_b].set_index("lesion_row").sort_index()
    if not a.index.equals(b.index):
        raise ValueError(f"{method_a} and {method_b} were not evaluated on the same lesions")
    return a["label"].to_numpy(), a["probability"].to_numpy(), b["probability"].to_numpy(), \
        a["decision"].to_numpy(), b["decision"].to_numpy()
