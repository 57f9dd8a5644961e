"""`prlkit prepare DATASET --out DIR`: register every modality of each session onto one reference grid."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from prlkit.commands.common import add_progress_option, checked_cohort

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare", help="register QSM, FLAIR, T1w and lesion maps onto one grid per session (needs SimpleITK)",
        description="Rigidly register every modality of each session to a reference image (Mattes mutual "
                    "information), resample QSM linearly and lesion maps by nearest neighbour (lesion ids kept), "
                    "optionally N4-correct FLAIR/T1w (never QSM), and write a new BIDS folder with QC figures. "
                    "Lesion maps are taken to lie in FLAIR space unless their grid matches another image. "
                    "Needs the optional extra: pip install \"prlkit[registration]\".")
    parser.add_argument("dataset", help="BIDS folder or manifest .csv")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="new output BIDS folder (must not exist or be empty; never inside DATASET)")
    parser.add_argument("--reference", choices=("T1w", "FLAIR", "Chimap"),
                        help="grid every image is resampled onto (default: T1w where present, else FLAIR)")
    parser.add_argument("--n4", action="store_true", help="N4 bias-field correction of FLAIR and T1w (never QSM)")
    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prlkit.prep.pipeline import DERIVATIVE, PrepareSettings, prepare_cohort

    cohort = checked_cohort(args.dataset)
    prepare_cohort(cohort, args.out, PrepareSettings(reference=args.reference, n4=args.n4),
                            progress=not args.no_progress)
    log.info("prepared %d session(s) into %s; report, transforms and QC figures in %s", len(cohort.sessions),
             args.out, Path(args.out) / DERIVATIVE)
    return 0
