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
    pr_auc,
    roc_auc,
    summarize_folds,
    threshold_metrics,
)
from prlkit.eval.predictions import paired_by_lesion
from prlkit.eval.stats import (
    cluster_bootstrap,
    delong_test,
    holm_adjust,
    mcnemar_test,
    percentile_interval,
    subject_counts,
    subject_level_summary,
)

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


def summarise(oof: pd.DataFrame, reference: str, chronic_active_min: int = 4, n_bootstrap: int = 2000,
              bootstrap_seed: int = 0) -> dict[str, Any]:
    """Everything results.md/json report, computed from the out-of-fold predictions alone.

    Lesion-level tests (DeLong, McNemar; Holm-adjusted over the methods compared with `reference`)
    and, beside them, a participant-level bootstrap (`n_bootstrap` resamples, 0 to skip it).
    """
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
                            "mcnemar": dataclasses.asdict(mcnemar)})
    for test in ("delong", "mcnemar"):  # one family per test: every method against the same reference
        adjusted = holm_adjust([row[test]["p_value"] for row in comparisons]) if comparisons else []
        for row, p in zip(comparisons, adjusted):
            row[test]["p_holm"] = float(p)
    bootstrap = participant_bootstrap(oof, methods, reference, n_bootstrap, bootstrap_seed) if n_bootstrap else None
    subject, operating, specific, pooled = {}, {}, {}, {}
    for method in methods:
        rows = oof[oof["method"] == method]
        counts = subject_counts(rows)
        subject[method] = subject_level_summary(counts, chronic_active_min)
        y, p = rows["label"].to_numpy(), rows["probability"].to_numpy()
        pooled[method] = {"roc_auc": roc_auc(y, p), "pr_auc": pr_auc(y, p)}
        operating[method] = operating_point_at_sensitivity(y, p)
        specific[method] = operating_point_at_specificity(y, p) | {"brier": brier_score(y, p)}
    return {"reference": reference, "methods": methods, "n_folds": int(oof["fold"].nunique()),
            "per_fold": per_fold.to_dict(orient="records"), "summary": summary, "pooled": pooled,
            "comparisons": comparisons, "bootstrap": bootstrap, "subject_level": subject,
            "high_sensitivity_operating_point": operating, "high_specificity_operating_point": specific}


def seed_summary(oofs: dict[int, pd.DataFrame]) -> dict[str, Any]:
    """Mean ± SD over training seeds of each seed's mean over folds, per method and metric (`n`: the seeds
    that defined the metric); `oofs` maps each seed to its out-of-fold predictions on the same folds."""
    with warnings.catch_warnings():  # single-class folds warned once already, for the first seed
        warnings.simplefilter("ignore", PrlkitWarning)
        fold_means = pd.concat([per_fold_metrics(oof).drop(columns="fold").groupby("method", sort=False).mean()
                                .assign(seed=seed) for seed, oof in oofs.items()])
    summary = {method: summarize_folds(rows.drop(columns="seed")).to_dict(orient="index")
               for method, rows in fold_means.groupby(level="method", sort=False)}
    return {"seeds": list(oofs), "summary": summary}


def participant_bootstrap(oof: pd.DataFrame, methods: list[str], reference: str, n_resamples: int = 2000,
                          seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """95 % percentile intervals of each method's pooled ROC-AUC and PR-AUC and of its ROC-AUC difference
    against `reference`, resampling participants (`prlkit.eval.stats.cluster_bootstrap`)."""
    table = oof.pivot(index="lesion_row", columns="method", values="probability")[methods]
    if table.isna().any().any():
        raise PrlkitError("participant bootstrap: the methods were not evaluated on the same lesions")
    lesions = oof.drop_duplicates("lesion_row").set_index("lesion_row").loc[table.index]
    boot = cluster_bootstrap(lesions["label"].to_numpy(), table.to_numpy(), lesions["participant_id"].to_numpy(),
                             n_resamples, seed)
    ref = methods.index(reference)
    out: dict[str, Any] = {"resampled": "participants", "n_resamples": boot.n_resamples, "n_skipped": boot.n_skipped,
                           "seed": boot.seed, "confidence": confidence, "methods": {}}
    for j, method in enumerate(methods):
        out["methods"][method] = {
            "roc_auc_ci": percentile_interval(boot.roc_auc[:, j], confidence),
            "pr_auc_ci": percentile_interval(boot.pr_auc[:, j], confidence),
            **({} if j == ref else {"roc_auc_difference_ci": percentile_interval(
                boot.roc_auc[:, j] - boot.roc_auc[:, ref], confidence)}),
        }
    return out


def variant_switches(deviations: list[str] | None) -> list[str]:
    """What tells one variant of a method from another in a table row: the network switches among its
    deviations from the paper (`network.*`, `frodo.*`, without the section) and a learning rate other than
    the paper's (`lr=...`, e.g. the main method's own `quick` steps)."""
    switches = [d.split(".", 1)[1] for d in deviations or () if d.startswith(("network.", "frodo."))]
    rates = [d.split("=", 1)[1] for d in deviations or ()
             if d.startswith(("finetune.learning_rate=", "segment.train.learning_rate="))]
    return switches + [f"lr={rate}" for rate in rates]


def row_label(method: str, settings: dict[str, Any]) -> str:
    """The method's name with its variant switches, e.g. `qsmrimnet [features=first_order]`."""
    switches = variant_switches(settings.get(method, {}).get("deviations_from_paper"))
    return f"{method} [{', '.join(switches)}]" if switches else method


def mean_sd(cell: dict[str, float] | None, n_folds: int | None = None) -> str:
    """'mean ± SD' of a summary cell (mean alone without SD, 'n/a' when undefined), followed by '(n=k)' when
    only k < `n_folds` folds defined the metric (e.g. folds without Rim+ lesions have no AUC)."""
    cell = cell or {}
    mean, sd, n = cell.get("mean", math.nan), cell.get("sd", math.nan), cell.get("n")
    if math.isnan(mean):
        return "n/a"
    text = f"{mean:.3f} ± {sd:.3f}" if not math.isnan(sd) else f"{mean:.3f}"
    return text + (f" (n={n:.0f})" if n_folds is not None and n is not None and n < n_folds else "")


def _interval(low: float, high: float, sign: str = "") -> str:
    return "n/a" if math.isnan(low) else f"({low:{sign}.3f}, {high:{sign}.3f})"


#: Operating points picked on the pooled out-of-fold (test) predictions: optimistic, and labelled so.
TEST_CHOSEN = "threshold chosen on the test predictions"


def lesion_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main table: method [switches], profile, mean ± SD over folds of every metric."""
    settings, n_folds = results.get("settings", {}), results.get("n_folds")
    rows = [[row_label(m, settings), settings.get(m, {}).get("profile", "?"),
             *(mean_sd(results["summary"][m].get(k), n_folds) for k in TABLE_METRICS)]
            for m in results["methods"]]
    return ["method", "profile", *TABLE_METRICS], rows


def seeds_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the over-seeds table (mean ± SD over seeds of each seed's mean over folds)."""
    summary = results["seeds"]["summary"]
    n_seeds = len(results["seeds"]["seeds"])
    rows = [[m, *(mean_sd(summary[m].get(k), n_seeds) for k in TABLE_METRICS)] for m in results["methods"]]
    return ["method", *TABLE_METRICS], rows


def bootstrap_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Pooled ROC-AUC and PR-AUC with their participant-level bootstrap intervals (empty without a bootstrap)."""
    boot = results.get("bootstrap")
    if not boot:
        return [], []
    pooled = results["pooled"]
    rows = [[m, f"{pooled[m]['roc_auc']:.3f} {_interval(*boot['methods'][m]['roc_auc_ci'])}",
             f"{pooled[m]['pr_auc']:.3f} {_interval(*boot['methods'][m]['pr_auc_ci'])}"] for m in results["methods"]]
    return ["method", "pooled ROC-AUC (95 % CI)", "pooled PR-AUC (95 % CI)"], rows


def comparison_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Each method against the reference: AUC difference with DeLong's and the participant bootstrap's 95 % CI,
    DeLong and McNemar p (and Holm-adjusted p when more than one method is compared)."""
    holm = len(results["comparisons"]) > 1 and all("p_holm" in row["delong"] for row in results["comparisons"])
    boot = results.get("bootstrap") or {}
    header = ["method", "AUC", "reference AUC", "difference (DeLong 95 % CI)", "participant bootstrap 95 % CI",
              "DeLong z", "DeLong p", *(["DeLong p (Holm)"] if holm else []), "McNemar b / c", "McNemar χ²",
              "McNemar p", *(["McNemar p (Holm)"] if holm else [])]
    rows = []
    for row in results["comparisons"]:
        d, m = row["delong"], row["mcnemar"]
        ci = boot.get("methods", {}).get(row["method"], {}).get("roc_auc_difference_ci")
        rows.append([row["method"], f"{d['auc_a']:.3f}", f"{d['auc_b']:.3f}",
                     f"{d['difference']:+.3f} {_interval(d['ci_low'], d['ci_high'], '+')}",
                     _interval(*ci, "+") if ci else "n/a", f"{d['z']:.2f}", f"{d['p_value']:.3g}",
                     *([f"{d['p_holm']:.3g}"] if holm else []), f"{m['b']} / {m['c']}", f"{m['statistic']:.2f}",
                     f"{m['p_value']:.3g}", *([f"{m['p_holm']:.3g}"] if holm else [])])
    return header, rows


def seeds_heading(results: dict[str, Any]) -> str:
    """What the over-seeds table shows, and that every other table is the first seed's."""
    seeds = results["seeds"]["seeds"]
    return (f"(mean ± SD over seeds {', '.join(map(str, seeds))} of each seed's mean over folds; the other "
            f"tables are seed {seeds[0]}'s)")


def bootstrap_note(results: dict[str, Any]) -> str:
    """One sentence on how the intervals were made (empty without a bootstrap)."""
    boot = results.get("bootstrap")
    if not boot:
        return ""
    return (f"95 % percentile intervals from {boot['n_resamples']} participant-level bootstrap resamples "
            f"(seed {boot['seed']}; participants drawn with replacement, each with all its lesions; "
            f"{boot['n_skipped']} resamples without both classes skipped). Lesions of one participant are "
            "correlated, so these intervals are wider and more honest than the lesion-level DeLong ones.")


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def results_markdown(results: dict[str, Any]) -> str:
    """The papers' table shapes: methods as rows, metrics as mean ± SD over folds; then the tests."""
    settings = results.get("settings", {})
    lines = ["# Cross-validation results", "", "## Lesion level (mean ± SD over folds)", ""]
    lines += _markdown_table(*lesion_table(results))
    lines += ["", "Method [switches]: the network settings that differ from the paper; (n=k): only k folds had "
              "both classes."]
    if results.get("seeds"):
        lines += ["", f"## Over training seeds {seeds_heading(results)}", ""] + _markdown_table(*seeds_table(results))
    if results.get("bootstrap"):
        lines += ["", "## Pooled out-of-fold AUCs, participant-level bootstrap", ""]
        lines += _markdown_table(*bootstrap_table(results)) + ["", bootstrap_note(results)]
    if results["comparisons"]:
        lines += ["", f"## Against {results['reference']} (pooled out-of-fold predictions)", ""]
        lines += _markdown_table(*comparison_table(results))
    lines += ["", "## Subject level", "",
              "| method | Pearson r (95 % CI), predicted count | MSE | r, expected count | chronic active (≥ 4) sens. "
              f"/ spec. | review at sens. ≥ 0.95 ({TEST_CHOSEN}) |",
              "|---|---|---|---|---|---|"]
    for method in results["methods"]:
        s, o = results["subject_level"][method], results["high_sensitivity_operating_point"][method]
        lines.append(f"| {method} | {s['count_pearson_r']:.3f} ({s['count_pearson_ci_low']:.3f}, "
                     f"{s['count_pearson_ci_high']:.3f}) | {s['count_mse']:.2f} | {s['expected_pearson_r']:.3f} | "
                     f"{s['patient_sensitivity']:.2f} / {s['patient_specificity']:.2f} | {o['n_review']:.0f} lesions "
                     f"({100 * o['review_fraction']:.0f} %) |")
    lines += ["", f"## Pooled operating point at specificity ≥ 0.95 (RimNet; {TEST_CHOSEN}) and calibration", "",
              "| method | sensitivity | specificity | threshold | Brier score |", "|---|---|---|---|---|"]
    for method in results["methods"]:
        o = results["high_specificity_operating_point"][method]
        lines.append(f"| {method} | {o['sensitivity']:.3f} | {o['specificity']:.3f} | {o['threshold']:.3f} "
                     f"| {o['brier']:.3f} |")
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
