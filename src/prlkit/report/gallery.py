"""Lesion crops for review: QSM (bare and outlined) and FLAIR in three planes through the lesion centre.

Volumes are reoriented to the closest RAS axes first, so the planes are anatomical whatever the
storage order; panels follow the radiological convention (patient right on the image left,
anterior to the left in sagittal views) and are scaled in mm, so anisotropic voxels look right.
The outline sits on the lesion edge, where a rim is, so the first row shows QSM without it; QSM and
FLAIR are windowed per lesion neighbourhood (a fixed window makes weak rims faint and every lesion
flat white on FLAIR) and each figure states its QSM window and carries a 10 mm scale bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from scipy import ndimage

from prlkit.data.session import SessionData
from prlkit.report.plots import plt

QSM_WINDOW_LIMITS_PPM = (0.03, 0.3)  # the per-lesion QSM window's half-width stays within these
# phase input, shown as its local field shift: about a quarter of the QSM's spread near lesions (docs/data.md)
FIELD_WINDOW_LIMITS_PPM = (0.008, 0.08)
QSM_WINDOW_PERCENTILE = 99.0  # of |QSM| in the lesion neighbourhood: the window's half-width
FLAIR_PERCENTILES = (1.0, 99.9)  # of the lesion neighbourhood, mapped to black and white
MIN_HALF_WIDTH_MM = 15.0  # a crop shows at least 30 mm around the centre
MARGIN_MM = 6.0  # context around the lesion's bounding box
SCALE_BAR_MM = 10.0
PLANES = (("axial", 2), ("coronal", 1), ("sagittal", 0))  # name, the RAS axis held fixed
OUTLINE_COLOUR = "#ffd400"


@dataclass(frozen=True)
class DisplaySession:
    """A session on its closest RAS grid: QSM (ppm) or, with phase input, the field shift (ppm), FLAIR, lesion
    instances; `susceptibility` names the first image in the figures (`QSM`, or `phase` with its sign)."""

    qsm: np.ndarray
    flair: np.ndarray
    instances: np.ndarray
    affine: np.ndarray
    zooms: np.ndarray
    boxes: list[tuple[slice, ...] | None]  # bounding box of lesion label n at position n - 1
    susceptibility: str = "QSM"


def display_session(data: SessionData) -> DisplaySession:
    """Reorient a loaded session for display (axis flips and swaps only, no resampling)."""
    orientation = nib.orientations.io_orientation(data.affine)
    affine = data.affine @ nib.orientations.inv_ornt_aff(orientation, data.instances.shape)
    qsm, flair, instances = (nib.orientations.apply_orientation(volume, orientation)
                             for volume in (data.qsm, data.flair, data.instances))
    return DisplaySession(
        qsm=qsm,
        flair=flair,
        instances=instances,
        affine=affine,
        zooms=np.sqrt((affine[:3, :3] ** 2).sum(axis=0)),
        boxes=ndimage.find_objects(instances),
        susceptibility=susceptibility_label(data),
    )


def susceptibility_label(data: SessionData) -> str:
    """`QSM`, or for phase input `phase` with the sign convention it was read with."""
    if data.files.susceptibility != "phase":
        return "QSM"
    return f"phase (field shift, paramagnetic bright; sign {data.reading.get('phase_sign', '?')})"


def lesion_figure(view: DisplaySession, index: int, center_mm: Sequence[float], title: str) -> plt.Figure:
    """3 × 3 panels (QSM, QSM with lesion `index` outlined, FLAIR outlined × axial, coronal, sagittal)
    through `center_mm`; the windows come from the neighbourhood shown (`neighbourhood_windows`)."""
    center = np.linalg.solve(view.affine, [*center_mm, 1.0])[:3]
    center = np.clip(np.rint(center).astype(int), 0, np.array(view.instances.shape) - 1)
    half_mm = MIN_HALF_WIDTH_MM
    box = view.boxes[index - 1] if 0 < index <= len(view.boxes) else None
    if box is not None:
        extent_mm = np.array([s.stop - s.start for s in box]) * view.zooms
        half_mm = max(half_mm, float(extent_mm.max()) / 2 + MARGIN_MM)
    half = np.ceil(half_mm / view.zooms).astype(int)
    qsm_half_width, flair_window = neighbourhood_windows(view, center, half)
    qsm_style = dict(cmap="gray", vmin=-qsm_half_width, vmax=qsm_half_width)
    name = "QSM" if view.susceptibility == "QSM" else "phase"
    rows = ((name, view.qsm, qsm_style, False), (f"{name}, outline", view.qsm, qsm_style, True),
            ("FLAIR, outline", view.flair, dict(cmap="gray", vmin=flair_window[0], vmax=flair_window[1]), True))
    figure, axes = plt.subplots(3, 3, figsize=(9.0, 9.4), facecolor="white")
    for n, (row, (label, volume, style, outlined)) in enumerate(zip(axes, rows)):
        for axis, (plane, fixed) in zip(row, PLANES):
            image, outline, extent = _plane(volume, view.instances, index, center, half, view.zooms, fixed)
            axis.set_facecolor("black")
            axis.imshow(image.T, origin="lower", extent=extent, interpolation="nearest", **style)
            if outlined and outline.any() and not outline.all():
                axis.contour(outline.T.astype(float), levels=[0.5], origin="lower", extent=extent,
                             colors=OUTLINE_COLOUR, linewidths=0.8)
            axis.set(xlim=(half_mm, -half_mm), ylim=(-half_mm, half_mm), xticks=[], yticks=[])
            if n == 0:
                axis.set_title(plane, fontsize=9)
            axis.text(0.03, 0.5, "A" if plane == "sagittal" else "R", color="white", fontsize=7, va="center",
                      transform=axis.transAxes, bbox=dict(facecolor="black", alpha=0.5, pad=1, linewidth=0))
        row[0].set_ylabel(label, fontsize=9)
    axes[0, 2].add_artist(AnchoredSizeBar(axes[0, 2].transData, SCALE_BAR_MM, f"{SCALE_BAR_MM:g} mm", "lower right",
                                          color="white", frameon=False, size_vertical=0.6, fontproperties={"size": 7}))
    figure.suptitle(f"{title}\n{view.susceptibility} window ±{qsm_half_width:.2f} ppm (this neighbourhood)",
                    fontsize=10)
    figure.subplots_adjust(wspace=0.04, hspace=0.06, top=0.9)
    return figure


def neighbourhood_windows(view: DisplaySession, center: np.ndarray, half: np.ndarray
                          ) -> tuple[float, tuple[float, float]]:
    """Display windows from the box shown around a lesion: the QSM half-width (the 99th percentile of
    |QSM|, kept within 0.03-0.3 ppm; for a phase's field shift 0.008-0.08 ppm) and the FLAIR range (its
    1st and 99.9th percentiles)."""
    box = tuple(slice(max(c - h, 0), c + h + 1) for c, h in zip(center, half))
    qsm, flair = view.qsm[box], view.flair[box]
    limits = QSM_WINDOW_LIMITS_PPM if view.susceptibility == "QSM" else FIELD_WINDOW_LIMITS_PPM
    qsm_half_width = float(np.clip(np.percentile(np.abs(qsm), QSM_WINDOW_PERCENTILE), *limits))
    low, high = (float(v) for v in np.percentile(flair, FLAIR_PERCENTILES))
    return qsm_half_width, (low, high if high > low else low + 1.0)


def _plane(volume: np.ndarray, instances: np.ndarray, label: int, center: np.ndarray, half: np.ndarray,
           zooms: np.ndarray, fixed: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The crop of `volume` and of lesion `label`'s mask in the plane through `center` normal to axis `fixed`.

    Returns the 2-D arrays (in-plane axes in RAS order) and their imshow extent in mm from the
    centre; a crop leaving the volume is cut at its edge (the axes limits keep the lesion centred).
    """
    low = np.maximum(center - half, 0)
    high = np.minimum(center + half + 1, volume.shape)
    index = tuple(int(center[a]) if a == fixed else slice(low[a], high[a]) for a in range(3))
    h, v = (a for a in range(3) if a != fixed)
    extent = [(low[h] - center[h] - 0.5) * zooms[h], (high[h] - center[h] - 0.5) * zooms[h],
              (low[v] - center[v] - 0.5) * zooms[v], (high[v] - center[v] - 0.5) * zooms[v]]
    return volume[index], instances[index] == label, [float(e) for e in extent]
