"""`prlkit segment predict`: class maps, probability maps and lesion scores as BIDS derivatives.

Per session, under `<out>/derivatives/prlkit/sub-<id>/[ses-<s>/]anat/` (beside `prlkit predict`'s
files, told apart by `desc-prlseg`): `_desc-prlseg_dseg.nii.gz` (0 background, 1 non-PRL, 2 PRL)
with its `.tsv` look-up table, `_label-nonPRL_desc-prlseg_probseg.nii.gz` and
`_label-PRL_desc-prlseg_probseg.nii.gz`, and `_desc-prlseg_lesions.tsv` (every annotated lesion:
prl_mean, prl_max, score = the raw lesion score, probability = its calibrated P(Rim+), rim_pred at the
model's threshold; with phase input also the sign convention and acquisition used, as `prlkit predict` writes).
With expert rim labels, `prlseg_metrics.tsv` gives the paper's metrics per session and pooled; with
the fold models of a cv run, each participant of that run is segmented by its held-out fold's model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from prlkit.atomic import atomic_path, write_text_atomic
from prlkit.data.bids import SessionFiles
from prlkit.data.images import write_nifti
from prlkit.data.session import load_session
from prlkit.data.susceptibility import READING_COLUMNS
from prlkit.errors import InputFileError, PrlkitError
from prlkit.eval.folds import load_folds
from prlkit.predict import session_outputs, write_dataset_description
from prlkit.provenance import model_provenance
from prlkit.segment.model import METHOD, SegmentationModel, load_segmentation_model, segment_lesions
from prlkit.segment.readout import confusion_matrix, detection_f1, dice_per_class
from prlkit.segment.volumes import CLASS_NAMES, NON_PRL, PRL, SegmentVolume, load_segment_volume

LESION_COLUMNS = [
    "index", "voxels", "volume_mm3", "center_vox_i", "center_vox_j", "center_vox_k",
    "center_mm_x", "center_mm_y", "center_mm_z", "prl_mean", "prl_max", "score", "probability", "rim_pred", "excluded",
]


@dataclass
class SegmentationModels:
    """One trained model, or the fold models of a cv run; `held_out` maps each participant of that
    run to the model of the fold that never saw it, so labelled sessions get out-of-fold metrics.
    `provenance`: the model folders (`prlkit.provenance.model_provenance`), for dataset_description.json."""

    models: list[SegmentationModel]
    held_out: dict[str, SegmentationModel] = field(default_factory=dict)
    provenance: list[dict[str, Any]] = field(default_factory=list)

    def for_participant(self, participant_id: str) -> list[SegmentationModel]:
        """The participant's out-of-fold model, or else every model (their mean is used)."""
        return [self.held_out[participant_id]] if participant_id in self.held_out else self.models


def load_segmentation_models(folder: Path) -> SegmentationModels:
    """A `prlkit segment train` folder (one model), or a `prlkit cv` folder (its prlseg fold models)."""
    if (folder / "model.json").is_file():
        return SegmentationModels([load_segmentation_model(folder)], provenance=[model_provenance(folder)])
    fold_dirs = sorted(path.parent for path in (folder / METHOD).glob("fold-*/model.json"))
    if not fold_dirs or not (folder / "folds.tsv").is_file():
        raise InputFileError(folder,
                             f"neither a segment train folder (model.json) nor a cv folder with {METHOD} models")
    models = {int(path.name.removeprefix("fold-")): load_segmentation_model(path) for path in fold_dirs}
    first = next(iter(models.values())).config
    if any((m.config.segment, m.config.patches) != (first.segment, first.patches) for m in models.values()):
        raise InputFileError(folder, "fold models disagree on segmentation or normalisation settings")
    folds = load_folds(folder / "folds.tsv")
    held_out = {pid: models[fold] for pid, fold in zip(folds["participant_id"], folds["fold"]) if fold in models}
    return SegmentationModels(list(models.values()), held_out, [model_provenance(path) for path in fold_dirs])


def segmentation_paths(root: Path, files: SessionFiles) -> dict[str, Path]:
    """Where a session's segmentation outputs go (the folder of `prlkit predict`'s outputs)."""
    folder, name = session_outputs(root, files)["lesions"].parent, files.name
    return {
        "dseg": folder / f"{name}_desc-{METHOD}_dseg.nii.gz",
        "dseg_table": folder / f"{name}_desc-{METHOD}_dseg.tsv",
        **{f"probseg_{CLASS_NAMES[label]}": folder / f"{name}_label-{CLASS_NAMES[label]}_desc-{METHOD}_probseg.nii.gz"
           for label in (NON_PRL, PRL)},
        "lesions": folder / f"{name}_desc-{METHOD}_lesions.tsv",
    }


def write_segmentation(root: Path, volume: SegmentVolume, probabilities: np.ndarray, table: pd.DataFrame) -> None:
    """3-class map (+ look-up table), the two lesion-class probability maps and the lesion table, atomically."""
    paths, affine = segmentation_paths(root, volume.session.files), volume.session.affine
    write_nifti(paths["dseg"], probabilities.argmax(0).astype(np.uint8), affine)
    write_text_atomic(paths["dseg_table"],
                      "index\tname\n" + "".join(f"{i}\t{CLASS_NAMES[i]}\n" for i in (NON_PRL, PRL)))
    for label in (NON_PRL, PRL):
        write_nifti(paths[f"probseg_{CLASS_NAMES[label]}"], probabilities[label].astype(np.float32), affine)
    with atomic_path(paths["lesions"]) as tmp:
        columns = LESION_COLUMNS + [column for column in READING_COLUMNS if column in table]
        table[columns].to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def labelled_decisions(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Expert labels and PRL decisions of the included, labelled lesions of a scored lesion table."""
    labelled = table[(table["excluded"] == "") & table["rim"].notna()]
    return labelled["rim"].astype(int).to_numpy(), labelled["rim_pred"].to_numpy()


def session_metrics(volume: SegmentVolume, probabilities: np.ndarray, table: pd.DataFrame) -> dict:
    """Dice per class and lesion detection F1 of one labelled session."""
    y, decision = labelled_decisions(table)
    confusion = confusion_matrix(volume.target, probabilities.argmax(0))
    return {"participant_id": volume.session.files.participant_id, "session_id": volume.session.files.session_id or "",
            **dice_per_class(confusion), "n_lesions": len(y), "n_prl": int(y.sum()), "n_prl_pred": int(decision.sum()),
            "f1": detection_f1(y, decision)}


def predict_segmentation(sessions: list[SessionFiles], models: SegmentationModels, out: Path, device: torch.device,
                         progress: bool = True, source: Path | None = None) -> pd.DataFrame | None:
    """Check every session, then segment each one (mean class probabilities and mean calibrated lesion
    probability of its models, mean threshold) and write its outputs; with rim labels, also the paper's
    metrics (returned, and written). `source`: the dataset, recorded in dataset_description.json."""
    from tqdm.auto import tqdm

    if not sessions:
        raise PrlkitError("no sessions to segment")
    config = models.models[0].config
    for files in tqdm(sessions, desc="check", unit="session", disable=not progress):
        load_session(files, config.lesions)
    write_dataset_description(out, source, models.provenance)
    rows, decisions = [], []
    for files in tqdm(sessions, desc="segment", unit="session", disable=not progress):
        volume = load_segment_volume(files, config)
        probabilities, table = segment_lesions(volume, models.for_participant(files.participant_id), device)
        table = table.assign(**volume.session.reading)  # phase input: the sign and acquisition used
        write_segmentation(out, volume, probabilities, table)
        if table["rim"].notna().any():
            rows.append(session_metrics(volume, probabilities, table))
            decisions.append(labelled_decisions(table))
    if not rows:
        return None
    metrics = pd.DataFrame(rows)
    y, decision = (np.concatenate(parts) for parts in zip(*decisions))
    pooled = {"global_f1": detection_f1(y, decision), "n_sessions": len(metrics),
              **{c: float(metrics[c].mean()) for c in ("dice_nonPRL", "dice_PRL")},
              **{f"{c}_sd": float(metrics[c].std()) for c in ("dice_nonPRL", "dice_PRL")}}
    base = out / "derivatives" / "prlkit"
    with atomic_path(base / f"{METHOD}_metrics.tsv") as tmp:
        metrics.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    write_text_atomic(base / f"{METHOD}_metrics.json", json.dumps(pooled, indent=2) + "\n")
    return metrics
