"""`prlkit predict`: Rim+ probability for every lesion of new sessions, as BIDS derivatives."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from prlkit.commands.common import (
    add_device_option,
    add_progress_option,
    add_qsm_unit_option,
    add_susceptibility_options,
    cohort_error,
    read_as_trained,
)
from prlkit.data.bids import SessionFiles
from prlkit.errors import PrlkitError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict Rim+ probabilities for new sessions with a trained model",
        description="Run a `prlkit train` or `prlkit segment train` model, or the fold ensemble of a `prlkit cv` "
        "run (mean probability, mean fold threshold; prlseg: a cv participant by its held-out fold's model), "
        "on a BIDS folder / manifest or on one session given by --qsm/--flair/--lesions. "
        "Writes <out>/derivatives/prlkit/: per session _desc-rim_probseg, _desc-rim_dseg (+ .tsv) and _lesions.tsv, "
        "and subjects.tsv (predicted and expected Rim+ count, chronic_active = at least 4 Rim+).",
    )
    parser.add_argument("dataset", nargs="?", help="BIDS folder or manifest .csv (or use --qsm/--flair/--lesions)")
    parser.add_argument("--model", required=True, type=Path, help="prlkit train folder or prlkit cv folder")
    parser.add_argument("--method", help="with a cv folder: which method's fold models, prlseg included "
                        "(default: its reference)")
    parser.add_argument("--out", required=True, type=Path, help="output root (derivatives/prlkit is created in it)")
    parser.add_argument("--participant-label", "--participant_label", nargs="+", metavar="LABEL", help="only these "
                        "participants (with or without 'sub-'), e.g. one per cluster job")
    parser.add_argument("--qsm", type=Path, help="single-session mode: QSM NIfTI (ppm)")
    parser.add_argument("--flair", type=Path, help="single-session mode: FLAIR NIfTI")
    parser.add_argument("--lesions", type=Path, help="single-session mode: lesion map NIfTI")
    parser.add_argument("--subject", default="sub-01", help="single-session mode: participant id (default sub-01)")
    add_qsm_unit_option(parser)
    add_susceptibility_options(parser, choose_input=False)
    add_device_option(parser)
    add_progress_option(parser)
    parser.add_argument("--skip-invalid", action="store_true", help="predict the valid sessions and list the invalid "
                        "ones in derivatives/prlkit/skipped_sessions.tsv (participant, session, file, problem) "
                        "instead of stopping at the first")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prlkit.data.bids import PrlkitWarning, discover_cohort
    from prlkit.predict import load_ensemble, predict_sessions
    from prlkit.segment.predict import load_segmentation_predictor, names_segmentation_models
    from prlkit.train.loop import resolve_device

    single = [args.qsm, args.flair, args.lesions]
    if any(single):
        if args.dataset or not all(single):
            raise PrlkitError("single-session mode needs all of --qsm, --flair and --lesions, and no dataset")
        subject = args.subject if args.subject.startswith("sub-") else f"sub-{args.subject}"
        sessions = [SessionFiles(subject, None, *(p if p.is_file() else None for p in single),
                                 qsm_unit=args.qsm_unit, expected=dict(zip(("qsm", "flair", "lesions"), single)))]
    elif args.dataset:
        cohort = discover_cohort(args.dataset, args.qsm_unit)
        sessions = cohort.sessions
        if args.participant_label:
            wanted = {label if label.startswith("sub-") else f"sub-{label}" for label in args.participant_label}
            missing = sorted(wanted - {s.participant_id for s in sessions})
            if missing:
                raise PrlkitError(f"{args.dataset}: no such participant(s) {', '.join(missing)}")
            sessions = [s for s in sessions if s.participant_id in wanted]
        elif cohort.problems and args.skip_invalid:
            for problem in cohort.problems:
                warnings.warn(problem, PrlkitWarning, stacklevel=1)
        elif cohort.problems:
            raise PrlkitError(f"{cohort_error(cohort.problems)} (--skip-invalid predicts the others)")
    else:
        raise PrlkitError("give a dataset, or --qsm, --flair and --lesions for one session")
    if names_segmentation_models(args.model, args.method):
        ensemble = load_segmentation_predictor(args.model)
    else:
        ensemble = load_ensemble(args.model, args.method)
    sessions = read_as_trained(sessions, ensemble.config, args.phase_sign, single_session=any(single))
    subjects = predict_sessions(sessions, ensemble, args.out, resolve_device(args.device), not args.no_progress,
                                args.skip_invalid, source=Path(args.dataset) if args.dataset else None)
    print(subjects.to_string(index=False))
    return 0
