"""One synthetic subject from (seed, index), and a whole BIDS cohort per docs/data.md."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm import tqdm

from prlkit.atomic import atomic_directory, write_text_atomic
from prlkit.data.images import write_nifti
from prlkit.errors import PrlkitError
from prlkit.synth.lesions import sample_lesions
from prlkit.synth.mri import FLAIR_TISSUE, T1_TISSUE, lesion_intensities, mr_image, tissue_texture
from prlkit.synth.phantom import add_medullary_veins, make_anatomy, rasterize_veins, render_lesions, smooth_noise
from prlkit.synth.phase import HIGHPASS_SIGMA_MM, simulate_phase
from prlkit.synth.profiles import Profile
from prlkit.synth.qsm import BRAIN_PAD, measured_field, tkd_inversion
from prlkit.synth.randomise import randomised_profile
from prlkit.synth.real_anatomy import AnatomySource, anatomy_from_template, load_template

# Per-site acquisition: QSM field noise (ppm), TKD threshold, residual background field (ppm),
# FLAIR lesion contrast range, MR noise (fraction of WM), bias field strength, and the T2*-weighted
# scan's field strength (T) and echo time (s) that turn the field into phase.
SITES = {
    "siteA": dict(field_noise=0.0018, tkd=0.19, background=0.010, flair_lesion=(1.5, 2.1), noise=0.030, bias=0.10,
                  b0=3.0, te=0.020),
    "siteB": dict(field_noise=0.0025, tkd=0.17, background=0.015, flair_lesion=(1.4, 1.9), noise=0.045, bias=0.15,
                  b0=3.0, te=0.017),
    "siteC": dict(field_noise=0.0015, tkd=0.21, background=0.008, flair_lesion=(1.55, 2.3), noise=0.025, bias=0.08,
                  b0=2.89, te=0.022),
}
TRUTH_COLUMNS = ["participant_id", "index", "true_rim", "rim", "consensus_needed", "rim_strength_ppm",
                 "rim_coverage", "rim_thickness", "confounder", "location", "volume_voxels", "confluent",
                 "core_delta_ppm", "center_i", "center_j", "center_k", "site"]


@dataclass
class Subject:
    """One generated subject: images, lesion map and the truth rows of its lesions. `phase` (rad) was
    acquired at `field_strength` (T) and `echo_time` (s)."""

    participant_id: str
    site: str
    affine: np.ndarray
    qsm: np.ndarray
    phase: np.ndarray
    field_strength: float
    echo_time: float
    flair: np.ndarray
    t1w: np.ndarray
    labels: np.ndarray
    truth: pd.DataFrame


def participant_id(index: int, n_subjects: int) -> str:
    """`sub-001` style identifiers, wide enough for the cohort."""
    return f"sub-{index + 1:0{max(3, len(str(n_subjects)))}d}"


def subject_rng(seed: int, index: int) -> np.random.Generator:
    """The subject's own random stream: depends on (seed, index) only, not on N or on jobs."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def ras_affine(shape: tuple[int, int, int]) -> np.ndarray:
    """1 mm RAS affine with the world origin at the centre of the grid."""
    affine = np.eye(4)
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2.0
    return affine


def generate_subject(seed: int, index: int, n_subjects: int, profile: Profile,
                     anatomies: tuple[AnatomySource, ...] = ()) -> Subject:
    """Generate subject `index` of a cohort: anatomy, lesions, QSM and phase by physics, FLAIR, T1w.
    With `anatomies` (real T1w images, optionally with their lesion masks) subject `index` is drawn on
    brain `index mod len(anatomies)` instead of the phantom's (`prlkit.synth.real_anatomy`)."""
    rng = subject_rng(seed, index)
    site = list(SITES)[int(rng.integers(len(SITES)))]
    if profile.randomise:
        profile = randomised_profile(rng, profile)
    acq = SITES[site]
    specs = sample_lesions(rng, profile.lesions)
    if anatomies:
        template = load_template(*anatomies[index % len(anatomies)])
        anatomy, affine = anatomy_from_template(rng, template), template.affine
    else:
        anatomy, affine = make_anatomy(rng, profile.shape), ras_affine(profile.shape)
    shape = anatomy.tissue.shape
    add_medullary_veins(rng, anatomy, profile.n_medullary_veins)
    labels, drawn = render_lesions(rng, anatomy, specs, profile.lesions.streak_chi)
    veins = rasterize_veins(anatomy.veins, shape) * anatomy.brain
    chi = ndimage.gaussian_filter(anatomy.chi + veins, 0.5)
    qsm_mask = ndimage.binary_erosion(anatomy.brain, iterations=2)
    field = measured_field(chi * anatomy.brain, rng, acq["field_noise"] * profile.field_noise_scale,
                           acq["background"], smooth_noise(rng, shape, 20.0))
    qsm = tkd_inversion(field, qsm_mask, threshold=acq["tkd"] * profile.tkd_scale, pad=BRAIN_PAD)
    phase = simulate_phase(field, qsm_mask, acq["b0"], acq["te"], profile.phase_sign)
    n = int(labels.max())
    texture = tissue_texture(rng, shape)
    flair = mr_image(rng, anatomy.tissue, labels, lesion_intensities(rng, n, *acq["flair_lesion"]),
                     FLAIR_TISSUE, texture, acq["noise"], acq["bias"])
    t1w = mr_image(rng, anatomy.tissue, labels, lesion_intensities(rng, n, 0.5, 0.9), T1_TISSUE,
                   texture, acq["noise"], acq["bias"])
    pid = participant_id(index, n_subjects)
    rows = [dict(participant_id=pid, index=d.spec.index, true_rim=int(d.spec.true_rim), rim=int(d.spec.expert_rim),
                 consensus_needed=int(d.spec.consensus_needed), rim_strength_ppm=round(d.spec.rim_strength_ppm, 5),
                 rim_coverage=round(d.spec.rim_coverage, 4), rim_thickness=d.spec.rim_thickness,
                 confounder=d.spec.confounder, location=d.spec.location, volume_voxels=d.voxels,
                 confluent=int(d.confluent), core_delta_ppm=round(d.spec.core_delta_ppm, 5),
                 center_i=d.centre[0], center_j=d.centre[1], center_k=d.centre[2], site=site) for d in drawn]
    labels, truth = _relabel(labels, pd.DataFrame(rows, columns=TRUTH_COLUMNS))
    return Subject(pid, site, affine, qsm, phase, acq["b0"], acq["te"], flair, t1w, labels, truth)


def _relabel(labels: np.ndarray, truth: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Renumber lesions 1..n in the order drawn (a lesion that did not fit leaves no gap)."""
    lut = np.zeros(int(labels.max()) + 1, dtype=np.uint16)
    lut[truth["index"].to_numpy()] = np.arange(1, len(truth) + 1)
    truth = truth.assign(index=np.arange(1, len(truth) + 1))
    return lut[labels], truth


def write_subject(root: Path, subject: Subject) -> None:
    """Write one subject's images (the phase with its BIDS sidecar), lesion map and lesion table into `root`."""
    pid = subject.participant_id
    anat = root / pid / "anat"
    lesions = root / "derivatives" / "lesions" / pid / "anat"
    anat.mkdir(parents=True)
    lesions.mkdir(parents=True)
    write_nifti(anat / f"{pid}_Chimap.nii.gz", subject.qsm, subject.affine)
    write_nifti(anat / f"{pid}_part-phase_T2starw.nii.gz", subject.phase, subject.affine)
    sidecar = {"EchoTime": subject.echo_time, "MagneticFieldStrength": subject.field_strength, "Units": "rad"}
    write_text_atomic(anat / f"{pid}_part-phase_T2starw.json", json.dumps(sidecar, indent=2) + "\n")
    write_nifti(anat / f"{pid}_FLAIR.nii.gz", subject.flair, subject.affine)
    write_nifti(anat / f"{pid}_T1w.nii.gz", subject.t1w, subject.affine)
    write_nifti(lesions / f"{pid}_desc-lesions_dseg.nii.gz", subject.labels, subject.affine)
    table = subject.truth[["index", "rim", "consensus_needed"]].assign(
        name=[f"lesion-{i}" for i in subject.truth["index"]])[["index", "name", "rim", "consensus_needed"]]
    table.to_csv(lesions / f"{pid}_desc-lesions_dseg.tsv", sep="\t", index=False)


def _subject_job(task: tuple[Path, int, int, int, Profile, tuple[AnatomySource, ...]]) -> tuple[str, str, pd.DataFrame]:
    root, seed, index, n_subjects, profile, anatomies = task
    subject = generate_subject(seed, index, n_subjects, profile, anatomies)
    write_subject(root, subject)
    return subject.participant_id, subject.site, subject.truth


def write_cohort(out: Path, n_subjects: int, seed: int, profile: Profile, jobs: int = 2,
                 preview: bool = False, progress: bool = True,
                 anatomies: tuple[AnatomySource, ...] = ()) -> pd.DataFrame:
    """Write a whole cohort to `out` atomically (all or nothing); returns the truth table. `anatomies`:
    real brains to draw the participants on (`generate_subject`), checked before anything is written."""
    out = Path(out)
    if n_subjects < 1:
        raise PrlkitError(f"--subjects {n_subjects}: need at least one subject")
    for source in anatomies:
        load_template(*source)
    if out.exists():
        if not out.is_dir() or any(out.iterdir()):
            raise PrlkitError(f"{out}: already exists and is not an empty folder; choose a new output folder")
        out.rmdir()
    with atomic_directory(out) as root:
        tasks = [(root, seed, i, n_subjects, profile, anatomies) for i in range(n_subjects)]
        bar = dict(total=n_subjects, desc="subjects", unit="subject", disable=not progress)
        if jobs > 1 and n_subjects > 1:
            with ProcessPoolExecutor(max_workers=min(jobs, n_subjects)) as pool:
                results = list(tqdm(pool.map(_subject_job, tasks), **bar))
        else:
            results = [_subject_job(task) for task in tqdm(tasks, **bar)]
        participants = pd.DataFrame([r[:2] for r in results], columns=["participant_id", "site"])
        truth = pd.concat([r[2] for r in results], ignore_index=True)
        _write_cohort_files(root, participants, truth, seed, profile, anatomies)
        if preview:
            from prlkit.synth.preview import write_preview

            write_preview(root, truth, root / "sourcedata" / "preview.png")
    return truth


def _write_cohort_files(root: Path, participants: pd.DataFrame, truth: pd.DataFrame, seed: int,
                        profile: Profile, anatomies: tuple[AnatomySource, ...]) -> None:
    """dataset_description.json, participants.tsv and sourcedata/truth.tsv."""
    grid = (f"anatomy of {', '.join(Path(t1w).name for t1w, _ in anatomies)} (in turn)" if anatomies
            else f"grid {list(profile.shape)}")
    description = {
        "Name": f"prlkit synthetic MS cohort (seed {seed}, profile {profile.name})",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "GeneratedBy": [{"Name": "prlkit simulate",
                         "Description": f"{len(participants)} subjects, {grid}; phase "
                                        f"(part-phase_T2starw): unwrapped, high-pass filtered (Gaussian sigma "
                                        f"{HIGHPASS_SIGMA_MM:g} mm), sign convention {profile.phase_sign} "
                                        f"(paramagnetic = {profile.phase_sign} phase)"}],
    }
    (root / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    participants.to_csv(root / "participants.tsv", sep="\t", index=False)
    (root / "sourcedata").mkdir(exist_ok=True)
    truth.to_csv(root / "sourcedata" / "truth.tsv", sep="\t", index=False)
