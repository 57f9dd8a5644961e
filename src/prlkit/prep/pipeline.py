"""`prlkit prepare`: each session's images and label maps registered (rigid) and resampled onto one
reference grid, written as a new BIDS folder with the input's layout (docs/data.md)."""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm import tqdm

from prlkit import __version__
from prlkit.atomic import atomic_directory
from prlkit.data.bids import Cohort, PrlkitWarning, SessionFiles, bids_label, read_table
from prlkit.data.images import (
    GRID_TOLERANCE_MM,
    Volume,
    corner_distance_mm,
    read_label_volume,
    read_volume,
    write_nifti,
)
from prlkit.errors import InputFileError, PrlkitError
from prlkit.prep.qc import write_qc_png
from prlkit.prep.register import (
    N4Settings,
    RegistrationSettings,
    from_sitk,
    identity_transform,
    motion_summary,
    n4_correct,
    require_sitk,
    resample,
    rigid_register,
    to_sitk,
)

if TYPE_CHECKING:
    import SimpleITK as sitk

log = logging.getLogger(__name__)

MODALITIES = {"T1w": "t1w", "FLAIR": "flair", "Chimap": "qsm"}  # BIDS suffix -> SessionFiles field
BIAS_CORRECTED = ("T1w", "FLAIR")  # never QSM: its values are susceptibilities (ppm)
LABEL_HOSTS = ("FLAIR", "T1w", "Chimap")  # a label map lives in the space of the first of these sharing its grid
LABEL_MAPS = {"lesions": "desc-lesions_dseg", "prl_mask": "desc-prl_mask"}  # SessionFiles field -> BIDS suffix
DERIVATIVE = Path("derivatives", "prlkit-prepare")
REPORT_COLUMNS = ["participant_id", "session_id", "image", "reference", "registration", "mattes_mi",
                  "rotation_deg", "displacement_mm", "n4", "dropped_labels"]


@dataclass(frozen=True)
class PrepareSettings:
    """Reference modality (None: T1w where the session has one, else FLAIR), N4 on/off, algorithm settings."""

    reference: str | None = None
    n4: bool = False
    registration: RegistrationSettings = field(default_factory=RegistrationSettings)
    bias: N4Settings = field(default_factory=N4Settings)


def prepare_cohort(cohort: Cohort, out: Path, settings: PrepareSettings, progress: bool = True) -> pd.DataFrame:
    """Write the prepared cohort to `out` (all or nothing; inputs untouched); returns the per-image report."""
    require_sitk()
    out = _check_out(Path(out), cohort.root)
    with atomic_directory(out) as root:
        rows = []
        for files in tqdm(cohort.sessions, desc="sessions", unit="session", disable=not progress):
            start = time.perf_counter()
            rows += prepare_session(files, root, settings)
            log.info("%s: prepared in %.1f s", files.name, time.perf_counter() - start)
        report = pd.DataFrame(rows, columns=REPORT_COLUMNS)
        _write_dataset_files(cohort, root, settings, report)
    return report


def _check_out(out: Path, dataset_root: Path) -> Path:
    """`out` must be new (or an empty folder) and must not lie inside the input dataset."""
    if out.resolve() == dataset_root.resolve() or dataset_root.resolve() in out.resolve().parents:
        raise PrlkitError(f"--out {out}: lies inside the input dataset {dataset_root}; inputs are never modified")
    if out.exists():
        if not out.is_dir() or any(out.iterdir()):
            raise PrlkitError(f"--out {out}: already exists and is not an empty folder; choose a new output folder")
        out.rmdir()
    return out


def bids_names(files: SessionFiles) -> tuple[str, str | None, str, Path]:
    """(participant, session, file prefix, folder relative to the dataset root) with BIDS `sub-`/`ses-` prefixes."""
    participant, session = bids_label(files.participant_id, "sub"), bids_label(files.session_id, "ses")
    prefix = f"{participant}_{session}" if session else participant
    return participant, session, prefix, Path(participant, session) if session else Path(participant)


def choose_reference(files: SessionFiles, requested: str | None) -> str:
    """The reference modality of a session; an error if the requested one is absent."""
    if requested is None:
        return "T1w" if files.t1w is not None else "FLAIR"
    if getattr(files, MODALITIES[requested]) is None:
        raise PrlkitError(f"{files.name}: no {requested} image to use as --reference {requested}")
    return requested


def same_grid(a: Volume, b: Volume) -> bool:
    """Same shape and affines within GRID_TOLERANCE_MM (what `check_same_grid` accepts)."""
    return a.data.shape == b.data.shape and corner_distance_mm(a.affine, b.affine, a.data.shape) <= GRID_TOLERANCE_MM


def label_host(labels: Volume, volumes: dict[str, Volume]) -> str:
    """The modality a label map was drawn on: the first of FLAIR, T1w, Chimap sharing its grid, else FLAIR."""
    for name in LABEL_HOSTS:
        if name in volumes and same_grid(labels, volumes[name]):
            return name
    warnings.warn(f"{labels.path}: grid matches no image of the session; taken to be in FLAIR space",
                  PrlkitWarning, stacklevel=3)
    return "FLAIR"


def _finite_image(volume: Volume) -> sitk.Image:
    """The volume as a SimpleITK image with NaN/Inf (QSM outside the brain) set to 0."""
    return to_sitk(np.nan_to_num(volume.data, nan=0.0, posinf=0.0, neginf=0.0), volume.affine)


def prepare_session(files: SessionFiles, root: Path, settings: PrepareSettings) -> list[dict]:
    """Register, resample and write one session under `root`; returns one report row per image."""
    for role, path in files.missing():
        raise InputFileError(path, f"missing {role} file for {files.name}")
    participant, session, prefix, rel = bids_names(files)
    reference = choose_reference(files, settings.reference)
    volumes = {name: read_volume(getattr(files, key)) for name, key in MODALITIES.items() if getattr(files, key)}
    ref = volumes[reference]
    images = {name: _finite_image(volume) for name, volume in volumes.items()}
    corrected = {name for name in BIAS_CORRECTED if settings.n4 and name in images}
    for name in corrected:
        images[name] = n4_correct(images[name], settings.bias)
    fixed = images[reference]
    centre = np.array(fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in fixed.GetSize()]))
    base = dict(participant_id=participant, session_id=session or "", reference=reference)
    transforms, motion, outputs, rows = {}, {}, {}, []
    for name, volume in volumes.items():
        aligned = name == reference or same_grid(volume, ref)
        if aligned:  # already on the reference grid: values kept as they are (N4 aside)
            transforms[name], metric = identity_transform(), float("nan")
            outputs[name] = from_sitk(images[name])[0] if name in corrected else volume.data
        else:
            transforms[name], metric = rigid_register(fixed, images[name], settings.registration)
            outputs[name] = from_sitk(resample(images[name], fixed, transforms[name]))[0]
            xfm = root / DERIVATIVE / rel / "anat" / f"{prefix}_from-{name}_to-{reference}_mode-image_xfm.txt"
            xfm.parent.mkdir(parents=True, exist_ok=True)
            require_sitk().WriteTransform(transforms[name], str(xfm))
        write_nifti(root / rel / "anat" / f"{prefix}_{name}.nii.gz", outputs[name].astype(np.float32), ref.affine)
        motion[name] = dict(zip(("rotation_deg", "displacement_mm"), motion_summary(transforms[name], centre)))
        how = "reference" if name == reference else "same grid" if aligned else "rigid"
        rows.append(base | motion[name] | dict(image=name, registration=how, mattes_mi=metric,
                                               n4=int(name in corrected), dropped_labels=""))
    lesion_dir = root / "derivatives" / "lesions" / rel / "anat"
    for key, suffix in LABEL_MAPS.items():
        if getattr(files, key) is None:
            continue
        labels = read_label_volume(getattr(files, key))
        host = label_host(labels, volumes)
        outputs[key], dropped = _resample_labels(labels, ref, fixed, transforms[host], reference)
        dtype = np.uint16 if outputs[key].max(initial=0) <= np.iinfo(np.uint16).max else np.int32
        write_nifti(lesion_dir / f"{prefix}_{suffix}.nii.gz", outputs[key].astype(dtype), ref.affine)
        if key == "lesions" and files.rim_table is not None:
            _copy_lesion_table(files.rim_table, lesion_dir / f"{prefix}_{suffix}.tsv", dropped)
        rows.append(base | motion[host] | dict(image=key, registration=f"with {host}", mattes_mi=float("nan"), n4=0,
                                               dropped_labels=" ".join(map(str, dropped))))
    write_qc_png(outputs[reference], reference, {n: outputs[n] for n in volumes if n != reference},
                 outputs["lesions"], ref.affine,
                 root / DERIVATIVE / rel / "figures" / f"{prefix}_desc-registration_qc.png",
                 f"{prefix}: registered to {reference}")
    return rows


def _resample_labels(labels: Volume, ref: Volume, fixed: sitk.Image, transform: sitk.Transform,
                     reference: str) -> tuple[np.ndarray, np.ndarray]:
    """A label map on the reference grid (nearest neighbour) and the labels lost on the way (warned about)."""
    if same_grid(labels, ref) and np.allclose(transform.GetParameters(), 0):  # identity: copy as is
        return labels.data, np.array([], dtype=labels.data.dtype)
    moved = from_sitk(resample(to_sitk(labels.data, labels.affine), fixed, transform, labels=True))[0]
    dropped = np.setdiff1d(np.unique(labels.data), np.unique(moved))
    if dropped.size:
        warnings.warn(f"{labels.path}: label(s) {', '.join(map(str, dropped))} lie outside the {reference} grid "
                      "after resampling and are dropped", PrlkitWarning, stacklevel=3)
    return moved, dropped


def _copy_lesion_table(source: Path, target: Path, dropped: np.ndarray) -> None:
    """Copy the lesion table; rows of labels that did not survive resampling are left out."""
    target.parent.mkdir(parents=True, exist_ok=True)
    table = read_table(source)
    if not dropped.size or "index" not in table:
        shutil.copyfile(source, target)
        return
    keep = ~pd.to_numeric(table["index"], errors="coerce").isin(dropped.tolist())
    table[keep].to_csv(target, sep="\t", index=False)


def _write_dataset_files(cohort: Cohort, root: Path, settings: PrepareSettings, report: pd.DataFrame) -> None:
    """dataset_description.json, participants.tsv, and the derivative's description and report."""
    source = cohort.root / "dataset_description.json"
    description = {"Name": f"{cohort.root.name} (prepared by prlkit)", "BIDSVersion": "1.9.0"}
    if source.is_file():
        try:
            description = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise InputFileError(source, f"cannot read JSON: {error}") from None
    step = {"Name": "prlkit prepare", "Version": __version__,
            "Description": f"rigid registration to {settings.reference or 'T1w (else FLAIR)'}; "
                           f"N4 on FLAIR/T1w: {'yes' if settings.n4 else 'no'}; QSM resampled linearly"}
    description["GeneratedBy"] = [*description.get("GeneratedBy", []), step]
    (root / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    sites = {bids_names(s)[0]: s.site or "" for s in cohort.sessions}
    participants = cohort.root / "participants.tsv"
    listed = read_table(participants) if participants.is_file() else pd.DataFrame()
    if "participant_id" not in listed or set(listed["participant_id"]) != set(sites):
        listed = pd.DataFrame({"participant_id": list(sites)})  # a manifest CSV: the table comes from its rows
    if any(sites.values()):  # the sites prlkit read (from participants.tsv, or the manifest) win
        listed["site"] = listed["participant_id"].map(sites)
    listed.to_csv(root / "participants.tsv", sep="\t", index=False)
    derivative = root / DERIVATIVE
    derivative.mkdir(parents=True, exist_ok=True)
    (derivative / "dataset_description.json").write_text(json.dumps(
        {"Name": "prlkit prepare: transforms, QC figures, report", "BIDSVersion": "1.9.0",
         "DatasetType": "derivative", "GeneratedBy": [step]}, indent=2) + "\n", encoding="utf-8")
    report.to_csv(derivative / "prepare.tsv", sep="\t", index=False, float_format="%.4g")
