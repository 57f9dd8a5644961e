"""`prlkit convert-checkpoint SRC.pt --out DIR`: the authors' FRODO checkpoints as prlkit model files."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
from pathlib import Path

from prlkit.commands.common import add_config_options, config_from_args, require_empty_output

log = logging.getLogger("prlkit")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert-checkpoint",
        help="turn a checkpoint of the authors' FRODO scripts into a prlkit model folder",
        description="Read a state dict saved by the authors' code (veronicapignedoli/FRODO): fold_k.pt from "
        "train.py becomes a prlkit model folder (model.safetensors + model.json, `paper` settings) for "
        "`prlkit predict` and `prlkit report`; best.pt from train_ssl.py (the two pretrained encoders) becomes "
        "encoders.safetensors for `prlkit train --pretrained-encoders`. The file is read with "
        "torch.load(weights_only=True): nothing stored in it runs. Their probabilities are not calibrated.",
    )
    parser.add_argument("checkpoint", type=Path, metavar="SRC.pt",
                        help="fold_k.pt (train.py) or best.pt (train_ssl.py)")
    parser.add_argument("--out", required=True, type=Path, help="new output folder")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="the fold's decision threshold t (Rim+ if p > t), e.g. from the `threshold` column of "
                             "their evaluate.py's lesion_level_metrics.csv (default 0.5)")
    add_config_options(parser, default_profile="paper")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from prlkit.atomic import atomic_path, write_text_atomic
    from prlkit.errors import PrlkitError
    from prlkit.models import authors

    if not 0.0 <= args.threshold <= 1.0:
        raise PrlkitError(f"--threshold {args.threshold}: must lie in [0, 1]")
    config = config_from_args(args)
    state = authors.read_checkpoint(args.checkpoint)
    frodo = authors.network_config(state, args.checkpoint, dropout=config.frodo.dropout)
    converted = authors.convert_state_dict(state, args.checkpoint)
    provenance = {"source": str(args.checkpoint), "sha256": hashlib.sha256(args.checkpoint.read_bytes()).hexdigest(),
                  "converted_from": "veronicapignedoli/FRODO state dict"}
    require_empty_output(args.out, resume=False)
    if authors.is_encoder_only(state):
        _check_encoders(converted, frodo, args.checkpoint)
        args.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.out / "encoders.safetensors") as tmp:
            save_file(converted, str(tmp))
        write_text_atomic(args.out / "encoders.json", json.dumps(provenance | {"frodo": dataclasses.asdict(frodo)},
                                                                 indent=2) + "\n")
        log.info("wrote the pretrained encoders to %s: fine-tune with `prlkit train DATASET --profile paper "
                 "--pretrained-encoders %s`", args.out, args.out / "encoders.safetensors")
        return 0
    _trained_model(converted, frodo, config, args.threshold, provenance, args.checkpoint).save(args.out)
    log.info("wrote %s (base width %d, threshold p > %.2f, uncalibrated probabilities)", args.out, frodo.base_width,
             args.threshold)
    return 0


def _check_encoders(converted: dict, frodo, source: Path) -> None:
    """The encoder weights must fit the network their stem implies (a one-line error otherwise)."""
    from prlkit.errors import InputFileError, PrlkitError
    from prlkit.models.frodo import FrodoNet

    try:
        FrodoNet(frodo).load_pretrained_state_dict(converted)
    except PrlkitError as error:
        raise InputFileError(source, str(error)) from None


def _trained_model(converted: dict, frodo, config, threshold: float, provenance: dict, source: Path):
    """The converted network as a TrainedModel: identity calibration, the authors' rule p > t."""
    from prlkit.errors import InputFileError
    from prlkit.eval.calibration import PriorShift
    from prlkit.eval.metrics import strictly_above
    from prlkit.methods.finalize import json_ready
    from prlkit.methods.trained import TrainedModel
    from prlkit.models.frodo import FrodoNet

    net = FrodoNet(frodo)
    try:
        net.load_state_dict(converted, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise InputFileError(source, f"weights do not fit the authors' MultiModalClassifier ({first})") from None
    return TrainedModel(
        network="frodo", method="frodo", module=net.eval(), model_config=json_ready(dataclasses.asdict(frodo)),
        config=dataclasses.replace(config, frodo=frodo), threshold=strictly_above(threshold),
        calibrator=PriorShift(0.5, 0.5), training=provenance | {"threshold_raw": threshold},
    )
