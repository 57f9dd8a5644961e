"""`prlkit compare DIR1 DIR2 ... --out DIR`: one table from cv runs that used the same folds."""

from __future__ import annotations

import argparse
from pathlib import Path

from prlkit.errors import InputFileError, PrlkitError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="merge prlkit cv runs made on the same folds into one comparison table",
        description="Reads folds.tsv and oof_predictions.tsv of each run (the folds must be identical), "
        "and writes results.md/json, per_fold_metrics.tsv, cv_curves.png, counts.png and calibration.png "
        "for all methods together, with DeLong and McNemar tests (Holm-adjusted) and participant-level bootstrap "
        "CIs against --reference.",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="prlkit cv output folders")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--reference", help="method the others are tested against (default: the first)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from prlkit.eval.folds import load_folds
    from prlkit.eval.predictions import read_predictions
    from prlkit.eval.results import summarise, write_results
    from prlkit.report.plots import write_cv_figures

    first_folds, tables = None, []
    for run_dir in args.runs:
        for name in ("folds.tsv", "oof_predictions.tsv"):
            if not (run_dir / name).is_file():
                raise InputFileError(run_dir / name, "missing: not a finished prlkit cv folder")
        folds = load_folds(run_dir / "folds.tsv").sort_values("participant_id").reset_index(drop=True)
        if first_folds is None:
            first_folds = folds
        elif not folds[["participant_id", "fold"]].equals(first_folds[["participant_id", "fold"]]):
            raise InputFileError(run_dir / "folds.tsv",
                                 f"folds differ from those of {args.runs[0]}; rerun with --folds")
        tables.append(read_predictions(run_dir / "oof_predictions.tsv"))
    oof = pd.concat(tables, ignore_index=True)
    duplicated = oof.groupby("method")["lesion_row"].apply(lambda rows: not rows.is_unique)
    if duplicated.any():
        raise PrlkitError(f"method(s) {', '.join(duplicated[duplicated].index)} appear in more than one run")
    methods = list(dict.fromkeys(oof["method"]))
    reference = args.reference or methods[0]
    if reference not in methods:
        raise PrlkitError(f"--reference {reference} is not among the runs' methods ({', '.join(methods)})")
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(summarise(oof, reference) | {"settings": run_settings(args.runs, methods)}, args.out)
    write_cv_figures(oof, args.out)
    print((args.out / "results.md").read_text())
    return 0


def run_settings(runs: list, methods: list[str]) -> dict:
    """Each method's profile and deviations, as its cv run's results.json recorded them (runs made before
    prlkit recorded them give none, and the table says "?")."""
    import json

    settings: dict = {}
    for run_dir in runs:
        path = run_dir / "results.json"
        recorded = json.loads(path.read_text()).get("settings", {}) if path.is_file() else {}
        settings |= {method: value for method, value in recorded.items() if method in methods}
    return settings
