"""Accuracy on confluent vs isolated lesions, for every method of a cross-validation run.

The segmentation paper's claim is that lesion-centred classification struggles where lesions
touch (one patch holds several lesions); a lesion is confluent when it touches another lesion
(voxel neighbours, 26-connectivity by default), the rule the synthetic generator uses for the
`confluent` column of `sourcedata/truth.tsv`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from prlkit.atomic import write_text_atomic
from prlkit.config import LesionConfig
from prlkit.data.bids import SessionFiles
from prlkit.data.images import read_label_volume
from prlkit.data.lesions import instance_map
from prlkit.errors import PrlkitError
from prlkit.eval.metrics import decision_metrics, pr_auc, roc_auc

SUBSET_METRICS = ["roc_auc", "pr_auc", "f1", "sensitivity", "specificity", "ppv", "accuracy"]


def neighbour_offsets(connectivity: int) -> list[tuple[int, int, int]]:
    """One offset of each neighbour pair (13 for 26-connectivity, 9 for 18, 3 for 6)."""
    order = {6: 1, 18: 2, 26: 3}[connectivity]
    return [d for d in itertools.product((-1, 0, 1), repeat=3)
            if d > (0, 0, 0) and sum(map(abs, d)) <= order]


def confluent_lesions(instances: np.ndarray, connectivity: int = 26) -> np.ndarray:
    """Sorted ids of lesions with a voxel next to a voxel of another lesion (shifted comparisons, no loops over
    voxels)."""
    if connectivity not in (6, 18, 26):
        raise PrlkitError(f"connectivity must be 6, 18 or 26, not {connectivity}")
    touching = [np.zeros(0, dtype=instances.dtype)]
    for offset in neighbour_offsets(connectivity):
        here = tuple(slice(max(0, -d), n - max(0, d)) for d, n in zip(offset, instances.shape))
        there = tuple(slice(max(0, d), n - max(0, -d)) for d, n in zip(offset, instances.shape))
        a, b = instances[here], instances[there]
        pair = (a > 0) & (b > 0) & (a != b)
        touching += [a[pair], b[pair]]
    return np.unique(np.concatenate(touching))


def confluence_table(sessions: Sequence[SessionFiles], config: LesionConfig) -> pd.DataFrame:
    """participant_id, session_id, index and `confluent` (bool) for every lesion of the sessions."""
    tables = []
    for files in sessions:
        labels = read_label_volume(files.lesions)
        instances = instance_map(labels.data, config, has_rim_table=files.rim_table is not None)
        ids = np.unique(instances[instances > 0])
        confluent = np.isin(ids, confluent_lesions(instances, config.connectivity))
        tables.append(pd.DataFrame({"participant_id": files.participant_id, "session_id": files.session_id or "",
                                    "index": ids, "confluent": confluent}))
    return pd.concat(tables, ignore_index=True)


def metrics_by_confluence(oof: pd.DataFrame, confluence: pd.DataFrame) -> pd.DataFrame:
    """Per method and subset (confluent / isolated): pooled out-of-fold AUCs and the metrics of the
    fold-threshold decisions; an AUC is NaN where a subset holds one class only."""
    keys = ["participant_id", "session_id", "index"]
    keyed = confluence.assign(participant_id=confluence["participant_id"].astype(str),
                              session_id=confluence["session_id"].astype(str))
    merged = oof.assign(participant_id=oof["participant_id"].astype(str), session_id=oof["session_id"].astype(str))
    merged = merged.merge(keyed[keys + ["confluent"]], on=keys, how="left")
    if merged["confluent"].isna().any():
        raise PrlkitError("confluence table lacks lesions of the predictions")
    rows = []
    for (method, confluent), group in merged.groupby(["method", "confluent"], sort=False):
        y, p = group["label"].to_numpy(int), group["probability"].to_numpy(float)
        both = 0 < y.sum() < len(y)
        rows.append({"method": method, "subset": "confluent" if confluent else "isolated", "n_lesions": len(y),
                     "n_rim": int(y.sum()), "roc_auc": roc_auc(y, p) if both else np.nan,
                     "pr_auc": pr_auc(y, p) if both else np.nan,
                     **{k: v for k, v in decision_metrics(y, group["decision"].to_numpy(int)).items()
                        if k in SUBSET_METRICS}})
    return pd.DataFrame(rows).sort_values(["method", "subset"], ignore_index=True)


def write_confluence_results(oof: pd.DataFrame, sessions: Sequence[SessionFiles], config: LesionConfig,
                             out_dir: Path) -> pd.DataFrame | None:
    """`confluent_metrics.tsv` in a cv folder; nothing when the sessions' files are unknown."""
    if not sessions:
        return None
    table = metrics_by_confluence(oof, confluence_table(sessions, config))
    write_text_atomic(out_dir / "confluent_metrics.tsv", table.to_csv(sep="\t", index=False, float_format="%.6g"))
    return table
