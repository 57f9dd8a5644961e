"""Whole runs that several commands share: the cross-validation run with all its outputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import torch

from prlkit.atomic import atomic_path
from prlkit.config import Config, save_config
from prlkit.data.cache import PatchSet
from prlkit.errors import PrlkitError
from prlkit.eval.experiment import claim_outputs, cross_validate
from prlkit.eval.folds import make_folds, save_folds
from prlkit.eval.results import seed_summary, summarise, write_results
from prlkit.eval.subsets import write_confluence_results
from prlkit.methods.registry import deviations_from_paper
from prlkit.report.plots import write_cv_figures


def run_cross_validation(
    patch_set: PatchSet,
    methods: list[str],
    reference: str,
    config: Config,
    out: Path,
    device: torch.device,
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
                                        else out) for k in offsets}  # fmt: skip
    for seeded, folder in runs.values():
        claim_outputs(patch_set, folds, methods, seeded, folder, recompute)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    save_folds(folds, out / "folds.tsv")
    oofs = {}
    for seed, (seeded, folder) in runs.items():
        oofs[seed] = cross_validate(patch_set, folds, methods, seeded, folder, device, progress, recompute)
        with atomic_path(folder / "oof_predictions.tsv") as tmp:
            oofs[seed].to_csv(tmp, sep="\t", index=False)
    oof = oofs[training_seed(config)]
    results = summarise(oof, reference, n_bootstrap=n_bootstrap, bootstrap_seed=config.split.seed) | {"settings": {
        method: {"profile": config.profile, "deviations_from_paper": deviations_from_paper(method, config)}
        for method in methods}}  # fmt: skip
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
            config.segment.train, seed=config.segment.train.seed + offset)))  # fmt: skip
