"""`prlkit validate DATASET`: check a cohort against the file contract and summarise it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from prlkit.commands.common import add_config_options, config_from_args, discovered
from prlkit.data.validate import validate_cohort


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a BIDS folder or manifest CSV and summarise its lesions",
        description="Check every session of a cohort (files, grids, labels, rim tables) and print a "
        "summary. Exit status 1 if any problem was found.",
    )
    parser.add_argument("dataset", help="BIDS folder or manifest .csv")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--connectivity", type=int, choices=(6, 18, 26), help="override lesions.connectivity")
    parser.add_argument("--min-voxels", type=int, help="override lesions.min_voxels")
    parser.add_argument("--min-volume-mm3", type=float, help="override lesions.min_volume_mm3")
    add_config_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    lesion_config = config.lesions
    overrides = {"connectivity": args.connectivity, "min_voxels": args.min_voxels,
                 "min_volume_mm3": args.min_volume_mm3}
    lesion_config = dataclasses.replace(lesion_config, **{k: v for k, v in overrides.items() if v is not None})
    report = validate_cohort(discovered(args.dataset, config), lesion_config)
    if args.json:
        payload = {
            "totals": report.totals(),
            "sessions": report.sessions.to_dict(orient="records"),
            "problems": report.problems,
            "warnings": report.warnings,
        }
        print(json.dumps(payload, indent=2))
    else:
        print(report.sessions.to_string(index=False))
        print()
        print("  ".join(f"{key}={value}" for key, value in report.totals().items()))
        for warning in report.warnings:
            print(f"prlkit: warning: {warning}", file=sys.stderr)
    for problem in report.problems:
        print(f"prlkit: error: {problem}", file=sys.stderr)
    return 0 if report.ok else 1
