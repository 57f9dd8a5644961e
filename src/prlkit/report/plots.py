"""Matplotlib figures written as PNG (Agg backend: works on headless machines)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from prlkit.atomic import atomic_path  # noqa: E402


def save_figure(figure: plt.Figure, path: Path) -> None:
    """Write a figure as PNG atomically and release it."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)


def plot_training_curves(stages: dict[str, tuple[list[dict], int]], path: Path) -> None:
    """One panel per stage: training loss and validation score per epoch, the kept (best) epoch marked."""
    stages = {name: value for name, value in stages.items() if value[0]}
    figure, axes = plt.subplots(1, max(len(stages), 1), figsize=(5 * max(len(stages), 1), 3.6), squeeze=False)
    for axis, (name, (rows, best_epoch)) in zip(axes[0], stages.items()):
        epochs = [row["epoch"] for row in rows]
        score_name = next(key for key in rows[0] if key not in ("epoch", "train_loss"))
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
