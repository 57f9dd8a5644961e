"""`prlkit train DATASET --out DIR [--method NAME]`: train a method on every labelled lesion of a cohort."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from prlkit.atomic import remove_stale, staged_output
from prlkit.commands.common import (
    add_config_options,
    add_data_options,
    add_val_split_option,
    config_from_args,
    load_patch_set,
    require_empty_output,
    with_split_overrides,
)
from prlkit.config import save_config
from prlkit.errors import PrlkitError
from prlkit.methods.finalize import warn_about_validation

log = logging.getLogger("prlkit")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the two-stream QSM-FLAIR network (or another --method) on a labelled cohort",
        description="Train on all labelled lesions of a cohort: a seeded validation split (--val-fraction) "
        "drives early stopping (profile paper; quick trains a fixed budget), the F1-optimal threshold and "
        "probability calibration. Writes model.safetensors, model.json, config.yaml, lesions.tsv (with the split), "
        "training_curves.png (epoch-trained methods) and per-stage logs to --out.",
    )
    parser.add_argument("dataset", help="BIDS folder or manifest .csv")
    parser.add_argument("--method", default="frodo", help="registered method (prlkit cv --list-methods; default frodo, "
                        "the main method); prlseg trains with `prlkit segment train`")
    parser.add_argument("--out", required=True, type=Path, help="output folder for the model")
    parser.add_argument("--val-fraction", type=float, help="validation fraction (default from the profile: 0.2)")
    add_val_split_option(parser)
    parser.add_argument("--seed", type=int, help="seed of the split and of training")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    parser.add_argument("--pretrained-encoders", type=Path, metavar="FILE", help="frodo: start fine-tuning from "
                        "these encoders instead of stage 1 (encoders.safetensors of "
                        "`prlkit convert-checkpoint best.pt`)")
    add_config_options(parser, default_profile="quick")
    add_data_options(parser)
    parser.set_defaults(func=run)


@contextlib.contextmanager
def resume_hint(hint: str, out: Path) -> Iterator[None]:
    """Ctrl-C in the block: the interruption carries `hint` when `out` holds work a rerun continues from."""
    from prlkit.train.checkpoint import has_resumable_work

    try:
        yield
    except KeyboardInterrupt:
        if has_resumable_work(out):
            raise KeyboardInterrupt(hint) from None
        raise


def run(args: argparse.Namespace) -> int:
    from prlkit.eval.folds import labelled_lesions, split_development
    from prlkit.methods.contract import TrainingJob
    from prlkit.methods.registry import get_method, method_config
    from prlkit.report.plots import plot_training_curves
    from prlkit.train.checkpoint import discard_resume_state, has_resumable_work
    from prlkit.train.loop import resolve_device

    if args.method == "prlseg":
        raise PrlkitError("prlseg segments whole volumes: train it with `prlkit segment train`")
    spec = get_method(args.method)
    config = method_config(args.method, with_split_overrides(config_from_args(args), val_fraction=args.val_fraction,
                                                  by=args.val_split, seed=args.seed))
    if args.pretrained_encoders:
        if spec.network != "frodo":
            raise PrlkitError(f"--pretrained-encoders: {args.method} has no frodo encoders to start from")
        config = dataclasses.replace(config, pretrain=dataclasses.replace(
            config.pretrain, encoders=str(args.pretrained_encoders.resolve())))
    split = config.split
    out: Path = args.out
    remove_stale(out)
    require_empty_output(out, args.resume)
    patch_set = load_patch_set(args, config)
    labelled = labelled_lesions(patch_set.lesions)
    if labelled.empty:
        raise PrlkitError(f"{args.dataset}: no labelled lesions to train on (rim labels are needed)")
    train_index, val_index = split_development(labelled, val_fraction=split.val_fraction, by=split.by, seed=split.seed)
    device = resolve_device(args.device)
    log.info("training %s on %d lesions (%d Rim+), validating on %d (%d Rim+), device %s", args.method,
             len(train_index), int((labelled.loc[train_index, "rim"] == 1).sum()), len(val_index),
             int((labelled.loc[val_index, "rim"] == 1).sum()), device)
    # Checkpoints go to out/runs as they are made (--resume needs them); the model and its files are
    # staged and moved into out at the end, model.json last. A failed run that checkpointed nothing leaves nothing.
    with (
        resume_hint("rerun with --resume to continue", out),
        staged_output(out, keep_partial=has_resumable_work, last=("model.json",)) as staging,
    ):
        model, fits = spec.train(TrainingJob(method=args.method, patch_set=patch_set, train_index=train_index,
                                             val_index=val_index, config=config, run_dir=out / "runs", device=device,
                                             resume=args.resume, progress=not args.no_progress))
        warn_about_validation(args.method, model.training)
        save_config(config, staging / "config.yaml")
        lesions = patch_set.lesions.assign(split="")
        lesions.loc[train_index, "split"] = "train"
        lesions.loc[val_index, "split"] = "val"
        lesions.to_csv(staging / "lesions.tsv", sep="\t", index=False)
        if any(fit.history for fit in fits.values()):  # APRL fits a forest: no epochs to plot
            plot_training_curves({name: (fit.history, fit.best_epoch) for name, fit in fits.items()},
                                 staging / "training_curves.png")
        model.save(staging)
    discard_resume_state(out / "runs")  # the model is complete: nothing left to resume
    summary = model.training
    print(json.dumps({"method": args.method}
                     | {k: summary[k] for k in ("n_train", "n_val", "val_pr_auc", "val_roc_auc", "val_brier")}
                     | {"threshold": model.threshold, "out": str(out)}))
    return 0
