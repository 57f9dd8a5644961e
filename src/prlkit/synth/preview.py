"""A PNG montage of a few Rim+ and Rim- lesions (axial QSM and FLAIR through the lesion centre)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd

from prlkit.atomic import atomic_path

QSM_WINDOW = (-0.15, 0.25)  # ppm


def pick_examples(truth: pd.DataFrame, n_each: int = 4, min_voxels: int = 110) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rim+ examples from strong to weak rims, and Rim- examples covering the confounders."""
    big = truth[truth["volume_voxels"] >= min_voxels]
    rim = big[(big["rim"] == 1) & (big["true_rim"] == 1)].sort_values("rim_strength_ppm", ascending=False)
    rim = rim.iloc[np.unique(np.linspace(0, len(rim) - 1, n_each).round().astype(int))] if len(rim) else rim
    plain = big[(big["rim"] == 0) & (big["true_rim"] == 0)]
    order = ["hyperintense", "vein_hug", "vein_cross", "streak", "none"]
    picks = [plain[plain["confounder"] == kind].head(1) for kind in order]
    rest = pd.concat(picks + [plain[plain["confounder"] == "none"].iloc[1:]]).head(n_each)
    return rim, rest


def _crop(volume: np.ndarray, centre: tuple[int, int, int], half: int) -> np.ndarray:
    """An axial slice through `centre`, `2*half` voxels wide, zero-padded at the borders."""
    i, j, k = centre
    padded = np.pad(volume[:, :, k], half)
    return padded[i:i + 2 * half, j:j + 2 * half].T


def write_preview(root: Path, truth: pd.DataFrame, out_png: Path, n_each: int = 4, half: int = 16) -> Path:
    """Render the montage of a cohort folder `root` into `out_png` (written atomically)."""
    rim, rest = pick_examples(truth, n_each)
    rows = max(len(rim), len(rest), 1)
    fig, axes = plt.subplots(rows, 4, figsize=(8, 2.1 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for column, examples in ((0, rim), (2, rest)):
        for row, lesion in enumerate(examples.itertuples()):
            pid = lesion.participant_id
            if pid not in cache:
                anat = root / pid / "anat"
                cache = {pid: (np.asarray(nib.load(anat / f"{pid}_Chimap.nii.gz").dataobj),
                               np.asarray(nib.load(anat / f"{pid}_FLAIR.nii.gz").dataobj))}
            qsm, flair = cache[pid]
            centre = (lesion.center_i, lesion.center_j, lesion.center_k)
            flair_crop = _crop(flair, centre, half)
            axes[row, column].imshow(_crop(qsm, centre, half), cmap="gray", vmin=QSM_WINDOW[0], vmax=QSM_WINDOW[1],
                                     origin="lower", interpolation="nearest")
            axes[row, column + 1].imshow(flair_crop, cmap="gray", origin="lower", interpolation="nearest",
                                         vmin=0, vmax=np.percentile(flair_crop, 99.5))
            label = (f"{pid} #{lesion.index}\nrim {lesion.rim_strength_ppm:.3f} ppm, {lesion.rim_coverage:.0%}"
                     if column == 0 else f"{pid} #{lesion.index}\n{lesion.confounder}")
            axes[row, column].set_title(label, fontsize=7)
            axes[row, column + 1].set_title("FLAIR", fontsize=7)
    fig.suptitle("Rim+ (QSM | FLAIR)                         Rim- (QSM | FLAIR)", fontsize=9)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return out_png
