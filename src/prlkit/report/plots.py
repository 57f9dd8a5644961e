"""Matplotlib figures written as PNG (Agg backend: works on headless machines)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from prlkit.atomic import atomic_path


def figure_png(figure: plt.Figure) -> bytes:
    """The figure as PNG bytes (for embedding in a page), then released."""
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)
    return buffer.getvalue()


def save_figure(figure: plt.Figure, path: Path) -> None:
    """Write a figure as PNG atomically and release it."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(figure_png(figure))


def plot_training_curves(stages: dict[str, tuple[list[dict], int]], path: Path) -> None:
    """One panel per stage: training loss and validation score per epoch, the kept (best) epoch marked."""
    stages = {name: value for name, value in stages.items() if value[0]}
    figure, axes = plt.subplots(1, max(len(stages), 1), figsize=(5.5 * max(len(stages), 1), 3.8), squeeze=False,
                               layout="constrained")  # keeps a twin axis' label off the next panel
    for axis, (name, (rows, best_epoch)) in zip(axes[0], stages.items()):
        epochs = [row["epoch"] for row in rows]
        score_name = next(key for key in rows[0] if key not in ("epoch", "learning_rate", "train_loss"))
        scores = [row[score_name] for row in rows]
        axis.plot(epochs, [row["train_loss"] for row in rows], color="tab:blue", label="train loss")
        axis.set_xlabel("epoch")
        axis.set_ylabel("train loss", color="tab:blue")
        twin = axis.twinx()
        twin.plot(epochs, scores, color="tab:orange", label=score_name)
        twin.set_ylabel(score_name, color="tab:orange")
        if best_epoch >= 0:
            twin.axvline(best_epoch, color="grey", linestyle=":", label=f"kept epoch {best_epoch}")
        axis.set_title(name)
        twin.legend(loc="best", fontsize=8)
    save_figure(figure, path)


def plot_cv_curves(oof, path: Path) -> None:
    """Fold-averaged ROC and PR curves per method (step interpolation, ±1 SD band), as in the papers."""
    from prlkit.eval.metrics import mean_pr_curve, mean_roc_curve

    figure, (roc_axis, pr_axis) = plt.subplots(1, 2, figsize=(10, 4.5))
    for method, rows in oof.groupby("method", sort=False):
        folds = [(g["label"].to_numpy(), g["probability"].to_numpy()) for _, g in rows.groupby("fold")
                 if g["label"].nunique() == 2]
        if not folds:
            continue
        for axis, curve in ((roc_axis, mean_roc_curve(folds)), (pr_axis, mean_pr_curve(folds))):
            line, = axis.plot(curve.x, curve.mean, label=f"{method} ({curve.area():.3f})")
            axis.fill_between(curve.x, curve.mean - curve.sd, curve.mean + curve.sd, color=line.get_color(), alpha=0.15)
    roc_axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    prevalence = oof.drop_duplicates("lesion_row")["label"].mean()
    pr_axis.axhline(prevalence, color="grey", linestyle=":", label=f"chance ({prevalence:.3f})")
    roc_axis.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (mean over folds)")
    pr_axis.set(xlabel="recall", ylabel="precision", title="Precision-recall (mean over folds)")
    for axis in (roc_axis, pr_axis):
        axis.set(xlim=(0, 1), ylim=(0, 1.02))
        axis.legend(loc="lower right" if axis is roc_axis else "upper right", fontsize=8)
    save_figure(figure, path)


def plot_count_scatter(oof, path: Path) -> None:
    """Predicted vs expert Rim+ count per participant, one panel per method, identity line."""
    methods = list(dict.fromkeys(oof["method"]))
    figure, axes = plt.subplots(1, len(methods), figsize=(4 * len(methods), 4), squeeze=False)
    for axis, method in zip(axes[0], methods):
        rows = oof[oof["method"] == method]
        counts = rows.groupby("participant_id").agg(expert=("label", "sum"), predicted=("decision", "sum"))
        top = max(int(counts.to_numpy().max()), 1) + 1
        axis.scatter(counts["expert"], counts["predicted"], alpha=0.6)
        axis.plot([0, top], [0, top], color="grey", linestyle=":")
        axis.set(xlabel="expert Rim+ count", ylabel="predicted Rim+ count", title=method, xlim=(-0.5, top),
                 ylim=(-0.5, top))
    save_figure(figure, path)


def plot_reliability(oof, path: Path) -> None:
    """Observed Rim+ fraction against mean predicted probability per method (pooled out-of-fold,
    equal-count bins), with each method's Brier score: are the probabilities probabilities?"""
    from prlkit.eval.calibration import brier_score, reliability_curve

    figure, axis = plt.subplots(figsize=(5, 4.5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for method, rows in oof.groupby("method", sort=False):
        y, p = rows["label"].to_numpy(), rows["probability"].to_numpy()
        curve = reliability_curve(y, p, n_bins=int(np.clip(len(y) // 20, 2, 10)), strategy="quantile")
        axis.plot(curve["mean_predicted"], curve["fraction_positive"], marker="o",
                  label=f"{method} (Brier {brier_score(y, p):.3f})")
    axis.set(xlabel="mean predicted P(Rim+)", ylabel="observed Rim+ fraction", xlim=(0, 1), ylim=(0, 1.02),
             title="Calibration (pooled out-of-fold, equal-count bins)")
    axis.legend(loc="lower right", fontsize=8)
    save_figure(figure, path)


# The figures of a cv (or compare) folder: file name -> (drawing function, description).
CV_FIGURES = {
    "cv_curves.png": (plot_cv_curves, "ROC and precision-recall curves, mean over folds"),
    "counts.png": (plot_count_scatter, "predicted vs expert Rim+ count per participant"),
    "calibration.png": (plot_reliability, "observed Rim+ fraction vs predicted probability"),
}


def write_cv_figures(oof, out: Path) -> None:
    """Every CV_FIGURES figure of the out-of-fold predictions into `out`."""
    for name, (plot, _) in CV_FIGURES.items():
        plot(oof, out / name)
