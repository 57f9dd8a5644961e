"""`prlkit report FOLDER`: one self-contained HTML page of a cv run or of a predict run."""

from __future__ import annotations

import argparse
from pathlib import Path

from prlkit.errors import PrlkitError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write one self-contained HTML report of a cv or predict output folder",
        description="For a `prlkit cv` folder: the result tables (mean ± SD over folds), ROC/PR curves, count "
        "scatter, DeLong/McNemar tests, subject-level agreement, review workload and the config. For a "
        "`prlkit predict` folder (images from the dataset it recorded, or --dataset): a subjects table, a "
        "review list and per-session galleries of lesions ranked by probability (QSM and FLAIR in three planes, "
        "lesion outlined); the gallery images are also written to <report>_lesions/. Images are embedded, so "
        "the one file can be opened offline or shared.",
    )
    parser.add_argument("folder", type=Path, help="output folder of prlkit cv or prlkit predict")
    parser.add_argument("--dataset", type=Path, help="predict reports: the BIDS folder or manifest that was "
                        "predicted (default: the one predict recorded in derivatives/prlkit/dataset_description.json)")
    parser.add_argument("--out", type=Path, help="HTML file to write (default: FOLDER/report.html)")
    parser.add_argument("--top", type=int, default=5, help="predict reports: besides every Rim+ call, review the N "
                        "most probable lesions of each session (default 5)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prlkit.report.pages import write_report

    if args.top < 0:
        raise PrlkitError(f"--top must be >= 0, not {args.top}")
    print(f"wrote {write_report(args.folder, args.out, args.dataset, args.top)}")
    return 0
