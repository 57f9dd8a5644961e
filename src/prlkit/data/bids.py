"""Find the sessions of a cohort, from a BIDS folder or a manifest CSV (see docs/data.md)."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from prlkit.errors import InputFileError


class PrlkitWarning(UserWarning):
    """Input that is usable but deserves the user's attention (shown, and listed by `validate`)."""


@dataclass(frozen=True)
class SessionFiles:
    """The files of one imaging session; a modality is None where no file was found."""

    participant_id: str
    session_id: str | None
    qsm: Path | None
    flair: Path | None
    lesions: Path | None
    t1w: Path | None = None
    rim_table: Path | None = None
    prl_mask: Path | None = None
    phase: Path | None = None  # unwrapped, high-pass-filtered T2*w phase (radians); read if susceptibility is phase
    site: str | None = None
    qsm_unit: str = "ppm"  # unit of the QSM file (`prlkit.data.plausibility.QSM_UNITS`); read as ppm
    susceptibility: str = "qsm"  # which image is the susceptibility channel: qsm or phase
    phase_sign: str = "auto"  # phase: auto (decided from the veins), positive or negative (paramagnetic sign)
    expected: dict[str, Path] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        """BIDS entity prefix, e.g. `sub-01_ses-02`."""
        return f"{self.participant_id}_{self.session_id}" if self.session_id else self.participant_id

    def missing(self) -> list[tuple[str, Path]]:
        """Required modalities with no file: (role, the path that was looked for)."""
        roles = (self.susceptibility, "flair", "lesions")
        return [(role, self.expected[role]) for role in roles if getattr(self, role) is None]


@dataclass
class Cohort:
    """The sessions of a dataset plus the cohort-level problems found while discovering them."""

    root: Path
    sessions: list[SessionFiles]
    problems: list[str] = field(default_factory=list)

    @property
    def participants(self) -> list[str]:
        return sorted({s.participant_id for s in self.sessions})


def discover_cohort(path: Path | str, qsm_unit: str = "ppm", susceptibility: str = "qsm",
                    phase_sign: str = "auto") -> Cohort:
    """A BIDS folder or a manifest CSV -> its sessions (files checked for presence only), whose QSM
    files are in `qsm_unit` (ppm or ppb) and whose susceptibility channel is `susceptibility` (qsm or
    phase, with the paramagnetic `phase_sign`: auto, positive or negative)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        cohort = _from_manifest(path)
    elif path.is_dir():
        cohort = _from_bids(path)
    elif not path.exists():
        raise InputFileError(path, "no such dataset folder or manifest CSV")
    else:
        raise InputFileError(path, "expected a BIDS folder or a manifest .csv file")
    cohort.sessions = [dataclasses.replace(session, qsm_unit=qsm_unit, susceptibility=susceptibility,
                                           phase_sign=phase_sign) for session in cohort.sessions]
    return cohort


def _find_nifti(folder: Path, stem: str) -> Path | None:
    for suffix in (".nii.gz", ".nii"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def read_table(path: Path, delimiter: str = "\t") -> pd.DataFrame:
    """A TSV (or CSV) file as strings, cells stripped, empty cells ""; one-line error if unreadable."""
    try:
        table = pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, ValueError) as error:  # pandas parser errors are ValueErrors
        raise InputFileError(path, f"cannot read table: {error}") from None
    table.columns = [str(c).strip() for c in table.columns]
    return table.apply(lambda column: column.str.strip())


def _bids_session(root: Path, participant: str, session: str | None, site: str | None) -> SessionFiles:
    prefix = f"{participant}_{session}" if session else participant
    rel = Path(participant, session, "anat") if session else Path(participant, "anat")
    anat, lesion_dir = root / rel, root / "derivatives" / "lesions" / rel
    lesion_stem = f"{prefix}_desc-lesions_dseg"
    rim_table = lesion_dir / f"{lesion_stem}.tsv"
    return SessionFiles(
        participant_id=participant,
        session_id=session,
        qsm=_find_nifti(anat, f"{prefix}_Chimap"),
        flair=_find_nifti(anat, f"{prefix}_FLAIR"),
        lesions=_find_nifti(lesion_dir, lesion_stem),
        t1w=_find_nifti(anat, f"{prefix}_T1w"),
        rim_table=rim_table if rim_table.is_file() else None,
        prl_mask=_find_nifti(lesion_dir, f"{prefix}_desc-prl_mask"),
        phase=_find_nifti(anat, f"{prefix}_part-phase_T2starw"),
        site=site,
        expected={
            "qsm": anat / f"{prefix}_Chimap.nii.gz",
            "phase": anat / f"{prefix}_part-phase_T2starw.nii.gz",
            "flair": anat / f"{prefix}_FLAIR.nii.gz",
            "lesions": lesion_dir / f"{lesion_stem}.nii.gz",
        },
    )


def _from_bids(root: Path) -> Cohort:
    if not (root / "dataset_description.json").is_file():
        warnings.warn(f"{root}: no dataset_description.json (not a BIDS folder?)", PrlkitWarning, stacklevel=2)
    folders = sorted(p.name for p in root.glob("sub-*") if p.is_dir())
    participants_tsv = root / "participants.tsv"
    problems: list[str] = []
    sites: dict[str, str | None] = {}
    if participants_tsv.is_file():
        rows = read_table(participants_tsv)
        if "participant_id" not in rows:
            raise InputFileError(participants_tsv, "no participant_id column")
        site_column = rows["site"] if "site" in rows else [""] * len(rows)
        sites = {pid: (site or None) for pid, site in zip(rows["participant_id"], site_column)}
        problems += [
            f"{participants_tsv}: {pid} is listed but has no folder {root / pid}"
            for pid in sorted(set(sites) - set(folders))
        ]
        problems += [
            f"{root / pid}: folder exists but {pid} is not listed in {participants_tsv}"
            for pid in sorted(set(folders) - set(sites))
        ]
    else:
        warnings.warn(f"{participants_tsv}: missing; participants taken from the sub-* folders", PrlkitWarning,
                      stacklevel=2)
    sessions = []
    for participant in folders:
        session_dirs = sorted(p.name for p in (root / participant).glob("ses-*") if p.is_dir())
        for session in session_dirs or [None]:
            sessions.append(_bids_session(root, participant, session, sites.get(participant)))
    if not sessions:
        raise InputFileError(root, "no sub-* folders found")
    return Cohort(root=root, sessions=sessions, problems=problems)


MANIFEST_REQUIRED = ("participant_id", "flair", "lesions")  # and qsm or phase
MANIFEST_FILES = ("qsm", "flair", "lesions", "t1w", "rim_table", "prl_mask", "phase")


def bids_label(value: str | None, entity: str) -> str | None:
    """An id with its BIDS entity prefix (`01` -> `sub-01` for entity `sub`); None stays None. Manifest ids may
    omit the prefix; every output path and table names participants and sessions the BIDS way."""
    if value is None or value.startswith(f"{entity}-"):
        return value
    return f"{entity}-{value}"


def _from_manifest(manifest: Path) -> Cohort:
    table = read_table(manifest, delimiter=",")
    if table.empty:
        raise InputFileError(manifest, "manifest has no rows")
    missing = [c for c in MANIFEST_REQUIRED if c not in table]
    if "qsm" not in table and "phase" not in table:
        missing.insert(1, "qsm (or phase)")
    if missing:
        raise InputFileError(manifest, f"manifest lacks column(s) {', '.join(missing)}")
    base = manifest.parent
    sessions, seen = [], set()
    for line, row in enumerate(table.to_dict(orient="records"), start=2):
        if not row["participant_id"]:
            raise InputFileError(manifest, f"line {line}: empty participant_id")
        participant = bids_label(row["participant_id"], "sub")
        session = bids_label(row.get("session_id") or None, "ses")
        if (participant, session) in seen:
            raise InputFileError(manifest, f"line {line}: {participant} {session or ''} listed twice".strip())
        seen.add((participant, session))
        paths = {key: base / row[key] for key in MANIFEST_FILES if row.get(key)}
        sessions.append(
            SessionFiles(
                participant_id=participant,
                session_id=session,
                qsm=_existing(paths.get("qsm")),
                flair=_existing(paths.get("flair")),
                lesions=_existing(paths.get("lesions")),
                t1w=_existing(paths.get("t1w")),
                rim_table=_existing(paths.get("rim_table")),
                prl_mask=_existing(paths.get("prl_mask")),
                phase=_existing(paths.get("phase")),
                site=row.get("site") or None,
                expected={role: paths.get(role, manifest) for role in ("qsm", "phase", "flair", "lesions")},
            )
        )
        for role in ("t1w", "rim_table", "prl_mask", "phase"):
            if role in paths and not paths[role].is_file():
                raise InputFileError(paths[role], f"{role} file named in {manifest.name} line {line} does not exist")
    return Cohort(root=base, sessions=sessions)


def _existing(path: Path | None) -> Path | None:
    return path if path is not None and path.is_file() else None
