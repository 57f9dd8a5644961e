"""Lesion instances from a lesion map, with size exclusion, centres and expert rim labels."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from prlkit.config import LesionConfig
from prlkit.data.bids import PrlkitWarning, read_table
from prlkit.errors import InputFileError

RIM_VALUES = {"1": 1, "rim+": 1, "prl": 1, "0": 0, "rim-": 0, "non-prl": 0, "n/a": None, "": None}
CONNECTIVITY_RANK = {6: 1, 18: 2, 26: 3}  # scipy's generate_binary_structure rank per neighbourhood

LESION_COLUMNS = [
    "index", "voxels", "volume_mm3",
    "center_vox_i", "center_vox_j", "center_vox_k",
    "center_mm_x", "center_mm_y", "center_mm_z",
    "rim", "touches_border", "excluded",
]


def instance_map(labels: np.ndarray, config: LesionConfig, has_rim_table: bool) -> np.ndarray:
    """Instance labels (int32, 0 background): connected components of a binary map, else as given.

    `auto` treats the map as instances when it has labels above 1 or when a rim table names its
    labels (a table cannot refer to components that only exist after labelling).
    """
    kind = config.map_kind
    if kind == "auto":
        kind = "instance" if labels.max(initial=0) > 1 or has_rim_table else "binary"
    if kind == "instance":
        return labels.astype(np.int32, copy=False)
    structure = ndimage.generate_binary_structure(3, CONNECTIVITY_RANK[config.connectivity])
    components, _ = ndimage.label(labels > 0, structure=structure)
    return components.astype(np.int32, copy=False)


def lesion_table(instances: np.ndarray, affine: np.ndarray, config: LesionConfig) -> pd.DataFrame:
    """One row per lesion label: size, volume (mm³), centre of mass (voxel and world), exclusion.

    Computed in one pass over lesion voxels with `np.bincount` (no per-lesion scans of the volume).
    """
    coords = np.nonzero(instances)
    values = instances[coords]
    ids = np.unique(values)
    if ids.size == 0:
        return pd.DataFrame({column: pd.Series(dtype=_dtype(column)) for column in LESION_COLUMNS})
    dense = np.searchsorted(ids, values)  # lesion label -> 0..n-1
    counts = np.bincount(dense)
    centers_vox = np.stack([np.bincount(dense, weights=axis) / counts for axis in coords], axis=1)
    centers_mm = centers_vox @ affine[:3, :3].T + affine[:3, 3]
    on_border = np.zeros(values.shape, dtype=bool)
    for axis, size in zip(coords, instances.shape):
        on_border |= (axis == 0) | (axis == size - 1)
    touches_border = np.bincount(dense, weights=on_border) > 0
    voxel_mm3 = abs(np.linalg.det(affine[:3, :3]))
    too_small = (counts < config.min_voxels) | (counts * voxel_mm3 < config.min_volume_mm3)
    table = pd.DataFrame(
        {
            "index": ids.astype(int),
            "voxels": counts,
            "volume_mm3": counts * voxel_mm3,
            "center_vox_i": centers_vox[:, 0],
            "center_vox_j": centers_vox[:, 1],
            "center_vox_k": centers_vox[:, 2],
            "center_mm_x": centers_mm[:, 0],
            "center_mm_y": centers_mm[:, 1],
            "center_mm_z": centers_mm[:, 2],
            "rim": pd.array([pd.NA] * len(ids), dtype="Int64"),
            "touches_border": touches_border,
            "excluded": np.where(too_small, "too_small", ""),
        }
    )
    return table


def _dtype(column: str) -> str:
    return {"rim": "Int64", "touches_border": "bool", "excluded": "object"}.get(column, "float64")


def parse_rim_value(value: str, path: Path, label: str) -> int | None:
    """1/0 (also rim+/rim-, PRL/non-PRL, case-insensitive); n/a or empty means unlabelled."""
    key = value.strip().lower()
    if key not in RIM_VALUES:
        raise InputFileError(path, f"unknown rim value {value!r} for lesion {label} (use 1/0, rim+/rim-, PRL/non-PRL)")
    return RIM_VALUES[key]


def read_rim_table(path: Path, labels_in_map: np.ndarray) -> pd.DataFrame:
    """The `_dseg.tsv` look-up table checked against the map: columns index, rim (+ optional ones).

    Every table row must name a label in the map and every map label must have a row.
    """
    rows = read_table(path)
    if "index" not in rows or "rim" not in rows:
        raise InputFileError(path, "lesion table needs the columns index and rim")
    try:
        index = [int(value) for value in rows["index"]]
    except ValueError:
        raise InputFileError(path, "the index column must hold integer labels") from None
    if len(set(index)) != len(index):
        raise InputFileError(path, "the index column repeats a label")
    absent_from_map = sorted(set(index) - set(labels_in_map.tolist()))
    if absent_from_map:
        raise InputFileError(path, f"label(s) {_short(absent_from_map)} are not in the lesion map")
    absent_from_table = sorted(set(labels_in_map.tolist()) - set(index))
    if absent_from_table:
        raise InputFileError(path, f"lesion map label(s) {_short(absent_from_table)} have no row")
    table = pd.DataFrame(
        {
            "index": index,
            "rim": pd.array([parse_rim_value(v, path, i) for v, i in zip(rows["rim"], rows["index"])], dtype="Int64"),
        }
    )
    if "consensus_needed" in rows:
        table["consensus_needed"] = rows["consensus_needed"].str.lower().isin(["1", "true"]).to_numpy()
    return table


def rims_from_prl_mask(instances: np.ndarray, prl_mask: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rim label per lesion id: 1 where any of its voxels overlaps the PRL mask, else 0."""
    overlapping = np.unique(instances[(prl_mask > 0) & (instances > 0)])
    return np.isin(ids, overlapping).astype(int)


def attach_rim_labels(
    table: pd.DataFrame,
    instances: np.ndarray,
    rim_table: Path | None,
    prl_mask: np.ndarray | None,
    lesion_path: Path,
) -> pd.DataFrame:
    """Add expert rim labels from the look-up table, or else from the PRL mask; unlabelled stays NA."""
    table = table.copy()
    if rim_table is not None:
        labels = read_rim_table(rim_table, table["index"].to_numpy())
        table = table.drop(columns="rim").merge(labels, on="index", how="left")
    elif prl_mask is not None:
        table["rim"] = pd.array(rims_from_prl_mask(instances, prl_mask, table["index"].to_numpy()), dtype="Int64")
    table = table[LESION_COLUMNS + [c for c in table.columns if c not in LESION_COLUMNS]]
    if table.empty:
        warnings.warn(f"{lesion_path}: lesion map is empty (zero lesions)", PrlkitWarning, stacklevel=2)
    return table


def _short(values: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f" … ({len(values)} in all)" if len(values) > limit else "")
