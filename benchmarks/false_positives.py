"""Which lesions a trained method ranks wrongly, by the simulator's truth: Rim- lesions by confounder and
location, Rim+ lesions by rim strength, coverage, thickness, size and location, and the top-ranked Rim-.

Reads runs of benchmarks/transfer.py (DIR/<method>/pred-<test cohort folder name>) and the test cohort's
`sourcedata/truth.tsv` (written by `prlkit simulate`: every lesion's generating parameters). A lesion's
score is its percentile among the cohort's scored lesions (0 = ranked last, 1 = first), so methods with
different probability scales compare; several DIRs (training seeds) are averaged. Only lesions that every
run of every method scored are kept (excluded ones, e.g. under `lesions.min_voxels`, have no score).
Rim- rows: a high mean percentile = the method mistakes that kind of lesion for Rim+; Rim+ rows: a low
one = it misses that kind; among Rim- lesions also the Spearman correlation of the percentile with the
core's susceptibility offset and the volume.

Usage: PYTHONPATH=src python benchmarks/false_positives.py --cohort TEST --runs DIR [DIR ...]
       --methods aprl,frodo_simpretrained [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

from transfer import read_predictions

KEYS = ["participant_id", "index"]
RIM_NEGATIVE_GROUPS = ("confounder", "location")
RIM_POSITIVE_GROUPS = ("rim_strength_ppm", "rim_coverage", "rim_thickness", "volume_voxels", "location")
BINNED = ("rim_strength_ppm", "rim_coverage", "volume_voxels")  # continuous: grouped in tertiles
RIM_NEGATIVE_TRENDS = ("core_delta_ppm", "volume_voxels")  # Spearman with the score among Rim- lesions


def percentile_scores(cohort_name: str, runs: list[Path], method: str) -> pd.DataFrame:
    """Per lesion (KEYS) scored in every run that holds `method`'s predictions of the cohort, its score
    percentile in each, one column per run; error when no run has them."""
    columns = []
    for number, run in enumerate(runs):
        folder = run / method / f"pred-{cohort_name}"
        if not folder.is_dir():
            continue
        predicted = read_predictions(folder)[KEYS + ["probability"]].dropna(subset=["probability"])
        ranked = predicted.assign(probability=predicted["probability"].rank(pct=True))
        columns.append(ranked.rename(columns={"probability": f"run{number}"}).set_index(KEYS))
    if not columns:
        raise SystemExit(f"{method}: no predictions of {cohort_name} under any of {', '.join(map(str, runs))}")
    return pd.concat(columns, axis=1, join="inner")


def scored_lesions(cohort: Path, runs: list[Path], methods: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The truth table of the lesions every run scored, with each method's seed-averaged percentile as a
    column named after it; and how many runs each method's column averages."""
    truth = pd.read_csv(cohort / "sourcedata" / "truth.tsv", sep="\t")
    frame, n_runs = truth.set_index(KEYS), {}
    for method in methods:
        scores = percentile_scores(cohort.name, runs, method)
        n_runs[method] = scores.shape[1]
        frame = frame.join(scores.mean(axis=1).rename(method), how="inner")
    return frame.reset_index(), n_runs


def grouped_means(frame: pd.DataFrame, methods: list[str], by: str) -> pd.DataFrame:
    """Mean percentile of each method and the lesion count per value of `by` (tertiles when continuous)."""
    key = pd.qcut(frame[by], 3, duplicates="drop") if by in BINNED else frame[by]
    grouped = frame.groupby(key, observed=True)
    return grouped[methods].mean().assign(lesions=grouped.size())


def rim_negative_trends(frame: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Spearman correlation of each method's percentile with RIM_NEGATIVE_TRENDS among Rim- lesions: what a
    method mistakes for a rim (e.g. a dark core: negative with core_delta_ppm; size: positive with volume)."""
    negatives = frame[frame["rim"] == 0]
    return pd.DataFrame({column: [spearmanr(negatives[m], negatives[column]).statistic for m in methods]
                         for column in RIM_NEGATIVE_TRENDS}, index=pd.Index(methods, name="Spearman, Rim-"))


def top_false_positives(frame: pd.DataFrame, method: str) -> pd.Series:
    """Confounder counts of the Rim- lesions among the method's top k, k = the number of Rim+ lesions."""
    top = frame.nlargest(int(frame["rim"].sum()), method)
    return top.loc[top["rim"] == 0, "confounder"].value_counts()


def markdown_table(table: pd.DataFrame) -> str:
    """A grouped table as markdown: the group in the first column, floats to 3 decimals."""
    cells = [[str(group)] + [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
             for group, row in zip(table.index, table.itertuples(index=False))]
    header = [str(table.index.name)] + list(map(str, table.columns))
    return "\n".join("| " + " | ".join(row) + " |" for row in [header, ["---"] * len(header)] + cells)


def markdown(frame: pd.DataFrame, methods: list[str], n_runs: dict[str, int]) -> str:
    """Summary line per method, then the grouped tables of Rim- and Rim+ lesions and the top-k Rim-."""
    lines = [f"{len(frame)} lesions scored by every run ({int(frame['rim'].sum())} Rim+)", ""]
    for method in methods:
        lines.append(f"- {method} ({n_runs[method]} run(s), mean percentile): ROC-AUC "
                     f"{roc_auc_score(frame['rim'], frame[method]):.3f}, PR-AUC "
                     f"{average_precision_score(frame['rim'], frame[method]):.3f}; Rim- among its top k: "
                     + (", ".join(f"{name} {count}" for name, count in top_false_positives(frame, method).items())
                        or "none"))
    lines += ["", "Rim-: Spearman of the percentile with", "", markdown_table(rim_negative_trends(frame, methods))]
    for label, groups in ((0, RIM_NEGATIVE_GROUPS), (1, RIM_POSITIVE_GROUPS)):
        subset = frame[frame["rim"] == label]
        for by in groups:
            lines += ["", f"Rim{'+' if label else '-'} by {by}", "",
                      markdown_table(grouped_means(subset, methods, by))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True, help="test cohort of `prlkit simulate`")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="benchmarks/transfer.py output folders")
    parser.add_argument("--methods", required=True, help="comma-separated methods in those runs")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    frame, n_runs = scored_lesions(args.cohort, args.runs, methods)
    if frame.empty or frame["rim"].nunique() < 2:
        raise SystemExit(f"{args.cohort}: the lesions every run scored are not both Rim+ and Rim-")
    text = markdown(frame, methods, n_runs)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
