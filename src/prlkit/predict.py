"""Run a trained model (or the fold ensemble of a `prlkit cv` run) on new sessions.

Writes the BIDS-derivatives output of docs/data.md: per session a probability map, a Rim-/Rim+
dseg with its look-up table and a per-lesion table; `subjects.tsv` summarises every session found
in the output folder, so jobs split by `--participant-label` can share one output folder.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from prlkit import __version__
from prlkit.atomic import atomic_path, remove_stale, staged_output, write_text_atomic
from prlkit.config import Config
from prlkit.data.bids import PrlkitWarning, SessionFiles
from prlkit.data.features import session_features
from prlkit.data.images import write_nifti
from prlkit.data.patches import session_patches
from prlkit.data.session import SessionData, load_session
from prlkit.data.susceptibility import READING_COLUMNS
from prlkit.errors import InputFileError, PrlkitError
from prlkit.methods.trained import TrainedModel, load_trained_model
from prlkit.models.frodo import inference_model
from prlkit.provenance import model_provenance, software_versions, source_dataset

CHRONIC_ACTIVE_MIN = 4  # Rim+ lesions that make a patient "chronic active"
LESION_OUTPUT_COLUMNS = [
    "index", "voxels", "volume_mm3", "center_vox_i", "center_vox_j", "center_vox_k",
    "center_mm_x", "center_mm_y", "center_mm_z", "probability", "rim_pred", "touches_border", "excluded",
]
SKIPPED_COLUMNS = ["participant_id", "session_id", "file", "problem"]


@dataclass
class Ensemble:
    """One model, or the fold models of a cv run: mean calibrated probability, mean threshold.
    `provenance`: the model folders (`prlkit.provenance.model_provenance`), for dataset_description.json."""

    models: list[TrainedModel]
    provenance: list[dict[str, Any]] = field(default_factory=list)

    @property
    def config(self) -> Config:
        return self.models[0].config

    @property
    def threshold(self) -> float:
        return float(np.mean([m.threshold for m in self.models]))

    @property
    def needs_features(self) -> bool:
        return any(m.needs_features for m in self.models)

    @property
    def feature_set(self) -> str:
        return self.models[0].feature_set

    def probabilities(
        self, patches: np.ndarray, device: torch.device, features: np.ndarray | None = None
    ) -> np.ndarray:
        return np.mean([m.probabilities(patches, device, features) for m in self.models], axis=0)

    def lesion_table(self, data: SessionData, device: torch.device) -> pd.DataFrame:
        """The session's lesion table with `probability` and `rim_pred` (see `predict_session`)."""
        return predict_session(data, self, device)


def load_for_inference(folder: Path, fast: bool = True) -> TrainedModel:
    """A saved model; with `fast`, its network is :func:`prlkit.models.frodo.inference_model`'s copy."""
    model = load_trained_model(folder)
    return dataclasses.replace(model, module=inference_model(model.module)) if fast else model


def load_ensemble(folder: Path, method: str | None = None, fast: bool = True) -> Ensemble:
    """A `prlkit train` folder (model.json), or a `prlkit cv` folder (fold models of `method`).

    `fast=False` keeps the networks as trained (for benchmarks; predictions agree within 2e-5).
    """
    if (folder / "model.json").is_file():
        return Ensemble([load_for_inference(folder, fast)], [model_provenance(folder)])
    if not (folder / "folds.tsv").is_file():
        raise InputFileError(folder, "neither a prlkit train folder (model.json) nor a prlkit cv folder (folds.tsv)")
    if method is None:
        results = folder / "results.json"
        method = json.loads(results.read_text())["reference"] if results.is_file() else "frodo"
    fold_dirs = sorted((folder / method).glob("fold-*/model.json"))
    if not fold_dirs:
        raise InputFileError(folder / method, f"no trained fold models of method {method}")
    models = [load_for_inference(path.parent, fast) for path in fold_dirs]
    if any(m.config.patches != models[0].config.patches or m.feature_set != models[0].feature_set for m in models):
        raise InputFileError(folder, "fold models disagree on patch settings or lesion features")
    return Ensemble(models, [model_provenance(path.parent) for path in fold_dirs])


def predict_session(data: SessionData, ensemble: Ensemble, device: torch.device) -> pd.DataFrame:
    """The session's lesion table with `probability` and `rim_pred` (NaN / 0 for excluded lesions)."""
    table = data.lesions.copy()
    included = (table["excluded"] == "").to_numpy()
    probability = np.full(len(table), np.nan)
    if included.any():
        patches = session_patches(data, table[included], ensemble.config.patches)
        features = session_features(data, table[included], ensemble.feature_set) if ensemble.needs_features else None
        probability[included] = ensemble.probabilities(patches, device, features)
    table["probability"] = probability
    table["rim_pred"] = (np.nan_to_num(probability, nan=0.0) >= ensemble.threshold).astype(int)
    return table


@dataclass(frozen=True)
class PredictedSession:
    """What writing a session's outputs needs, kept small: the lesion voxels, not the volumes."""

    files: SessionFiles
    affine: np.ndarray
    shape: tuple[int, ...]
    voxels: np.ndarray  # flat indices of the lesion voxels
    labels: np.ndarray  # their lesion instance labels
    table: pd.DataFrame

    @classmethod
    def of(cls, data: SessionData, table: pd.DataFrame) -> PredictedSession:
        voxels = np.flatnonzero(data.instances)
        return cls(data.files, data.affine, data.instances.shape, voxels, data.instances.flat[voxels], table)

    @property
    def instances(self) -> np.ndarray:
        """The lesion instance map, rebuilt from the lesion voxels."""
        volume = np.zeros(self.shape, dtype=self.labels.dtype)
        volume.flat[self.voxels] = self.labels
        return volume


def session_outputs(root: Path, files: SessionFiles) -> dict[str, Path]:
    """Where a session's outputs go under `<root>/derivatives/prlkit`."""
    rel = (Path(files.participant_id, files.session_id, "anat") if files.session_id
           else Path(files.participant_id, "anat"))
    folder = root / "derivatives" / "prlkit" / rel
    return {
        "probseg": folder / f"{files.name}_desc-rim_probseg.nii.gz",
        "dseg": folder / f"{files.name}_desc-rim_dseg.nii.gz",
        "dseg_table": folder / f"{files.name}_desc-rim_dseg.tsv",
        "lesions": folder / f"{files.name}_lesions.tsv",
    }


def write_session(root: Path, data: SessionData | PredictedSession, table: pd.DataFrame) -> None:
    """Probability map, Rim-/Rim+ dseg (+ look-up table) and the per-lesion table, each atomically."""
    paths = session_outputs(root, data.files)
    labels = table["index"].to_numpy(dtype=np.int64)  # an empty map's table has float columns
    instances = data.instances
    lookup_probability = np.zeros(int(instances.max(initial=0)) + 1, dtype=np.float32)
    lookup_class = np.zeros_like(lookup_probability, dtype=np.uint8)
    included = (table["excluded"] == "").to_numpy()
    lookup_probability[labels[included]] = table["probability"].to_numpy()[included]
    lookup_class[labels[included]] = 1 + table["rim_pred"].to_numpy()[included]
    write_nifti(paths["probseg"], lookup_probability[instances], data.affine)
    write_nifti(paths["dseg"], lookup_class[instances], data.affine)
    write_text_atomic(paths["dseg_table"], "index\tname\n1\trim_negative\n2\trim_positive\n")
    with atomic_path(paths["lesions"]) as tmp:
        columns = LESION_OUTPUT_COLUMNS + [column for column in READING_COLUMNS if column in table]
        table[columns].to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def write_dataset_description(root: Path, source: Path | None = None,
                              models: list[dict[str, Any]] | None = None) -> None:
    """BIDS-derivatives dataset_description.json: GeneratedBy names prlkit, its version, the software versions
    and the `models` used (`prlkit.provenance.model_provenance`); SourceDatasets the predicted dataset.

    `source` (the BIDS folder or manifest) goes to SourceDatasets as a file URL (`prlkit report` reads it),
    with the DOI and Name of its own dataset_description.json when it has them.
    """
    generated_by = {"Name": "prlkit", "Version": __version__, "Software": software_versions(), "Models": models or []}
    description = {
        "Name": "prlkit paramagnetic rim lesion predictions",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by],
    } | ({"SourceDatasets": [source_dataset(source)]} if source else {})
    write_text_atomic(root / "derivatives" / "prlkit" / "dataset_description.json",
                      json.dumps(description, indent=2) + "\n")


def write_subjects_table(root: Path, threshold_count: int = CHRONIC_ACTIVE_MIN) -> pd.DataFrame:
    """subjects.tsv from every per-lesion table under the output folder (all jobs' sessions)."""
    base = root / "derivatives" / "prlkit"
    rows = []
    for path in sorted(base.glob("sub-*/**/*_lesions.tsv")):
        entities = dict(part.split("-", 1) for part in path.name[: -len("_lesions.tsv")].split("_"))
        lesions = pd.read_csv(path, sep="\t", keep_default_na=False, na_values={"probability": [""]})
        included = lesions[lesions["excluded"] == ""]
        n_rim = int(included["rim_pred"].sum())
        rows.append({
            "participant_id": f"sub-{entities['sub']}",
            "session_id": f"ses-{entities['ses']}" if "ses" in entities else "",
            "n_lesions": len(lesions),
            "n_classified": len(included),
            "n_rim_pred": n_rim,
            "expected_rim_count": round(float(included["probability"].sum()), 4),
            "chronic_active": int(n_rim >= threshold_count),
        })
    table = pd.DataFrame(rows)
    with atomic_path(base / "subjects.tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    return table


def predict_sessions(sessions: list[SessionFiles], ensemble: Ensemble, out: Path, device: torch.device,
                     progress: bool = True, skip_invalid: bool = False,
                     source: Path | None = None) -> pd.DataFrame:
    """Read, check and predict every session first (so bad input leaves no output), then write them all.
    `ensemble`: an Ensemble, or prlseg models (`prlkit.segment.predict.SegmentationPredictor`).

    Each session is read once; between the two passes only its lesion table and lesion voxels
    are kept (:class:`PredictedSession`), not its volumes. The outputs are written to a staging
    folder in `out` and moved into place at the end (:func:`prlkit.atomic.staged_output`). With
    `skip_invalid` a session that fails its checks is listed in skipped_sessions.tsv instead of
    stopping the run. `source`: the dataset, recorded in dataset_description.json.
    """
    from tqdm.auto import tqdm

    if not sessions:
        raise PrlkitError("no sessions to predict")
    predicted, skipped = [], []
    for files in tqdm(sessions, desc="predict", unit="session", disable=not progress):
        try:
            data = load_session(files, ensemble.config.lesions)
            predicted.append(PredictedSession.of(data, ensemble.lesion_table(data, device).assign(**data.reading)))
        except PrlkitError as error:
            if skip_invalid:
                skipped.append(_skipped_row(files, error))
            elif isinstance(error, InputFileError) and len(sessions) > 1:
                hint = "--skip-invalid predicts the other sessions"
                raise InputFileError(error.path, f"{error.problem} ({hint})") from None
            else:
                raise
    if not predicted:
        first = skipped[0]
        raise PrlkitError(f"all {len(sessions)} session(s) are invalid, e.g. {first['file']}: {first['problem']}")
    base = Path("derivatives", "prlkit")
    remove_stale(out / base)
    with staged_output(out) as staging:
        write_dataset_description(staging, source, ensemble.provenance)
        for session in tqdm(predicted, desc="write", unit="session", disable=not progress):
            write_session(staging, session, session.table)
        if skip_invalid:
            with atomic_path(staging / base / "skipped_sessions.tsv") as tmp:
                pd.DataFrame(skipped, columns=SKIPPED_COLUMNS).to_csv(tmp, sep="\t", index=False)
    if skipped:
        names = ", ".join(f"{row['participant_id']} {row['session_id']}".strip() for row in skipped)
        warnings.warn(f"{out / base / 'skipped_sessions.tsv'}: skipped {len(skipped)} of {len(sessions)} session(s) "
                      f"as invalid ({names})", PrlkitWarning, stacklevel=2)
    return write_subjects_table(out)


def _skipped_row(files: SessionFiles, error: PrlkitError) -> dict[str, str]:
    """A skipped_sessions.tsv row: the session, the file at fault (when known) and the problem."""
    path, problem = (error.path, error.problem) if isinstance(error, InputFileError) else ("", str(error))
    return {"participant_id": files.participant_id, "session_id": files.session_id or "", "file": str(path),
            "problem": problem}
