"""`prlkit compare DIR1 DIR2 ... --out DIR`: one table from cv runs that used the same folds."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from prlkit.errors import InputFileError, PrlkitError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="merge prlkit cv runs made on the same folds into one comparison table",
        description="Reads folds.tsv and oof_predictions.tsv of each run (the folds must be identical), "
        "and writes results.md/json, per_fold_metrics.tsv, cv_curves.png, counts.png and calibration.png "
        "for all methods together (runs that read QSM and phase of one cohort: each method as `name (qsm)` and "
        "`name (phase)`), with DeLong and McNemar tests (Holm-adjusted) and participant-level bootstrap "
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
    labels = method_labels(args.runs)
    for table, label in zip(tables, labels):
        table["method"] = table["method"].map(label)
    oof = pd.concat(tables, ignore_index=True)
    duplicated = oof.groupby("method")["lesion_row"].apply(lambda rows: not rows.is_unique)
    if duplicated.any():
        raise PrlkitError(f"method(s) {', '.join(duplicated[duplicated].index)} appear in more than one run")
    methods = list(dict.fromkeys(oof["method"]))
    reference = args.reference or methods[0]
    if reference not in methods:
        raise PrlkitError(f"--reference {reference} is not among the runs' methods ({', '.join(methods)})")
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(summarise(oof, reference) | {"settings": run_settings(args.runs, labels, methods)}, args.out)
    write_cv_figures(oof, args.out)
    print((args.out / "results.md").read_text())
    return 0


def susceptibility_of(run_dir: Path) -> str:
    """The susceptibility image a cv run read (its config.yaml; `qsm` for runs made before prlkit read phase)."""
    from prlkit.config import load_config

    path = run_dir / "config.yaml"
    return load_config(path).susceptibility if path.is_file() else "qsm"


def method_labels(runs: list[Path]) -> list[Callable[[str], str]]:
    """Per run, method name -> its name in the merged table: the name itself, or, when the runs read different
    susceptibility images (QSM and phase of one cohort), the name with the image, e.g. `frodo (phase)`."""
    sources = [susceptibility_of(run_dir) for run_dir in runs]
    if len(set(sources)) == 1:
        return [lambda method: method for _ in runs]
    return [lambda method, source=source: f"{method} ({source})" for source in sources]


def run_settings(runs: list[Path], labels: list[Callable[[str], str]], methods: list[str]) -> dict:
    """Each method's profile and deviations, as its cv run's results.json recorded them (runs made before
    prlkit recorded them give none, and the table says "?"); `labels` as from `method_labels`."""
    import json

    settings: dict = {}
    for run_dir, label in zip(runs, labels):
        path = run_dir / "results.json"
        recorded = json.loads(path.read_text()).get("settings", {}) if path.is_file() else {}
        settings |= {label(method): value for method, value in recorded.items() if label(method) in methods}
    return settings
