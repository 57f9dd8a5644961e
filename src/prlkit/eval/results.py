"""From out-of-fold predictions to the papers' tables: per-fold metrics, mean ± SD, tests, subject level."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prlkit.atomic import write_text_atomic
from prlkit.data.bids import PrlkitWarning
from prlkit.errors import PrlkitError
from prlkit.eval.calibration import brier_score
from prlkit.eval.metrics import (
    lesion_metrics,
    operating_point_at_sensitivity,
    operating_point_at_specificity,
    summarize_folds,
    threshold_metrics,
)
from prlkit.eval.stats import delong_test, mcnemar_test, subject_counts, subject_level_summary

TABLE_METRICS = ["roc_auc", "pr_auc", "proc_auc", "f1", "sensitivity", "specificity", "ppv", "npv", "accuracy"]


def per_fold_metrics(oof: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, fold): threshold-free metrics and those at the fold's validation threshold.

    A fold whose test lesions are all of one class has undefined AUCs: NaN with a warning.
    """
    rows = []
    for (method, fold), group in oof.groupby(["method", "fold"], sort=False):
        y, p, threshold = group["label"].to_numpy(), group["probability"].to_numpy(), group["threshold"].iloc[0]
        try:
            metrics = lesion_metrics(y, p, threshold)
        except PrlkitError as error:
            warnings.warn(f"{method} fold {fold}: {error}; its AUCs are undefined", PrlkitWarning, stacklevel=2)
            metrics = {"n_lesions": len(y), "n_rim": int(y.sum()), **threshold_metrics(y, p, threshold)}
        rows.append({"method": method, "fold": fold, "threshold": threshold, **metrics})
    return pd.DataFrame(rows)


def summarise(oof: pd.DataFrame, reference: str, chronic_active_min: int = 4) -> dict[str, Any]:
    """Everything results.md/json report, computed from the out-of-fold predictions alone."""
    from prlkit.eval.experiment import paired_by_lesion  # imports torch: not needed to read results

    methods = list(dict.fromkeys(oof["method"]))
    per_fold = per_fold_metrics(oof)
    summary = {
        method: summarize_folds(per_fold[per_fold["method"] == method].drop(columns="method")).to_dict(orient="index")
        for method in methods
    }
    comparisons = []
    for method in methods:
        if method == reference:
            continue
        y, p_ref, p_other, d_ref, d_other = paired_by_lesion(oof, reference, method)
        delong = delong_test(y, p_other, p_ref)
        mcnemar = mcnemar_test(y, d_other, d_ref)
        comparisons.append({"method": method, "reference": reference, "delong": dataclasses.asdict(delong),
                            "mcnemar": dataclasses.asdict(mcnemar)})  # fmt: skip
    subject, operating, specific = {}, {}, {}
    for method in methods:
        rows = oof[oof["method"] == method]
        counts = subject_counts(rows)
        subject[method] = subject_level_summary(counts, chronic_active_min)
        y, p = rows["label"].to_numpy(), rows["probability"].to_numpy()
        operating[method] = operating_point_at_sensitivity(y, p)
        specific[method] = operating_point_at_specificity(y, p) | {"brier": brier_score(y, p)}
    return {"reference": reference, "methods": methods, "per_fold": per_fold.to_dict(orient="records"),
            "summary": summary, "comparisons": comparisons, "subject_level": subject,
            "high_sensitivity_operating_point": operating, "high_specificity_operating_point": specific}  # fmt: skip


def mean_sd(cell: dict[str, float]) -> str:
    """'mean ± SD' of a summary cell (mean alone without SD, 'n/a' when undefined)."""
    mean, sd = cell.get("mean", math.nan), cell.get("sd", math.nan)
    return "n/a" if math.isnan(mean) else f"{mean:.3f} ± {sd:.3f}" if not math.isnan(sd) else f"{mean:.3f}"


def results_markdown(results: dict[str, Any]) -> str:
    """The papers' table shapes: methods as rows, metrics as mean ± SD over folds; then the tests."""
    settings = results.get("settings", {})
    lines = ["# Cross-validation results", "", "## Lesion level (mean ± SD over folds)", ""]
    lines += ["| method | profile | " + " | ".join(TABLE_METRICS) + " |", "|---|---|" + "---|" * len(TABLE_METRICS)]
    for method in results["methods"]:
        cells = [mean_sd(results["summary"][method].get(metric, {})) for metric in TABLE_METRICS]
        lines.append(f"| {method} | {settings.get(method, {}).get('profile', '?')} | " + " | ".join(cells) + " |")
    if results["comparisons"]:
        lines += ["", f"## Against {results['reference']} (pooled out-of-fold predictions)", "",
                  "| method | AUC | reference AUC | difference (95 % CI) | DeLong z | DeLong p | McNemar χ² | McNemar p |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in results["comparisons"]:
            d, m = row["delong"], row["mcnemar"]
            lines.append(f"| {row['method']} | {d['auc_a']:.3f} | {d['auc_b']:.3f} | {d['difference']:+.3f} "
                         f"({d['ci_low']:+.3f}, {d['ci_high']:+.3f}) | {d['z']:.2f} | {d['p_value']:.3g} | "
                         f"{m['statistic']:.2f} | {m['p_value']:.3g} |")  # fmt: skip
    lines += ["", "## Subject level", "",
              "| method | Pearson r (95 % CI), predicted count | MSE | r, expected count | chronic active (≥ 4) sens. / spec. | review at sens. ≥ 0.95 |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for method in results["methods"]:
        s, o = results["subject_level"][method], results["high_sensitivity_operating_point"][method]
        lines.append(f"| {method} | {s['count_pearson_r']:.3f} ({s['count_pearson_ci_low']:.3f}, {s['count_pearson_ci_high']:.3f}) "
                     f"| {s['count_mse']:.2f} | {s['expected_pearson_r']:.3f} | {s['patient_sensitivity']:.2f} / "
                     f"{s['patient_specificity']:.2f} | {o['n_review']:.0f} lesions ({100 * o['review_fraction']:.0f} %) |")  # fmt: skip
    lines += ["", "## Pooled operating point at specificity ≥ 0.95 (RimNet) and calibration", "",
              "| method | sensitivity | specificity | threshold | Brier score |", "|---|---|---|---|---|"]
    for method in results["methods"]:
        o = results["high_specificity_operating_point"][method]
        lines.append(f"| {method} | {o['sensitivity']:.3f} | {o['specificity']:.3f} | {o['threshold']:.3f} "
                     f"| {o['brier']:.3f} |")  # fmt: skip
    if settings:
        lines += ["", "## Settings that differ from the `paper` profile (the authors' code for the main method)", ""]
        for method in results["methods"]:
            deviations = settings.get(method, {}).get("deviations_from_paper")
            described = "unknown" if deviations is None else ", ".join(f"`{d}`" for d in deviations) or "none"
            lines.append(f"- {method}: {described}")
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], out_dir: Path) -> None:
    """results.json, results.md and per_fold_metrics.tsv (atomically)."""
    write_text_atomic(out_dir / "results.json", json.dumps(results, indent=2, default=_json_default) + "\n")
    write_text_atomic(out_dir / "results.md", results_markdown(results))
    write_text_atomic(out_dir / "per_fold_metrics.tsv", pd.DataFrame(results["per_fold"]).to_csv(sep="\t", index=False))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
