"""Lesion crops for review: QSM and FLAIR in three planes through the lesion centre, outline drawn.

Volumes are reoriented to the closest RAS axes first, so the planes are anatomical whatever the
storage order; panels follow the radiological convention (patient right on the image left,
anterior to the left in sagittal views) and are scaled in mm, so anisotropic voxels look right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

from prlkit.data.patches import normalise_flair
from prlkit.data.session import SessionData
from prlkit.report.plots import plt

QSM_WINDOW_PPM = (-0.15, 0.15)  # display window of susceptibility maps
FLAIR_PERCENTILES = (0.5, 99.5)  # of brain voxels, mapped to black and white
MIN_HALF_WIDTH_MM = 15.0  # a crop shows at least 30 mm around the centre
MARGIN_MM = 6.0  # context around the lesion's bounding box
PLANES = (("axial", 2), ("coronal", 1), ("sagittal", 0))  # name, the RAS axis held fixed
OUTLINE_COLOUR = "#ffd400"


@dataclass(frozen=True)
class DisplaySession:
    """A session on its closest RAS grid: QSM (ppm), FLAIR scaled to [0, 1], lesion instances."""

    qsm: np.ndarray
    flair: np.ndarray
    instances: np.ndarray
    affine: np.ndarray
    zooms: np.ndarray
    boxes: list[tuple[slice, ...] | None]  # bounding box of lesion label n at position n - 1


def display_session(data: SessionData) -> DisplaySession:
    """Reorient a loaded session for display (axis flips and swaps only, no resampling)."""
    orientation = nib.orientations.io_orientation(data.affine)
    affine = data.affine @ nib.orientations.inv_ornt_aff(orientation, data.instances.shape)
    qsm, flair, instances = (nib.orientations.apply_orientation(volume, orientation)
                             for volume in (data.qsm, data.flair, data.instances))  # fmt: skip
    return DisplaySession(
        qsm=qsm,
        flair=normalise_flair(flair, FLAIR_PERCENTILES),
        instances=instances,
        affine=affine,
        zooms=np.sqrt((affine[:3, :3] ** 2).sum(axis=0)),
        boxes=ndimage.find_objects(instances),
    )


def lesion_figure(view: DisplaySession, index: int, center_mm: Sequence[float], title: str,
                  qsm_window: tuple[float, float] = QSM_WINDOW_PPM) -> plt.Figure:  # fmt: skip
    """2 × 3 panels (QSM, FLAIR × axial, coronal, sagittal) through `center_mm`, lesion `index` outlined."""
    center = np.linalg.solve(view.affine, [*center_mm, 1.0])[:3]
    center = np.clip(np.rint(center).astype(int), 0, np.array(view.instances.shape) - 1)
    half_mm = MIN_HALF_WIDTH_MM
    box = view.boxes[index - 1] if 0 < index <= len(view.boxes) else None
    if box is not None:
        extent_mm = np.array([s.stop - s.start for s in box]) * view.zooms
        half_mm = max(half_mm, float(extent_mm.max()) / 2 + MARGIN_MM)
    half = np.ceil(half_mm / view.zooms).astype(int)
    figure, axes = plt.subplots(2, 3, figsize=(5.4, 3.9), facecolor="white")
    rows = (("QSM", view.qsm, dict(cmap="gray", vmin=qsm_window[0], vmax=qsm_window[1])),
            ("FLAIR", view.flair, dict(cmap="gray", vmin=0.0, vmax=1.0)))  # fmt: skip
    for n, (row, (label, volume, style)) in enumerate(zip(axes, rows)):
        for axis, (plane, fixed) in zip(row, PLANES):
            image, outline, extent = _plane(volume, view.instances, index, center, half, view.zooms, fixed)
            axis.set_facecolor("black")
            axis.imshow(image.T, origin="lower", extent=extent, interpolation="nearest", **style)
            if outline.any() and not outline.all():
                axis.contour(outline.T.astype(float), levels=[0.5], origin="lower", extent=extent, colors=OUTLINE_COLOUR,
                             linewidths=0.7, alpha=0.55 if label == "QSM" else 0.9)  # keep a rim at the edge visible
            axis.set(xlim=(half_mm, -half_mm), ylim=(-half_mm, half_mm), xticks=[], yticks=[])
            if n == 0:
                axis.set_title(plane, fontsize=9)
            axis.text(0.03, 0.5, "A" if plane == "sagittal" else "R", color="white", fontsize=7, va="center",
                      transform=axis.transAxes, bbox=dict(facecolor="black", alpha=0.5, pad=1, linewidth=0))  # fmt: skip
        row[0].set_ylabel(label, fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.subplots_adjust(wspace=0.04, hspace=0.08, top=0.86)
    return figure


def _plane(volume: np.ndarray, instances: np.ndarray, label: int, center: np.ndarray, half: np.ndarray,
           zooms: np.ndarray, fixed: int) -> tuple[np.ndarray, np.ndarray, list[float]]:  # fmt: skip
    """The crop of `volume` and of lesion `label`'s mask in the plane through `center` normal to axis `fixed`.

    Returns the 2-D arrays (in-plane axes in RAS order) and their imshow extent in mm from the
    centre; a crop leaving the volume is cut at its edge (the axes limits keep the lesion centred).
    """
    low = np.maximum(center - half, 0)
    high = np.minimum(center + half + 1, volume.shape)
    index = tuple(int(center[a]) if a == fixed else slice(low[a], high[a]) for a in range(3))
    h, v = (a for a in range(3) if a != fixed)
    extent = [(low[h] - center[h] - 0.5) * zooms[h], (high[h] - center[h] - 0.5) * zooms[h],
              (low[v] - center[v] - 0.5) * zooms[v], (high[v] - center[v] - 0.5) * zooms[v]]  # fmt: skip
    return volume[index], instances[index] == label, [float(e) for e in extent]
