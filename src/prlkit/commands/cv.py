"""`prlkit cv DATASET --methods frodo,... --out DIR`: the papers' evaluation protocol on your cohort."""

from __future__ import annotations

import argparse
from pathlib import Path

from prlkit.atomic import remove_stale, removed_on_failure
from prlkit.cli import positive_int
from prlkit.commands.common import (
    add_config_options,
    add_data_options,
    add_val_split_option,
    config_from_args,
    load_patch_set,
    with_split_overrides,
)
from prlkit.commands.train import resume_hint
from prlkit.config import load_config
from prlkit.errors import PrlkitError


class ListMethods(argparse.Action):
    """`--list-methods`: print every registered method with its description, then exit (like --help)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace, values, option_string=None) -> None:
        from prlkit.methods.registry import METHODS

        width = max(map(len, METHODS))
        print("".join(f"{name:{width}} {spec.description}\n" for name, spec in METHODS.items()), end="")
        parser.exit()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cv",
        help="cross-validate methods on participant-level folds and compare them",
        description="Five participant-level folds stratified by Rim+ burden; per fold every method trains on the "
        "development folds (validation split for early stopping where the profile stops early, threshold and "
        "calibration) and predicts the held-out fold once. Writes folds.tsv, oof_predictions.tsv, "
        "per_fold_metrics.tsv, results.md/json, "
        "cv_curves.png, counts.png and calibration.png to --out. Rerunning skips finished (method, fold) pairs.",
    )
    parser.add_argument("dataset", help="BIDS folder or manifest .csv")
    parser.add_argument("--out", required=True, type=Path, help="output folder (reused on rerun)")
    parser.add_argument("--methods", default="frodo", help="comma-separated methods, or 'all' (every registered "
                        "method: slow); --list-methods shows them")
    parser.add_argument("--list-methods", action=ListMethods, help="print the registered methods and exit")
    parser.add_argument("--reference", help="method the others are tested against (default: the first)")
    parser.add_argument("--folds", type=Path, help="folds.tsv of an earlier run, to reuse its split")
    parser.add_argument("--n-folds", type=int, help="number of outer folds (default from the profile: 5)")
    add_val_split_option(parser, " inside the development folds")
    parser.add_argument("--seed", type=int, help="seed of folds, splits and training")
    parser.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="participant-level bootstrap "
                        "resamples for the 95 %% CIs of pooled AUCs and AUC differences (default 2000; 0: none)")
    parser.add_argument("--seeds", type=positive_int, default=1, metavar="N", help="train every method N times on "
                        "the same folds with training seeds seed, seed+100, ... (extra runs in --out/seed-<s>/) and "
                        "report mean ± SD over seeds beside mean ± SD over folds (default 1)")
    parser.add_argument("--recompute", action="store_true", help="retrain the (method, fold) pairs whose saved "
                        "outputs in --out were made under another fold table, patch cache or method config "
                        "(default: stop with an error naming them)")
    add_config_options(parser, default_profile="quick")
    add_data_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prlkit.crossval import run_cross_validation
    from prlkit.eval.folds import load_folds
    from prlkit.methods.registry import METHODS
    from prlkit.train.checkpoint import has_resumable_work
    from prlkit.train.loop import resolve_device

    methods = list(METHODS) if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise PrlkitError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    reference = args.reference or methods[0]
    if reference not in methods:
        raise PrlkitError(f"--reference {reference} is not among --methods")
    config = with_split_overrides(config_from_args(args), n_folds=args.n_folds, by=args.val_split, seed=args.seed)
    out: Path = args.out
    saved = out / "config.yaml"
    if saved.is_file() and load_config(saved) != config:
        raise PrlkitError(f"{saved}: this folder holds a run with other settings; choose another --out")
    patch_set = load_patch_set(args, config)
    participants = sorted(patch_set.lesions["participant_id"].unique())
    folds_path = args.folds or (out / "folds.tsv" if (out / "folds.tsv").is_file() else None)
    folds = load_folds(folds_path, participants) if folds_path else None
    # The run writes into `out` (finished folds and checkpoints are what a rerun continues from); a first run
    # that fails before any of them exists leaves no folder behind.
    remove_stale(out)
    with resume_hint("rerun the same command to continue", out), removed_on_failure(out, has_resumable_work):
        run_cross_validation(patch_set, methods, reference, config, out, resolve_device(args.device), folds=folds,
                             progress=not args.no_progress, n_bootstrap=args.bootstrap, recompute=args.recompute,
                             n_seeds=args.seeds)
    print((out / "results.md").read_text())
    return 0
