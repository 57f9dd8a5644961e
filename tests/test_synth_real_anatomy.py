"""Simulating on real anatomy: T1w tissue classes, template checks and reorientation, `simulate --anatomy`."""

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from prlkit.commands import simulate
from prlkit.errors import InputFileError, PrlkitError
from prlkit.synth.cohort import generate_subject, write_cohort
from prlkit.synth.mri import FLAIR_TISSUE, T1_TISSUE
from prlkit.synth.phantom import BACKGROUND, CSF, GM, VENTRICLE, WM, make_anatomy
from prlkit.synth.profiles import get_profile
from prlkit.synth.real_anatomy import load_template, segment_tissues

SHAPE = (80, 96, 80)


def _phantom_t1w(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A phantom's tissue map and a noisy T1w drawn from it: a stand-in for a real skull-stripped T1w."""
    tissue = make_anatomy(np.random.default_rng(seed), SHAPE).tissue
    t1w = np.vectorize(T1_TISSUE.get)(tissue).astype(np.float32)
    noise = np.random.default_rng(seed + 1).normal(0, 0.03, SHAPE).astype(np.float32)
    return tissue, np.where(tissue != BACKGROUND, 300 * (t1w + noise), 0).astype(np.float32)


@pytest.fixture(scope="module")
def phantom_t1w(tmp_path_factory):
    """The stand-in T1w written twice: RAS as drawn, and the same brain stored LAS (first axis flipped)."""
    tissue, t1w = _phantom_t1w()
    folder = tmp_path_factory.mktemp("anatomy")
    ras = np.diag([1.0, 1.0, 1.0, 1.0])
    las = ras.copy()
    las[0, 0], las[0, 3] = -1.0, SHAPE[0] - 1
    nib.save(nib.Nifti1Image(t1w, ras), folder / "ras_T1w.nii.gz")
    nib.save(nib.Nifti1Image(t1w[::-1].copy(), las), folder / "las_T1w.nii.gz")
    return tissue, folder


def test_segment_tissues_recovers_the_phantoms_classes():
    tissue, t1w = _phantom_t1w()
    brain = tissue != BACKGROUND
    found = segment_tissues(t1w, brain)
    fluid = np.isin(tissue, (CSF, VENTRICLE))
    assert np.mean(np.isin(found[fluid], (CSF, VENTRICLE))) > 0.9
    assert np.mean(found[tissue == GM] == GM) > 0.9
    assert np.mean(found[tissue == WM] == WM) > 0.8  # the nucleus ellipsoids take some white matter
    assert np.any(found == VENTRICLE)
    assert np.all(found[~brain] == BACKGROUND)


def test_own_lesions_are_filled_in_as_white_matter():
    tissue, t1w = _phantom_t1w()
    lesion = np.zeros(SHAPE, dtype=bool)
    centre = np.argwhere(tissue == WM)[len(np.argwhere(tissue == WM)) // 2]
    lesion[tuple(slice(c - 3, c + 4) for c in centre)] = True
    lesion &= tissue == WM
    dark = np.where(lesion, t1w * 0.3, t1w)  # T1-hypointense, CSF-like lesion
    assert np.mean(segment_tissues(dark, tissue != BACKGROUND)[lesion] == WM) < 0.5
    assert np.all(segment_tissues(dark, tissue != BACKGROUND, lesion)[lesion] == WM)


def test_template_is_reoriented_to_ras_and_cropped(phantom_t1w):
    _, folder = phantom_t1w
    ras = load_template(str(folder / "ras_T1w.nii.gz"))
    las = load_template(str(folder / "las_T1w.nii.gz"))
    np.testing.assert_array_equal(ras.tissue, las.tissue)
    np.testing.assert_allclose(ras.affine, las.affine)
    assert nib.aff2axcodes(las.affine) == ("R", "A", "S")
    assert all(n < full for n, full in zip(ras.tissue.shape, SHAPE))  # cropped to the brain and a margin


@pytest.mark.parametrize("problem, expected", [("spacing", "1 mm"), ("skull", "skull-stripped")])
def test_template_refuses_what_the_simulator_cannot_use(tmp_path, problem, expected):
    _, t1w = _phantom_t1w()
    affine = np.eye(4)
    if problem == "spacing":
        affine[0, 0] = 2.0
    else:
        t1w = t1w + 1.0
    path = tmp_path / f"{problem}_T1w.nii.gz"
    nib.save(nib.Nifti1Image(t1w, affine), path)
    with pytest.raises(InputFileError, match=expected) as error:
        load_template(str(path))
    assert str(path) in str(error.value)


def test_a_flair_is_refused_as_anatomy(tmp_path):
    tissue = make_anatomy(np.random.default_rng(0), SHAPE).tissue
    flair = 300 * np.vectorize(FLAIR_TISSUE.get)(tissue).astype(np.float32)  # grey matter brightest
    path = tmp_path / "sub-01_FLAIR.nii.gz"
    nib.save(nib.Nifti1Image(flair, np.eye(4)), path)
    with pytest.raises(InputFileError, match="give a T1w") as error:
        load_template(str(path))
    assert str(path) in str(error.value)


def test_lesion_mask_must_share_the_t1w_grid(tmp_path, phantom_t1w):
    _, folder = phantom_t1w
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 20), dtype=np.uint8), np.eye(4)), mask)
    with pytest.raises(InputFileError, match="grid differs"):
        load_template(str(folder / "ras_T1w.nii.gz"), str(mask))


def test_subject_on_real_anatomy_uses_its_grid_and_is_deterministic(phantom_t1w):
    _, folder = phantom_t1w
    source = ((str(folder / "las_T1w.nii.gz"), None),)
    template = load_template(*source[0])
    subject = generate_subject(4, 0, 2, get_profile("default"), source)
    again = generate_subject(4, 0, 2, get_profile("default"), source)
    assert subject.qsm.shape == template.tissue.shape
    np.testing.assert_allclose(subject.affine, template.affine)
    np.testing.assert_array_equal(subject.qsm, again.qsm)
    assert subject.labels.max() == len(subject.truth) > 0
    assert set(subject.truth["location"]) <= {"periventricular", "deep", "juxtacortical"}


def _args(out, **overrides):
    values = dict(out=out, subjects=1, seed=0, synth_profile="tiny", shape=None, preview=False, jobs=1,
                  no_progress=True, phase_sign="negative", anatomy=None, anatomy_lesions=None)
    return argparse.Namespace(**{**values, **overrides})


@pytest.mark.parametrize("overrides, expected", [
    (dict(anatomy_lesions=[Path("m.nii.gz")]), "needs --anatomy"),
    (dict(anatomy=[Path("a.nii.gz")], shape=[64, 64, 64]), "exclude each other"),
    (dict(anatomy=[Path("a.nii.gz"), Path("b.nii.gz")], anatomy_lesions=[Path("m.nii.gz")]), "1 mask"),
])
def test_simulate_refuses_inconsistent_anatomy_options(tmp_path, overrides, expected):
    with pytest.raises(PrlkitError, match=expected):
        simulate.run(_args(tmp_path / "out", **overrides))
    assert not (tmp_path / "out").exists()


def test_simulate_with_a_bad_anatomy_writes_nothing(tmp_path):
    with pytest.raises(InputFileError, match="file not found"):
        write_cohort(tmp_path / "out", 1, 0, get_profile("tiny"), jobs=1, progress=False,
                     anatomies=((str(tmp_path / "missing_T1w.nii.gz"), None),))
    assert not (tmp_path / "out").exists()


@pytest.mark.realdata
@pytest.mark.slow
def test_real_t1w_gives_a_plausible_brain_and_cohort(tmp_path, realdata):
    t1w, mask = realdata / "patient26" / "T1.nii.gz", realdata / "patient26" / "lesion_mask.nii.gz"
    template = load_template(str(t1w), str(mask))
    brain = template.tissue[template.tissue != BACKGROUND]
    assert 0.35 < np.mean(brain == WM) < 0.7
    assert 0.2 < np.mean(brain == GM) < 0.45
    assert 0.01 < np.mean(brain == VENTRICLE) < 0.1
    assert nib.aff2axcodes(template.affine) == ("R", "A", "S")  # the file is LAS

    out = tmp_path / "cohort"
    simulate.run(_args(out, synth_profile="default", anatomy=[t1w], anatomy_lesions=[mask]))
    qsm = nib.load(out / "sub-001" / "anat" / "sub-001_Chimap.nii.gz")
    assert qsm.shape == template.tissue.shape
    truth = pd.read_csv(out / "sourcedata" / "truth.tsv", sep="\t")
    assert len(truth) > 0
    assert "anatomy of T1.nii.gz" in (out / "dataset_description.json").read_text()


def test_a_location_without_candidates_falls_back_to_the_largest(monkeypatch):
    """A real brain may have no deep white matter far enough from grey matter: such lesions move, and the
    truth says where they went."""
    from prlkit.synth import phantom
    from prlkit.synth.lesions import sample_lesions

    rng = np.random.default_rng(3)
    specs = sample_lesions(rng, get_profile("default").lesions)
    for spec in specs:
        spec.location, spec.confluent_with = "deep", 0
    anatomy = make_anatomy(rng, SHAPE)
    full = phantom._candidate_centres(anatomy)
    without_deep = {**full, "deep": np.array([], dtype=np.int64)}
    monkeypatch.setattr(phantom, "_candidate_centres", lambda _: without_deep)
    labels, drawn = phantom.render_lesions(rng, anatomy, specs, (0.4, 0.8))
    largest = max(full, key=lambda location: full[location].size if location != "deep" else -1)
    assert drawn and labels.max() > 0
    assert {lesion.spec.location for lesion in drawn} == {largest}
