"""`prlkit simulate`: write a synthetic MS cohort (BIDS, physics-based QSM and phase) with known truth."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from prlkit.commands.common import DeprecatedAlias, add_progress_option, add_synth_profile_option
from prlkit.errors import PrlkitError
from prlkit.synth.cohort import write_cohort
from prlkit.synth.phase import DEFAULT_PHASE_SIGN, PHASE_SIGNS
from prlkit.synth.profiles import PROFILES, get_profile

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate", help="write a synthetic MS cohort with physics-based QSM and phase and known rim labels",
        description="Write a BIDS cohort (QSM, T2*-weighted phase, FLAIR, T1w, lesion instance maps with rim "
                    "labels) to OUT, plus sourcedata/truth.tsv with every lesion's generating parameters.")
    parser.add_argument("out", type=Path, metavar="OUT", help="output folder (must not exist or be empty)")
    parser.add_argument("--subjects", type=int, default=30, help="number of participants (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same cohort")
    add_synth_profile_option(parser)
    parser.add_argument("--profile", dest="synth_profile", choices=sorted(PROFILES), action=DeprecatedAlias,
                        replacement="--synth-profile", help="deprecated alias of --synth-profile, removed in the "
                        "next release")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), help="override the voxel grid")
    parser.add_argument("--preview", action="store_true",
                        help="also write OUT/sourcedata/preview.png, a montage of Rim+ and Rim- lesions")
    parser.add_argument("--phase-sign", choices=sorted(PHASE_SIGNS), default=DEFAULT_PHASE_SIGN,
                        help="sign convention of the part-phase images: 'negative' (paramagnetic = negative phase, "
                             "veins dark) or 'positive'; default %(default)s, prlkit's choice (docs/data.md)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2); results do not depend on it")
    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise PrlkitError(f"--jobs {args.jobs}: need at least 1")
    profile = replace(get_profile(args.synth_profile, tuple(args.shape) if args.shape else None),
                      phase_sign=args.phase_sign)
    truth = write_cohort(args.out, args.subjects, args.seed, profile, jobs=args.jobs, preview=args.preview,
                         progress=not args.no_progress)
    log.info("wrote %d subjects, %d lesions (%d Rim+) to %s", args.subjects, len(truth), int(truth["rim"].sum()),
             args.out)
    if args.preview:
        log.info("preview: %s", Path(args.out) / "sourcedata" / "preview.png")
    return 0
