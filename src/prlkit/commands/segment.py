"""`prlkit segment train|predict`: whole-brain PRL segmentation, the patch-free alternative mode."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from prlkit.atomic import write_text_atomic
from prlkit.commands.common import (
    add_config_options,
    add_device_option,
    add_progress_option,
    add_qsm_unit_option,
    add_susceptibility_options,
    checked_cohort,
    config_from_args,
    read_as_trained,
    require_empty_output,
    with_split_overrides,
)
from prlkit.config import Config, save_config
from prlkit.errors import PrlkitError

log = logging.getLogger("prlkit")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="whole-brain PRL segmentation (3-class 3D UNet), the patch-free alternative",
        description="Segment background / non-PRL / PRL voxels with a 3D UNet trained on lesion-centred patches "
        "(El Yamani et al., MIDL 2025); every annotated lesion gets a PRL score (mean voxel PRL probability). "
        "Settings: the `segment` section of the config. `prlkit cv --methods frodo,prlseg` compares both modes.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train on a labelled cohort", description="Train on every session; "
                               "a participant-level validation split drives early stopping and the lesion-score "
                               "threshold. Writes model.safetensors, model.json, config.yaml, split.tsv, "
                               "training_curves.png and the run log (runs/) to --out.")
    train.add_argument("dataset", help="BIDS folder or manifest .csv")
    train.add_argument("--out", required=True, type=Path, help="output folder for the model")
    train.add_argument("--val-fraction", type=float, help="fraction of participants for validation (default 0.2)")
    train.add_argument("--seed", type=int, help="seed of the split and of training")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    add_config_options(train, default_profile="quick")
    predict = actions.add_parser(
        "predict", help="segment new sessions",
        description="Segment every session with a `segment train` model, or with the prlseg fold models of a "
        "`prlkit cv` run (a participant of that run by its held-out fold's model, others by the mean of all folds). "
        "Writes per session <out>/derivatives/prlkit/.../*_desc-prlseg_dseg, *_label-{nonPRL,PRL}_desc-prlseg_probseg "
        "and *_desc-prlseg_lesions.tsv; with rim labels also prlseg_metrics.tsv/.json (Dice per class, global F1).",
    )
    predict.add_argument("dataset", help="BIDS folder or manifest .csv")
    predict.add_argument("--model", required=True, type=Path, help="prlkit segment train folder or prlkit cv folder")
    predict.add_argument("--out", required=True, type=Path, help="output root (derivatives/prlkit is created in it)")
    add_qsm_unit_option(predict)
    add_susceptibility_options(predict, choose_input=False)
    for sub in (train, predict):
        add_device_option(sub)
        add_progress_option(sub)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return _train(args) if args.action == "train" else _predict(args)


def _train(args: argparse.Namespace) -> int:
    from prlkit.eval.folds import labelled_lesions, split_development
    from prlkit.report.plots import plot_training_curves
    from prlkit.segment.train import train_segmentation
    from prlkit.segment.volumes import load_segment_volume
    from prlkit.train.checkpoint import discard_resume_state
    from prlkit.train.loop import resolve_device

    config = with_split_overrides(config_from_args(args), val_fraction=args.val_fraction, seed=args.seed)
    cohort = checked_cohort(args.dataset, config)
    out: Path = args.out
    require_empty_output(out, args.resume)
    volumes = [load_segment_volume(files, config) for files in cohort.sessions]
    lesions = pd.concat([v.lesions.assign(participant_id=v.session.files.participant_id) for v in volumes],
                        ignore_index=True)
    labelled = labelled_lesions(lesions)
    if labelled.empty:
        raise PrlkitError(f"{args.dataset}: no labelled lesions to train on (rim labels are needed)")
    _, val_rows = split_development(labelled, val_fraction=config.split.val_fraction, by="participant",
                                    seed=config.split.seed)
    val_ids = set(labelled.loc[val_rows, "participant_id"])
    is_val = [v.session.files.participant_id in val_ids for v in volumes]
    log.info("training on %d sessions, validating on %d", is_val.count(False), is_val.count(True))
    model, result = train_segmentation([v for v, val in zip(volumes, is_val) if not val],
                                       [v for v, val in zip(volumes, is_val) if val], config, out / "runs",
                                       resolve_device(args.device), resume=args.resume,
                                       progress=not args.no_progress)
    save_config(config, out / "config.yaml")
    split = pd.DataFrame({"participant_id": [v.session.files.participant_id for v in volumes],
                          "session_id": [v.session.files.session_id or "" for v in volumes],
                          "split": ["val" if val else "train" for val in is_val]})
    write_text_atomic(out / "split.tsv", split.to_csv(sep="\t", index=False))
    plot_training_curves({"prlseg": (result.history, result.best_epoch)}, out / "training_curves.png")
    model.save(out)
    discard_resume_state(out / "runs")  # the model is complete: nothing left to resume
    print(json.dumps({k: v for k, v in model.training.items() if k != "stages"} | {"threshold": model.threshold,
                                                                                 "out": str(out)}))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from prlkit.segment.outputs import load_segmentation_models, predict_segmentation
    from prlkit.train.loop import resolve_device

    models = load_segmentation_models(args.model)
    cohort = checked_cohort(args.dataset, Config(qsm_unit=args.qsm_unit))
    sessions = read_as_trained(cohort.sessions, models.models[0].config, args.phase_sign, single_session=False)
    metrics = predict_segmentation(sessions, models, args.out, resolve_device(args.device), not args.no_progress,
                                   source=Path(args.dataset))
    if metrics is not None:
        print(metrics.to_string(index=False))
    print(f"outputs in {args.out / 'derivatives' / 'prlkit'}")
    return 0
