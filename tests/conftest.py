"""Tiny hand-built cohorts (a few kB per volume) for the data-layer tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

# Tests run in pytest-xdist workers (one per core): tiny convolutions gain nothing from a second
# thread and lose 10x when another worker holds that core.
torch.set_num_threads(1)

SHAPE = (24, 24, 24)
AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


def ball(shape, center, radius) -> np.ndarray:
    """Boolean ball of `radius` voxels around `center`."""
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    return np.linalg.norm(grid - np.asarray(center), axis=-1) <= radius


def save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def subject_volumes(seed: int = 0, shape=SHAPE):
    """QSM (ppm), FLAIR and an instance map with two lesions (radius 3 -> 123 voxels, radius 2)."""
    rng = np.random.default_rng(seed)
    instances = np.zeros(shape, dtype=np.uint8)
    instances[ball(shape, (8, 8, 8), 3)] = 1
    instances[ball(shape, (16, 15, 14), 2)] = 2
    flair = (100 + 10 * rng.standard_normal(shape)).astype(np.float32)
    flair[instances > 0] += 80
    qsm = (0.01 * rng.standard_normal(shape)).astype(np.float32)
    return qsm, flair, instances


def write_subject(root: Path, participant: str, session: str | None = None, rims=(1, 0), ext=".nii.gz", seed=0):
    """Write one session in the docs/data.md layout; returns the paths by role."""
    prefix = f"{participant}_{session}" if session else participant
    rel = Path(participant, session, "anat") if session else Path(participant, "anat")
    qsm, flair, instances = subject_volumes(seed)
    lesion_dir = root / "derivatives" / "lesions" / rel
    paths = {
        "qsm": save(root / rel / f"{prefix}_Chimap{ext}", qsm),
        "flair": save(root / rel / f"{prefix}_FLAIR{ext}", flair),
        "lesions": save(lesion_dir / f"{prefix}_desc-lesions_dseg{ext}", instances),
        "table": lesion_dir / f"{prefix}_desc-lesions_dseg.tsv",
    }
    rows = "".join(f"{i}\tlesion{i}\t{r}\n" for i, r in enumerate(rims, start=1))
    paths["table"].write_text("index\tname\trim\n" + rows)
    return paths


def write_bids(root: Path, participants=("sub-01", "sub-02"), sessions=(None,), **kwargs) -> Path:
    """A tiny BIDS cohort with dataset_description.json and participants.tsv (site column)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "tiny", "BIDSVersion": "1.9.0"}))
    (root / "participants.tsv").write_text(
        "participant_id\tsite\n" + "".join(f"{p}\tA\n" for p in participants)
    )
    for n, participant in enumerate(participants):
        for session in sessions:
            write_subject(root, participant, session, seed=n, **kwargs)
    return root


@pytest.fixture
def bids(tmp_path) -> Path:
    return write_bids(tmp_path / "bids")


# QSMRim-Net in plumbing tests: prlkit's first-order features, one network, one epoch (the paper's default
# is 527 pyradiomics features, a 3-seed vote and a fixed 40 epochs)
QSMRIMNET_TINY = {"network": {"features": "first_order", "seeds": 1}, "finetune": {"max_epochs": 1, "patience": 1}}


def tiny_config(**sections) -> dict:
    """A config sized for CPU-second pipeline tests (16³ patches, a 2/4/8/16-wide network); each keyword
    updates that section, mappings merged key by key, e.g. tiny_config(finetune={"max_epochs": 2})."""
    config = {
        "profile": "quick",
        "patches": {"size": 16},
        # one forward pass per lesion: these tests check wiring; quick's symmetry average has its own tests
        "frodo": {"base_width": 2, "se_reduction": 4, "test_time_symmetries": "none"},
        "pretrain": {"max_epochs": 1, "batch_size": 8},
        "finetune": {"max_epochs": 1, "batch_size": 8},
        "methods": {"aprl": {"network": {"n_estimators": 20}},  # the tests check wiring, not the forest
                    "qsmrimnet": QSMRIMNET_TINY},
    }
    return _merged(config, sections)


def _merged(base: dict, update: dict) -> dict:
    """`base` updated by `update`, nested mappings merged rather than replaced."""
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) \
            else value
    return merged


@pytest.fixture
def pyradiomics_installed() -> None:
    """Skip without pyradiomics, except in CI (`CI` set): the README's test command installs it there,
    so a broken install fails the run instead of silently skipping the QSMRim-Net feature tests."""
    if os.environ.get("CI"):
        import radiomics  # noqa: F401
    else:
        pytest.importorskip("radiomics", reason="pyradiomics not installed (extra [radiomics])")


REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "open_ms_data"


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real MS scans not available at {REALDATA} (shared/realdata is outside the repository)")
    return REALDATA


def write_toy_rim_cohort(root: Path, n_participants: int = 8, seed: int = 0, shape=(40, 40, 40),
                         radii=(4, 4, 4, 4)) -> Path:
    """A cohort where the rim is obvious: 4 lesions (`radii`) per person, Rim+ ones with a bright QSM shell.

    For learning tests: a working pipeline must separate the classes almost perfectly.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "toy-rim", "BIDSVersion": "1.9.0"}))
    ids = [f"sub-{n:02d}" for n in range(n_participants)]
    (root / "participants.tsv").write_text("participant_id\n" + "".join(f"{p}\n" for p in ids))
    centers = [(10, 10, 10), (10, 29, 20), (29, 12, 28), (28, 28, 12)]
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    for n, participant in enumerate(ids):
        instances = np.zeros(shape, np.uint8)
        qsm = (0.02 * rng.standard_normal(shape)).astype(np.float32)
        flair = (100 + 5 * rng.standard_normal(shape)).astype(np.float32)
        rims = [(n + k) % 3 == 0 for k in range(4)]
        for label, (center, rim, radius) in enumerate(zip(centers, rims, radii), start=1):
            distance = np.linalg.norm(grid - np.asarray(center), axis=-1)
            instances[distance <= radius] = label
            flair[distance <= radius] += 60
            if rim:
                qsm[(distance > radius - 1) & (distance <= radius + 1)] += 0.15
        rel = Path(participant, "anat")
        save(root / rel / f"{participant}_Chimap.nii.gz", qsm)
        save(root / rel / f"{participant}_FLAIR.nii.gz", flair)
        lesion_dir = root / "derivatives" / "lesions" / rel
        save(lesion_dir / f"{participant}_desc-lesions_dseg.nii.gz", instances)
        rows = "".join(f"{k}\t{int(r)}\n" for k, r in enumerate(rims, start=1))
        (lesion_dir / f"{participant}_desc-lesions_dseg.tsv").write_text("index\trim\n" + rows)
    return root


def write_predicted_lesions(path: Path, rows: list[dict]) -> None:
    """A `_lesions.tsv` as `prlkit predict` writes it (excluded lesions: empty probability); `rows` give at
    least `index` and `probability`, the other columns take neutral defaults."""
    import pandas as pd

    from prlkit.predict import LESION_OUTPUT_COLUMNS

    defaults = dict(voxels=200, volume_mm3=200.0, center_vox_i=1, center_vox_j=1, center_vox_k=1,
                    center_mm_x=0.0, center_mm_y=0.0, center_mm_z=0.0, rim_pred=0, touches_border=False,
                    excluded="")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([{**defaults, **row} for row in rows])[LESION_OUTPUT_COLUMNS]
    table.to_csv(path, sep="\t", index=False, float_format="%.6g")
