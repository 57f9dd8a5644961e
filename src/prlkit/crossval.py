"""Cross-validation, the harness: methods × participant-level folds -> out-of-fold predictions and every output
of `prlkit cv` (tables, statistics, figures); resumable.

Per outer fold, every method trains on the development folds (its validation split drives early
stopping, the threshold and calibration) and predicts the held-out fold exactly once. Finished
(method, fold) pairs are read back from disk on rerun; interrupted ones resume from their checkpoint —
but only when the fold table, the patch cache and the method's config are those that made them
(`fingerprint.json` beside each fold's outputs); otherwise one error, or a fresh start with `recompute`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import torch

from prlkit.atomic import atomic_path, write_text_atomic
from prlkit.config import Config, config_to_dict, save_config
from prlkit.data.cache import PatchSet
from prlkit.errors import InputFileError, PrlkitError
from prlkit.eval.folds import describe_fold, fold_plan, make_folds, save_folds, split_fold
from prlkit.eval.predictions import PREDICTION_COLUMNS, read_predictions
from prlkit.eval.results import seed_summary, summarise, write_results
from prlkit.eval.subsets import write_confluence_results
from prlkit.methods.contract import TrainingJob
from prlkit.methods.finalize import warn_about_validation
from prlkit.methods.registry import deviations_from_paper, get_method, method_config
from prlkit.report.plots import write_cv_figures
from prlkit.train.checkpoint import discard_resume_state

log = logging.getLogger("prlkit")


def run_cross_validation(
    patch_set: PatchSet,
    methods: list[str],
    reference: str,
    config: Config,
    out: Path,
    device: torch.device,
    *,
    folds: pd.DataFrame | None = None,
    progress: bool = True,
    n_bootstrap: int = 2000,
    recompute: bool = False,
    n_seeds: int = 1,
) -> dict:
    """Folds (made if not given), every method on every fold, and all outputs of `prlkit cv` in `out`.

    `n_bootstrap` participant-level resamples (seeded by the split seed) give the AUC intervals. With
    `n_seeds` > 1 every method is trained again on the same folds and validation splits with training seeds
    + SEED_STRIDE, + 2 SEED_STRIDE, ... (outputs in `out/seed-<s>/`), and the tables add mean ± SD over
    seeds; the other tables are those of the first seed. Saved fold outputs made under other folds, patches
    or settings stop the run before it writes anything (`recompute`: redo them).
    """
    if n_bootstrap < 0:
        raise PrlkitError(f"--bootstrap must be 0 (none) or a number of resamples, not {n_bootstrap}")
    if folds is None:
        folds = make_folds(patch_set.lesions, n_folds=config.split.n_folds, seed=config.split.seed)
    offsets = [k * SEED_STRIDE for k in range(n_seeds)]
    runs = {training_seed(config) + k: (with_training_seed(config, k), out / f"seed-{training_seed(config) + k}" if k
                                        else out) for k in offsets}
    for seeded, folder in runs.values():
        claim_outputs(patch_set, folds, methods, seeded, folder, recompute)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    save_folds(folds, out / "folds.tsv")
    oofs = {}
    for seed, (seeded, folder) in runs.items():
        oofs[seed] = cross_validate(patch_set, folds, methods, seeded, folder, device, progress=progress,
                                    recompute=recompute)
        with atomic_path(folder / "oof_predictions.tsv") as tmp:
            oofs[seed].to_csv(tmp, sep="\t", index=False)
    oof = oofs[training_seed(config)]
    results = summarise(oof, reference, n_bootstrap=n_bootstrap, bootstrap_seed=config.split.seed) | {"settings": {
        method: {"profile": config.profile, "deviations_from_paper": deviations_from_paper(method, config)}
        for method in methods}}
    if n_seeds > 1:
        results["seeds"] = seed_summary(oofs)
    write_results(results, out)
    write_confluence_results(oof, patch_set.sessions, config.lesions, out)
    write_cv_figures(oof, out)
    return results


#: Training seeds of repeated runs are this far apart: ensembles seed their members seed, seed + 1, ...
#: (frodo_ensemble, QSMRim-Net's vote), so consecutive seeds would share members and understate the SD.
SEED_STRIDE = 100


def training_seed(config: Config) -> int:
    """The run's training seed (`finetune.seed`; `--seed` sets it with the pretraining and segmentation seeds)."""
    return config.finetune.seed


def with_training_seed(config: Config, offset: int) -> Config:
    """`config` with every training seed (pretrain, finetune, segment) moved by `offset`; folds and the
    validation split (`split.seed`) stay as they are."""
    return dataclasses.replace(
        config, pretrain=dataclasses.replace(config.pretrain, seed=config.pretrain.seed + offset),
        finetune=dataclasses.replace(config.finetune, seed=config.finetune.seed + offset),
        segment=dataclasses.replace(config.segment, train=dataclasses.replace(
            config.segment.train, seed=config.segment.train.seed + offset)))


def fold_predictions(
    patch_set: PatchSet,
    folds: pd.DataFrame,
    method: str,
    fold: int,
    config: Config,
    out_dir: Path,
    device: torch.device,
    *,
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
                       seed=config.split.seed)
    log.info("%s fold %d: %d train, %d validation, %d test lesions", method, fold, len(split.train), len(split.val),
             len(split.test))
    job = TrainingJob(method=method, patch_set=patch_set, train_index=split.train, val_index=split.val,
                      config=run_config, run_dir=fold_dir / "runs", device=device, resume=True, progress=progress)
    model, _ = spec.train(job)
    warn_about_validation(f"{method} fold {fold}", model.training)
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
    discard_resume_state(fold_dir / "runs")  # the fold is read back from predictions.tsv from now on
    return predictions


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_fingerprint(folds: pd.DataFrame, patch_set: PatchSet, run_config: Config) -> dict[str, str]:
    """What a fold's predictions depend on: a hash of the fold table (participant -> fold), the patch-cache
    key (settings and input files of the patches) and a hash of the method's full config."""
    table = folds[["participant_id", "fold"]].astype(str).sort_values("participant_id")
    return {"fold_table": _digest(table.to_csv(sep="\t", index=False)), "patch_cache": patch_set.folder.name,
            "method_config": _digest(json.dumps(config_to_dict(run_config), sort_keys=True))}


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
                  recompute: bool = False) -> None:
    """`claim_fold_dir` for every (method, fold) of a run, before anything is trained or written."""
    for method in methods:
        fingerprint = run_fingerprint(folds, patch_set, method_config(method, config))
        for fold in sorted(folds["fold"].unique()):
            claim_fold_dir(out_dir / method / f"fold-{fold}", fingerprint, recompute)


def check_fingerprint(path: Path, expected: dict[str, str]) -> None:
    """Raise one error naming `path` and what differs when saved outputs were made under another fingerprint."""
    if not path.is_file():
        raise InputFileError(path, "missing: this fold's saved outputs do not record the fold table, patch cache "
                             "and config that made them; rerun with --recompute or choose another --out")
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputFileError(path, f"unreadable fingerprint ({error}); rerun with --recompute") from None
    differ = [name.replace("_", " ") for name in expected if saved.get(name) != expected[name]]
    if differ:
        raise InputFileError(path, f"this fold's saved outputs were made under another {' and '.join(differ)}; "
                             "rerun with --recompute to replace them, or choose another --out")



def cross_validate(
    patch_set: PatchSet,
    folds: pd.DataFrame,
    methods: list[str],
    config: Config,
    out_dir: Path,
    device: torch.device,
    *,
    progress: bool = True,
    recompute: bool = False,
) -> pd.DataFrame:
    """Every method on every fold that can be trained (the others are logged as skipped and listed in
    fold_plan.tsv with the reason); all out-of-fold predictions in one table."""
    claim_outputs(patch_set, folds, methods, config, out_dir, recompute)  # fail before any training
    plan = fold_plan(patch_set.lesions, folds, val_fraction=config.split.val_fraction, by=config.split.by,
                     seed=config.split.seed)
    write_text_atomic(out_dir / "fold_plan.tsv", plan.to_csv(sep="\t", index=False))
    for _, row in plan.iterrows():
        log.info(describe_fold(row))
        if row["problem"]:
            log.warning("fold %d skipped: %s", row["fold"], row["problem"])
    if (plan["problem"] != "").all():
        raise PrlkitError(f"no fold can be trained (fold {plan['fold'].iloc[0]}: {plan['problem'].iloc[0]})")
    tables = [
        fold_predictions(patch_set, folds, method, int(fold), config, out_dir, device, progress=progress,
                         recompute=recompute)
        for method in methods
        for fold in plan.loc[plan["problem"] == "", "fold"]
    ]
    oof = pd.concat(tables, ignore_index=True)[PREDICTION_COLUMNS]
    return oof.astype({"label": int, "decision": int, "fold": int})
