"""Patch sets for a whole cohort, cached on disk so a second run does not recompute.

A cache entry is a folder named by a hash of the prlkit version, the patch and lesion settings and
every input file's path, size and modification time: any change of version, settings or inputs gives
a new key, so stale patches are never reused. The version stands for the extraction code: a change to
how patches or features are computed ships under a new version (a `.devN` one between releases).

The folder holds `patches.npy` (float16, memory-mappable, shape (N, 3, S, S, S), channels
`prlkit.data.patches.CHANNELS`), `lesions.tsv` (every lesion of the cohort, excluded ones too; column
`patch` is the row in patches.npy or -1), `features.npy` (float64 (L, F): lesion-level QSM features of
every lesion-table row, from the raw map in ppm, see `prlkit.data.features`), `features.json`
(their names, in column order) and `config.json`; `features-<set>.npy` holds an opt-in feature
set once a method asked for it (`with_feature_set`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import prlkit
from prlkit.atomic import atomic_directory, atomic_path, write_text_atomic
from prlkit.config import Config, LesionConfig
from prlkit.data.bids import Cohort, SessionFiles
from prlkit.data.features import FEATURE_DTYPE, FEATURE_NAMES, feature_names, session_features
from prlkit.data.patches import CHANNELS, session_patches
from prlkit.data.session import load_session
from prlkit.errors import PrlkitError

CACHE_DTYPE = np.float16  # halves disk and memory; 5e-4 relative precision is far below MRI noise


@dataclass(frozen=True)
class PatchSet:
    """Patches of every included lesion of a cohort, the lesion table that indexes them and the
    lesion features (row i of `features` belongs to row i of `lesions`, excluded lesions too)."""

    patches: np.ndarray
    lesions: pd.DataFrame
    folder: Path
    features: np.ndarray
    feature_names: tuple[str, ...]
    sessions: tuple[SessionFiles, ...] = ()  # the cohort's files, for methods that need whole volumes

    def labelled(self) -> pd.DataFrame:
        """Rows with a patch and an expert rim label (the training material)."""
        return self.lesions[(self.lesions["patch"] >= 0) & self.lesions["rim"].notna()]

    def session_files(self, participant_id: str, session_id: str) -> SessionFiles:
        """The files of one session of the lesion table (`session_id` "" for none)."""
        for files in self.sessions:
            if (files.participant_id, files.session_id or "") == (participant_id, session_id):
                return files
        raise PrlkitError(f"patch set {self.folder}: no files of session {participant_id} {session_id}".rstrip())


def default_cache_dir() -> Path:
    """$PRLKIT_CACHE, else ~/.cache/prlkit."""
    return Path(os.environ.get("PRLKIT_CACHE", Path.home() / ".cache" / "prlkit"))


def cache_key(cohort: Cohort, config: Config) -> str:
    """Hash of the prlkit version (the code that computes patches), the settings that shape them and every
    input file's identity."""
    files = []
    for session in cohort.sessions:
        susceptibility = session.phase if session.susceptibility == "phase" else session.qsm
        for path in (susceptibility, session.flair, session.lesions, session.rim_table, session.prl_mask):
            if path is not None:
                stat = path.stat()
                files.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    payload = {
        "prlkit": prlkit.__version__,
        "lesions": dataclasses.asdict(config.lesions),
        "patches": dataclasses.asdict(config.patches),
        "files": files,
    }
    units = sorted({session.qsm_unit for session in cohort.sessions} - {"ppm"})
    if units:  # QSM read from another unit than ppm; the default leaves earlier keys valid
        payload["qsm_units"] = units
    readings = sorted({session.phase_sign for session in cohort.sessions if session.susceptibility == "phase"})
    if readings:  # phase input and its sign choice (a QSM run's phase_sign reads nothing and changes no patch)
        payload["susceptibility"] = ["phase", *readings]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def build_patch_set(cohort: Cohort, config: Config, cache_dir: Path | None = None, progress: bool = True) -> PatchSet:
    """Load the cached patch set for this cohort and config, or compute and cache it."""
    folder = (cache_dir or default_cache_dir()) / f"patches-{cache_key(cohort, config)}"
    if (folder / "patches.npy").is_file():
        return dataclasses.replace(_load(folder), sessions=tuple(cohort.sessions))
    tables, arrays, features = [], [], []
    for session in tqdm(cohort.sessions, desc="patches", unit="session", disable=not progress):
        data = load_session(session, config.lesions)
        table = data.lesions.assign(**data.reading)  # phase input: the sign and acquisition used, per lesion row
        table.insert(0, "session_id", session.session_id or "")
        table.insert(0, "participant_id", session.participant_id)
        included = table["excluded"] == ""
        arrays.append(session_patches(data, table[included], config.patches).astype(CACHE_DTYPE))
        features.append(session_features(data, table))
        tables.append(table)
    lesions = pd.concat(tables, ignore_index=True)
    included = (lesions["excluded"] == "").to_numpy()
    lesions["patch"] = np.where(included, np.cumsum(included) - 1, -1)
    size = config.patches.size
    patches = np.concatenate(arrays) if arrays else np.zeros((0, len(CHANNELS), size, size, size), CACHE_DTYPE)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_directory(folder) as tmp:
            np.save(tmp / "patches.npy", patches)
            np.save(tmp / "features.npy", np.concatenate(features) if features else
                    np.zeros((0, len(FEATURE_NAMES)), FEATURE_DTYPE))
            write_text_atomic(tmp / "features.json", json.dumps({"names": list(FEATURE_NAMES), "units": "ppm"}))
            lesions.to_csv(tmp / "lesions.tsv", sep="\t", index=False)
            write_text_atomic(tmp / "config.json", json.dumps(dataclasses.asdict(config), indent=2))
    except FileExistsError:  # another process cached the same key meanwhile
        pass
    return dataclasses.replace(_load(folder), sessions=tuple(cohort.sessions))


def with_feature_set(patch_set: PatchSet, feature_set: str, lesion_config: LesionConfig,
                     progress: bool = True) -> PatchSet:
    """The patch set with lesion features of `feature_set` (rows of lesions without a patch: NaN).

    Sets other than the cached default are computed once from the sessions' files and stored next
    to the patches as `features-<set>.npy`, so every fold and method of a run reuses them.
    """
    names = feature_names(feature_set)
    if names == patch_set.feature_names:
        return patch_set
    path = patch_set.folder / f"features-{feature_set}.npy"
    if not path.is_file():
        features = np.full((len(patch_set.lesions), len(names)), np.nan, FEATURE_DTYPE)
        with_patch = patch_set.lesions[patch_set.lesions["patch"] >= 0]
        groups = with_patch.groupby(["participant_id", "session_id"], sort=False)
        for (participant, session), rows in tqdm(groups, desc=f"{feature_set} features", unit="session",
                                                 disable=not progress):
            data = load_session(patch_set.session_files(participant, session), lesion_config)
            features[rows.index.to_numpy()] = session_features(data, rows, feature_set)
        with atomic_path(path) as tmp:
            np.save(tmp, features)
    return dataclasses.replace(patch_set, features=np.load(path), feature_names=names)


def _load(folder: Path) -> PatchSet:
    patches = np.load(folder / "patches.npy", mmap_mode="r")
    lesions = pd.read_csv(
        folder / "lesions.tsv", sep="\t", dtype={"participant_id": str, "session_id": str, "rim": "Int64"},
        keep_default_na=False, na_values={"rim": [""]},
    )
    names = tuple(json.loads((folder / "features.json").read_text())["names"])
    return PatchSet(patches=patches, lesions=lesions, folder=folder, features=np.load(folder / "features.npy"),
                    feature_names=names)
