"""`prlkit prepare`: geometry conversion, label/QSM resampling, N4 scope, and a misaligned synthetic
cohort brought back onto the T1w grid (lesion Dice with the truth, output passes validation)."""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from prlkit.config import get_profile as get_config
from prlkit.data.bids import PrlkitWarning, discover_cohort
from prlkit.data.images import Volume
from prlkit.data.validate import validate_cohort
from prlkit.errors import PrlkitError
from prlkit.prep.register import INSTALL_HINT, affine_to_itk, itk_to_affine, require_sitk

from conftest import ball, save, subject_volumes, write_bids

sitk = pytest.importorskip("SimpleITK", reason="SimpleITK not installed: pip install \"prlkit[registration]\"")

from prlkit.commands import prepare as prepare_command  # noqa: E402
from prlkit.prep.pipeline import PrepareSettings, label_host, prepare_cohort  # noqa: E402
from prlkit.prep.register import (  # noqa: E402
    N4Settings,
    RegistrationSettings,
    from_sitk,
    n4_correct,
    resample,
    rigid_register,
    to_sitk,
)
from prlkit.synth.cohort import write_cohort  # noqa: E402
from prlkit.synth.profiles import get_profile  # noqa: E402

PID = "sub-001"


def rigid(angles_deg, translation_mm, axes="xyz") -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_euler(axes, angles_deg, degrees=True).as_matrix()
    matrix[:3, 3] = translation_mm
    return matrix


def oblique_affines():
    """Anisotropic, flipped (LAS, LPI) and oblique grids."""
    base = np.diag([0.9, 1.0, 1.5, 1.0])
    base[:3, 3] = [-40.0, 12.5, -30.0]
    flips = [np.diag([-1.0, 1.0, 1.0, 1.0]), np.diag([1.0, -1.0, -1.0, 1.0]), np.eye(4)]
    return [rigid([a, -2 * a, 0.5 * a], [a, 0, -a]) @ base @ flip for a, flip in zip((0.0, 7.0, 33.0), flips)]


@pytest.mark.parametrize("affine", oblique_affines())
def test_affine_itk_round_trip_and_physical_points(affine):
    spacing, direction, origin = affine_to_itk(affine)
    np.testing.assert_allclose(itk_to_affine(spacing, direction, origin), affine, atol=1e-12)
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    image = to_sitk(data, affine)
    assert image.GetSize() == (4, 5, 6)
    for index in [(0, 0, 0), (3, 1, 5), (2, 4, 0)]:
        ras = (affine @ [*index, 1])[:3]
        lps = np.array(image.TransformIndexToPhysicalPoint(index))
        np.testing.assert_allclose(lps, ras * [-1, -1, 1], atol=1e-9)
        assert image[index] == data[index]
    back, back_affine = from_sitk(image)
    np.testing.assert_array_equal(back, data)
    np.testing.assert_allclose(back_affine, affine, atol=1e-9)


def test_sheared_affine_is_refused():
    affine = np.eye(4)
    affine[0, 1] = 0.3
    with pytest.raises(PrlkitError, match="shear"):
        affine_to_itk(affine)


def test_missing_simpleitk_names_the_install_command(monkeypatch, tmp_path):
    root = write_bids(tmp_path / "bids", participants=("sub-01",))
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # makes `import SimpleITK` raise ImportError
    with pytest.raises(PrlkitError, match="SimpleITK") as error:
        require_sitk()
    assert INSTALL_HINT in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(PrlkitError, match="SimpleITK"):
        run_cli(root, "--out", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_labels_keep_their_ids_and_qsm_does_not_overshoot():
    shape = (32, 32, 32)
    labels = np.zeros(shape, np.int32)
    for label, centre in [(3, (10, 10, 10)), (17, (21, 12, 20)), (200, (12, 22, 16))]:
        labels[ball(shape, centre, 4)] = label
    qsm = np.where(ball(shape, (16, 16, 16), 9), 0.15, -0.05).astype(np.float32)  # a sharp step
    moved_affine = rigid([4.0, 0, -3.0], [0.6, -0.3, 0.4]) @ np.diag([1.0, 1.0, 1.5, 1.0])
    reference_shape = (34, 34, 50)
    reference = to_sitk(np.zeros(reference_shape, np.float32), np.eye(4))  # 1 mm grid, axis-aligned
    transform = sitk.Euler3DTransform()
    out_labels = from_sitk(resample(to_sitk(labels, moved_affine), reference, transform, labels=True))[0]
    assert set(np.unique(out_labels)) == {0, 3, 17, 200}  # every id survives, none invented
    out_qsm = from_sitk(resample(to_sitk(qsm, moved_affine), reference, transform))[0]
    centre = (moved_affine @ [16, 16, 16, 1])[:3]  # the step's centre in world = reference voxels
    inside = out_qsm[ball(reference_shape, centre, 7)]  # the ellipsoid has radii 9, 9, 13.5 mm
    assert inside.min() >= -0.05 - 1e-6 and out_qsm.max() <= 0.15 + 1e-6  # linear: no ringing past the step
    np.testing.assert_allclose(inside, 0.15, atol=1e-6)


def test_n4_removes_a_smooth_bias_field():
    shape = (40, 40, 40)
    rng = np.random.default_rng(0)
    tissue = np.where(ball(shape, (20, 20, 20), 16), 100.0, 0.0) + rng.normal(0, 1, shape) * ball(shape, (20,) * 3, 16)
    bias = np.exp(0.25 * np.linspace(-1, 1, shape[0]))[:, None, None] * np.ones(shape)
    biased = to_sitk((tissue * bias).astype(np.float32), np.eye(4))
    corrected = from_sitk(n4_correct(biased, N4Settings(shrink_factor=2, iterations=(30, 30))))[0]
    inside = ball(shape, (20, 20, 20), 13)

    def spread(image):
        return np.std(image[inside]) / np.mean(image[inside])

    assert spread(corrected) < 0.5 * spread(tissue * bias)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """One tiny synthetic subject: QSM, FLAIR, T1w and lesions on one 1 mm grid (the truth)."""
    root = tmp_path_factory.mktemp("prep") / "aligned"
    write_cohort(root, 1, seed=3, profile=get_profile("tiny"), jobs=1, progress=False)
    return root


MOTION = rigid([4.0, -3.0], [3.0, -2.0, 2.5], axes="zy")  # head moved between the T1w and FLAIR scans


def misaligned_copy(aligned, root):
    """FLAIR and lesions re-acquired on an oblique 1x1x1.5 mm grid after a rigid head motion (4-5 deg, ~4.4 mm)."""
    shutil.copytree(aligned, root)
    anat, lesion_dir = root / PID / "anat", root / "derivatives" / "lesions" / PID / "anat"
    reference = nib.load(anat / f"{PID}_T1w.nii.gz")
    new_shape = (reference.shape[0], reference.shape[1], int(np.ceil(reference.shape[2] / 1.5)))
    grid = np.diag([1.0, 1.0, 1.5, 1.0])
    grid[:3, 3] = -(np.array(new_shape) - 1) / 2 * [1.0, 1.0, 1.5]
    grid = rigid([5.0, 0, 0], [0, 0, 0]) @ grid  # oblique slices
    voxels = np.vstack([np.indices(new_shape).reshape(3, -1), np.ones(int(np.prod(new_shape)))])
    source = (np.linalg.inv(reference.affine) @ MOTION @ grid @ voxels)[:3]
    for path, order in [(anat / f"{PID}_FLAIR.nii.gz", 1), (lesion_dir / f"{PID}_desc-lesions_dseg.nii.gz", 0)]:
        image = nib.load(path)
        data = ndimage.map_coordinates(np.asarray(image.dataobj), source, order=order).reshape(new_shape)
        nib.save(nib.Nifti1Image(data.astype(image.get_data_dtype()), grid), path)
    return root


def dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def digest(root):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(*argv):
    parser = argparse.ArgumentParser()
    prepare_command.register(parser.add_subparsers())
    args = parser.parse_args(["prepare", *map(str, argv), "--no-progress"])
    return args.func(args)


def test_misaligned_flair_and_lesions_come_back_onto_the_t1w_grid(synthetic, tmp_path):
    moved = misaligned_copy(synthetic, tmp_path / "moved")
    before = digest(moved)
    assert run_cli(moved, "--out", tmp_path / "out", "--reference", "T1w") == 0
    assert digest(moved) == before  # inputs untouched
    out = tmp_path / "out"
    lesion_file = Path("derivatives/lesions", PID, "anat", f"{PID}_desc-lesions_dseg.nii.gz")
    truth = np.asarray(nib.load(synthetic / lesion_file).dataobj)
    result_image = nib.load(out / lesion_file)
    result = np.asarray(result_image.dataobj)
    t1w = nib.load(synthetic / PID / "anat" / f"{PID}_T1w.nii.gz")
    assert result.shape == t1w.shape and np.allclose(result_image.affine, t1w.affine)
    assert dice(result > 0, truth > 0) >= 0.8
    for label in np.unique(truth)[1:]:  # each lesion keeps its id
        assert np.bincount(result[truth == label]).argmax() == label
    # the test has teeth: trusting the headers alone (no registration) leaves the lesions misplaced
    flair_lesions = nib.load(moved / lesion_file)
    unregistered = resample(to_sitk(np.asarray(flair_lesions.dataobj), flair_lesions.affine),
                            to_sitk(truth, t1w.affine), sitk.Euler3DTransform(), labels=True)
    assert dice(from_sitk(unregistered)[0] > 0, truth > 0) < 0.5
    report = validate_cohort(discover_cohort(out), get_config("quick").lesions)
    assert report.problems == [] and report.totals()["lesions"] == len(np.unique(truth)) - 1
    prep = out / "derivatives" / "prlkit-prepare"
    assert (prep / PID / "figures" / f"{PID}_desc-registration_qc.png").stat().st_size > 10_000
    transform = sitk.ReadTransform(str(prep / PID / "anat" / f"{PID}_from-FLAIR_to-T1w_mode-image_xfm.txt"))
    assert transform.GetDimension() == 3
    for name in ("Chimap", "T1w"):  # already on the T1w grid: copied value for value
        original = nib.load(synthetic / PID / "anat" / f"{PID}_{name}.nii.gz").get_fdata()
        np.testing.assert_array_equal(nib.load(out / PID / "anat" / f"{PID}_{name}.nii.gz").get_fdata(), original)


def test_n4_touches_flair_and_t1w_but_never_qsm(synthetic, tmp_path):
    settings = PrepareSettings(reference="FLAIR", n4=True, bias=N4Settings(4, (20, 20)))
    report = prepare_cohort(discover_cohort(synthetic), tmp_path / "out", settings, progress=False)
    assert dict(zip(report["image"], report["n4"])) == {"T1w": 1, "FLAIR": 1, "Chimap": 0, "lesions": 0}
    for name, changed in [("Chimap", False), ("FLAIR", True), ("T1w", True)]:
        original = nib.load(synthetic / PID / "anat" / f"{PID}_{name}.nii.gz").get_fdata(dtype=np.float32)
        prepared = nib.load(tmp_path / "out" / PID / "anat" / f"{PID}_{name}.nii.gz").get_fdata(dtype=np.float32)
        assert (not np.array_equal(prepared, original)) == changed, name


def test_label_host_prefers_flair_and_otherwise_warns(tmp_path):
    grid_a, grid_b = np.eye(4), np.diag([1.0, 1.0, 1.5, 1.0])
    volumes = {name: Volume(np.zeros((8, 8, 8), np.float32), affine, tmp_path / name)
               for name, affine in [("FLAIR", grid_b), ("T1w", grid_a), ("Chimap", grid_a)]}
    assert label_host(Volume(np.zeros((8, 8, 8), np.int32), grid_a, tmp_path / "l"), volumes) == "T1w"
    assert label_host(Volume(np.zeros((8, 8, 8), np.int32), grid_b, tmp_path / "l"), volumes) == "FLAIR"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert label_host(Volume(np.zeros((9, 8, 8), np.int32), grid_a, tmp_path / "odd"), volumes) == "FLAIR"
    assert any(issubclass(w.category, PrlkitWarning) and "odd" in str(w.message) for w in caught)


def test_bad_requests_are_one_line_errors(synthetic, tmp_path):
    with pytest.raises(PrlkitError, match="inside the input dataset"):
        run_cli(synthetic, "--out", synthetic / "prepared")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(PrlkitError, match="not an empty folder"):
        run_cli(synthetic, "--out", tmp_path / "full")
    no_t1w = tmp_path / "no_t1w"
    shutil.copytree(synthetic, no_t1w)
    (no_t1w / PID / "anat" / f"{PID}_T1w.nii.gz").unlink()
    with pytest.raises(PrlkitError, match=f"{PID}: no T1w image"):
        run_cli(no_t1w, "--out", tmp_path / "out", "--reference", "T1w")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_registration_is_repeatable_with_a_fixed_seed(synthetic, tmp_path):
    moved = misaligned_copy(synthetic, tmp_path / "moved")
    fixed = nib.load(moved / PID / "anat" / f"{PID}_T1w.nii.gz")
    flair = nib.load(moved / PID / "anat" / f"{PID}_FLAIR.nii.gz")
    images = [to_sitk(image.get_fdata(dtype=np.float32), image.affine) for image in (fixed, flair)]
    settings = RegistrationSettings(shrink_factors=(4, 2), smoothing_mm=(2.0, 1.0), iterations=60)
    first, second = (np.array(rigid_register(*images, settings)[0].GetParameters()) for _ in range(2))
    np.testing.assert_allclose(first, second, atol=1e-7)  # thread summation order only
    with pytest.raises(PrlkitError, match="seed 0"):
        RegistrationSettings(seed=0)


def test_lesions_outside_the_reference_grid_are_dropped_with_their_table_rows(tmp_path):
    root = write_bids(tmp_path / "bids", participants=("sub-01",))
    lesion_path = root / "derivatives/lesions/sub-01/anat/sub-01_desc-lesions_dseg.nii.gz"
    shifted = np.eye(4)
    shifted[0, 3] = -12.0  # lesion 1 (x = 8 -> -4 mm) leaves the 24 mm grid, lesion 2 (16 -> 4 mm) stays
    save(lesion_path, subject_volumes()[2], shifted)
    with pytest.warns(PrlkitWarning) as caught:
        report = prepare_cohort(discover_cohort(root), tmp_path / "out", PrepareSettings(), progress=False)
    messages = [str(w.message) for w in caught]
    assert any("matches no image" in m for m in messages) and any("label(s) 1 lie outside" in m for m in messages)
    assert report.set_index("image").loc["lesions", "dropped_labels"] == "1"
    out_lesions = tmp_path / "out/derivatives/lesions/sub-01/anat"
    assert np.unique(np.asarray(nib.load(out_lesions / "sub-01_desc-lesions_dseg.nii.gz").dataobj)).tolist() == [0, 2]
    table = (out_lesions / "sub-01_desc-lesions_dseg.tsv").read_text().splitlines()
    assert table == ["index\tname\trim", "2\tlesion2\t0"]
    assert validate_cohort(discover_cohort(tmp_path / "out"), get_config("quick").lesions).problems == []
    assert lesion_path.read_bytes() == save(tmp_path / "again.nii.gz", subject_volumes()[2], shifted).read_bytes()


def test_manifest_input_becomes_a_bids_folder(tmp_path):
    root = write_bids(tmp_path / "bids", participants=("sub-01",))
    (root / "cohort.csv").write_text(
        "participant_id,qsm,flair,lesions,rim_table,site\n"
        "01,sub-01/anat/sub-01_Chimap.nii.gz,sub-01/anat/sub-01_FLAIR.nii.gz,"
        "derivatives/lesions/sub-01/anat/sub-01_desc-lesions_dseg.nii.gz,"
        "derivatives/lesions/sub-01/anat/sub-01_desc-lesions_dseg.tsv,X\n"
    )
    assert run_cli(root / "cohort.csv", "--out", tmp_path / "out") == 0
    assert (tmp_path / "out/participants.tsv").read_text().splitlines() == ["participant_id\tsite", "sub-01\tX"]
    report = validate_cohort(discover_cohort(tmp_path / "out"), get_config("quick").lesions)
    assert report.problems == [] and report.totals()["lesions"] == 2
