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
from prlkit.synth.real_anatomy import AnatomySource

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
    parser.add_argument("--anatomy", type=Path, nargs="+", metavar="T1W",
                        help="draw the participants on these real brains (skull-stripped T1w images on a 1 mm grid, "
                             "used in turn) instead of the phantom's; tissues are read from the T1w intensities "
                             "(README, *The synthetic cohort*)")
    parser.add_argument("--anatomy-lesions", type=Path, nargs="+", metavar="MASK",
                        help="the lesion masks of the --anatomy images, in the same order: their lesions are "
                             "filled in as white matter, so the simulated lesions are the only ones")
    parser.add_argument("--preview", action="store_true",
                        help="also write OUT/sourcedata/preview.png, a montage of Rim+ and Rim- lesions")
    parser.add_argument("--phase-sign", choices=sorted(PHASE_SIGNS), default=DEFAULT_PHASE_SIGN,
                        help="sign convention of the part-phase images: 'negative' (paramagnetic = negative phase, "
                             "veins dark) or 'positive'; default %(default)s, prlkit's choice (docs/data.md)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2); results do not depend on it")
    add_progress_option(parser)
    parser.set_defaults(func=run)


def anatomy_sources(args: argparse.Namespace) -> tuple[AnatomySource, ...]:
    """(T1w, lesion mask or None) pairs of --anatomy and --anatomy-lesions, as strings for the workers."""
    if not args.anatomy:
        if args.anatomy_lesions:
            raise PrlkitError("--anatomy-lesions needs --anatomy (the T1w images the masks belong to)")
        return ()
    if args.shape:
        raise PrlkitError("--shape and --anatomy exclude each other: with --anatomy the grid is the T1w's")
    masks = args.anatomy_lesions or [None] * len(args.anatomy)
    if len(masks) != len(args.anatomy):
        raise PrlkitError(f"--anatomy-lesions: {len(masks)} mask(s) for {len(args.anatomy)} --anatomy image(s); "
                          "give one per image, in the same order")
    return tuple((str(t1w), None if mask is None else str(mask)) for t1w, mask in zip(args.anatomy, masks))


def run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise PrlkitError(f"--jobs {args.jobs}: need at least 1")
    profile = replace(get_profile(args.synth_profile, tuple(args.shape) if args.shape else None),
                      phase_sign=args.phase_sign)
    truth = write_cohort(args.out, args.subjects, args.seed, profile, jobs=args.jobs, preview=args.preview,
                         progress=not args.no_progress, anatomies=anatomy_sources(args))
    log.info("wrote %d subjects, %d lesions (%d Rim+) to %s", args.subjects, len(truth), int(truth["rim"].sum()),
             args.out)
    if args.preview:
        log.info("preview: %s", Path(args.out) / "sourcedata" / "preview.png")
    return 0
