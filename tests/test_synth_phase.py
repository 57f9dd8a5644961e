"""The simulator's T2*-weighted phase: files and sidecar, sign convention, no wraps, high-pass, and QSM unchanged."""

import argparse
import json
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest

from prlkit.commands import simulate
from prlkit.synth.cohort import generate_subject, write_cohort
from prlkit.synth.phase import highpass, simulate_phase
from prlkit.synth.profiles import get_profile
from prlkit.synth.qsm import forward_field

TINY = get_profile("tiny")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("phase") / "cohort"
    write_cohort(out, 2, seed=11, profile=TINY, jobs=1, progress=False)
    return out


def _phase(root, pid):
    anat = root / pid / "anat"
    return anat / f"{pid}_part-phase_T2starw.nii.gz", anat / f"{pid}_part-phase_T2starw.json"


def test_phase_file_and_sidecar(cohort):
    for pid in ("sub-001", "sub-002"):
        image_path, sidecar_path = _phase(cohort, pid)
        image = nib.load(image_path)
        qsm = nib.load(cohort / pid / "anat" / f"{pid}_Chimap.nii.gz")
        assert image.get_data_dtype() == np.float32
        assert image.shape == TINY.shape and np.allclose(image.affine, qsm.affine)
        sidecar = json.loads(sidecar_path.read_text())
        assert sidecar["Units"] == "rad"
        assert 0.005 < sidecar["EchoTime"] < 0.05  # seconds, not milliseconds
        assert 1.4 < sidecar["MagneticFieldStrength"] < 7.5  # tesla
        assert set(sidecar) == {"EchoTime", "MagneticFieldStrength", "Units"}  # no sign: real sidecars lack it
        # the phase covers the QSM's (eroded) brain mask and nothing else
        phase, chi = np.asarray(image.dataobj), np.asarray(qsm.dataobj)
        assert np.array_equal(phase != 0, chi != 0)
    description = json.loads((cohort / "dataset_description.json").read_text())
    assert "sign convention negative" in description["GeneratedBy"][0]["Description"]


def test_vein_parallel_to_b0_has_the_sign_of_the_convention():
    """A paramagnetic vein along B0 (last axis) has a positive local field (χ/3 inside): its phase is negative
    under the `negative` convention and positive under `positive`."""
    n = 48
    i, j = np.meshgrid(np.arange(n) - n / 2, np.arange(n) - n / 2, indexing="ij")
    chi = np.zeros((n, n, n), dtype=np.float32)
    chi[(i**2 + j**2 <= 1.5**2)] = 0.3
    axis = np.arange(n) - (n - 1) / 2
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    mask = x**2 + y**2 + z**2 < 20**2
    field = forward_field(chi, pad=16)
    vein = (chi > 0) & (np.abs(z) < 8)  # away from the ends of the vein
    assert field[vein].mean() > 0.05  # near χ/3 = 0.1 ppm
    negative = simulate_phase(field, mask, 3.0, 0.020, "negative")
    positive = simulate_phase(field, mask, 3.0, 0.020, "positive")
    assert (negative[vein] < -1.0).all()  # unfiltered: -1.59 rad
    assert (positive[vein] > 1.0).all()
    np.testing.assert_array_equal(positive, -negative)


def test_highpass_removes_an_offset_up_to_the_mask_edge():
    """Normalised convolution: a constant phase is removed everywhere in the mask, at its edge too, and
    nothing is left outside; a plain Gaussian subtraction would leave the edge at about half the offset."""
    axis = np.arange(40) - 19.5
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    mask = x**2 + y**2 + z**2 < 15**2
    filtered = highpass(np.full(mask.shape, 1.5, dtype=np.float32), mask)
    assert np.abs(filtered).max() < 1e-5


def test_phase_is_unwrapped_and_high_passed(cohort):
    for pid in ("sub-001", "sub-002"):
        phase = np.asarray(nib.load(_phase(cohort, pid)[0]).dataobj)
        brain = phase[phase != 0]
        assert np.abs(brain).max() < np.pi  # nothing near a wrap at 3 T and TE ≈ 20 ms
        assert np.percentile(np.abs(brain), 99) < 1.0
        assert abs(brain.mean()) < 0.01 and brain.std() > 0.05  # high-passed, but not empty


# The QSM and the other images of tiny seed 11, subject 0, as written before the phase was added. On the
# machine of that change the full arrays were also compared byte for byte (sha256); the tolerances here only
# allow the last bit of a different FFT build.
REFERENCE_QSM = {(30, 33, 32): 0.3168176, (34, 28, 45): 0.33083996, (20, 40, 30): -0.0054921308,
                 (40, 30, 25): 0.003964248}
REFERENCE_QSM_ABS_SUM = 1228.2085275518475
REFERENCE_FLAIR_SUM, REFERENCE_T1W_SUM = 40695092, 14133790
REFERENCE_LESIONS, REFERENCE_LESION_VOXELS = 4, 515


def test_existing_images_are_unchanged():
    subject = generate_subject(11, 0, 3, TINY)
    for voxel, value in REFERENCE_QSM.items():
        assert subject.qsm[voxel] == pytest.approx(value, rel=1e-5, abs=1e-7)
    assert float(np.abs(subject.qsm.astype(np.float64)).sum()) == pytest.approx(REFERENCE_QSM_ABS_SUM, rel=1e-6)
    assert int(subject.flair.astype(np.int64).sum()) == pytest.approx(REFERENCE_FLAIR_SUM, rel=1e-6)
    assert int(subject.t1w.astype(np.int64).sum()) == pytest.approx(REFERENCE_T1W_SUM, rel=1e-6)
    assert int(subject.labels.max()) == REFERENCE_LESIONS
    assert int((subject.labels > 0).sum()) == REFERENCE_LESION_VOXELS


def test_phase_is_deterministic_and_the_sign_changes_only_the_phase():
    one = generate_subject(11, 1, 3, TINY)
    again = generate_subject(11, 1, 3, TINY)
    flipped = generate_subject(11, 1, 3, replace(TINY, phase_sign="positive"))
    np.testing.assert_array_equal(one.phase, again.phase)
    np.testing.assert_array_equal(flipped.phase, -one.phase)
    for kind in ("qsm", "flair", "t1w", "labels"):
        np.testing.assert_array_equal(getattr(flipped, kind), getattr(one, kind))


def test_cli_phase_sign_is_recorded(tmp_path):
    parser = argparse.ArgumentParser()
    simulate.register(parser.add_subparsers())
    out = tmp_path / "cohort"
    args = parser.parse_args(["simulate", str(out), "--subjects", "1", "--seed", "11", "--synth-profile", "tiny",
                              "--phase-sign", "positive", "--jobs", "1"])
    assert args.func(args) == 0
    description = json.loads((out / "dataset_description.json").read_text())
    assert "sign convention positive (paramagnetic = positive phase)" in description["GeneratedBy"][0]["Description"]
    phase = np.asarray(nib.load(_phase(out, "sub-001")[0]).dataobj)
    np.testing.assert_array_equal(phase, -generate_subject(11, 0, 1, TINY).phase)
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", str(tmp_path / "x"), "--phase-sign", "up"])
