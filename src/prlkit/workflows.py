"""Whole runs that several commands share: the cross-validation run with all its outputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from prlkit.config import Config, save_config
from prlkit.data.cache import PatchSet
from prlkit.errors import PrlkitError
from prlkit.eval.experiment import claim_outputs, cross_validate
from prlkit.eval.folds import make_folds, save_folds
from prlkit.eval.results import summarise, write_results
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
) -> dict:
    """Folds (made if not given), every method on every fold, and all outputs of `prlkit cv` in `out`;
    `n_bootstrap` participant-level resamples (seeded by the split seed) for the AUC intervals. Saved fold outputs
    made under other folds, patches or settings stop the run before it writes anything (`recompute`: redo them)."""
    if n_bootstrap < 0:
        raise PrlkitError(f"--bootstrap must be 0 (none) or a number of resamples, not {n_bootstrap}")
    if folds is None:
        folds = make_folds(patch_set.lesions, n_folds=config.split.n_folds, seed=config.split.seed)
    claim_outputs(patch_set, folds, methods, config, out, recompute)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    save_folds(folds, out / "folds.tsv")
    oof = cross_validate(patch_set, folds, methods, config, out, device, progress, recompute)
    oof.to_csv(out / "oof_predictions.tsv", sep="\t", index=False)
    results = summarise(oof, reference, n_bootstrap=n_bootstrap, bootstrap_seed=config.split.seed) | {"settings": {
        method: {"profile": config.profile, "deviations_from_paper": deviations_from_paper(method, config)}
        for method in methods}}  # fmt: skip
    write_results(results, out)
    write_confluence_results(oof, patch_set.sessions, config.lesions, out)
    write_cv_figures(oof, out)
    return results
