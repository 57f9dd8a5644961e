"""Registration QC figure: reference slices with the edges of each moved image and the lesion outlines."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from prlkit.report.plots import plt, save_figure

EDGE_FRACTIONS = (0.3, 0.75)  # of the 99th percentile of |intensity|: the outline, then bright structures
VIEWS = ("sagittal", "coronal", "axial")


def canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Data reoriented to the closest RAS axes (for display only) and the voxel sizes along them."""
    orientation = nib.orientations.io_orientation(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)[orientation[:, 0].astype(int)]
    return nib.orientations.apply_orientation(data, orientation), spacing


def slice_centre(lesions: np.ndarray | None, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Through the lesions' centre of mass when there are lesions, else through the grid centre."""
    if lesions is not None and lesions.any():
        return tuple(int(round(c)) for c in ndimage.center_of_mass(lesions > 0))  # noqa: RUF046  numpy<2: round(float64) is float64
    return tuple(n // 2 for n in shape)


def edge_levels(volume: np.ndarray) -> list[float]:
    """Iso-intensity levels whose contours trace a moved image's edges (brain outline, inner structure);
    taken on |intensity| so they work for QSM's signed values too."""
    top = float(np.percentile(np.abs(volume), 99))
    return [fraction * top for fraction in EDGE_FRACTIONS] if top > 0 else [0.5]


def _view(volume: np.ndarray, view: str, centre: tuple[int, int, int]) -> np.ndarray:
    axis = VIEWS.index(view)
    return np.take(volume, centre[axis], axis=axis).T  # rows: the later RAS axis, drawn bottom-up


def _aspect(spacing: np.ndarray, view: str) -> float:
    rows_axis, cols_axis = [a for a in range(3) if a != VIEWS.index(view)][::-1]
    return float(spacing[rows_axis] / spacing[cols_axis])


def write_qc_png(reference: np.ndarray, reference_name: str, moved: dict[str, np.ndarray], lesions: np.ndarray | None,
                 affine: np.ndarray, path: Path, title: str) -> None:
    """One row per moved image (its edges in colour over the reference), three orthogonal views each;
    a last row outlines the resampled lesions on the reference. All arrays share `affine`'s grid."""
    ref, spacing = canonical(reference, affine)
    moved = {name: canonical(data, affine)[0] for name, data in moved.items()}
    lesion_map = canonical(lesions, affine)[0] if lesions is not None else None
    centre = slice_centre(lesion_map, ref.shape)
    levels = {name: edge_levels(data) for name, data in moved.items()}
    rows = [*moved, *(["lesions"] if lesion_map is not None else [])]
    low, high = np.percentile(ref[ref != 0], [1, 99]) if np.any(ref != 0) else (0.0, 1.0)
    figure, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
    for row, name in zip(axes, rows):
        for axis, view in zip(row, VIEWS):
            axis.imshow(_view(ref, view, centre), cmap="gray", vmin=low, vmax=high, origin="lower",
                        aspect=_aspect(spacing, view), interpolation="nearest")
            if name == "lesions":
                axis.contour(_view(lesion_map, view, centre) > 0, levels=[0.5], colors="red", linewidths=0.8)
            else:
                smooth = ndimage.gaussian_filter(np.abs(_view(moved[name], view, centre)), 0.7)
                axis.contour(smooth, levels=levels[name], colors=["yellow", "orange"][: len(levels[name])],
                             linewidths=0.7)
            axis.set_axis_off()
        row[0].set_title(f"{name} {'outlines' if name == 'lesions' else 'edges'} on {reference_name}", loc="left",
                         fontsize=9)
    figure.suptitle(title, fontsize=10)
    save_figure(figure, path)
