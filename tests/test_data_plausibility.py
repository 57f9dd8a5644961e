"""Implausible QSM and FLAIR intensities: one line naming the file and the statistic; real data never trips."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from prlkit.cli import main
from prlkit.config import LesionConfig, get_profile
from prlkit.data.bids import PrlkitWarning, discover_cohort
from prlkit.data.cache import cache_key
from prlkit.data.images import read_volume
from prlkit.data.plausibility import flair_findings, qsm_findings
from prlkit.data.session import load_session
from prlkit.errors import InputFileError

from conftest import save, subject_volumes, write_bids


def brain_qsm(scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """A ppm-like signed map (|χ| 99th percentile about 0.13 ppm) inside a cube 'brain', times `scale`."""
    rng = np.random.default_rng(seed)
    qsm = np.zeros((20, 20, 20), np.float32)
    qsm[4:16, 4:16, 4:16] = 0.05 * rng.standard_normal((12, 12, 12)) * scale
    return qsm


def messages(findings) -> list[tuple[str, str]]:
    return [(f.level, f.message) for f in findings]


def test_plausible_ppm_qsm_and_flair_give_no_finding():
    qsm, flair, _ = subject_volumes()
    assert qsm_findings(brain_qsm()) == [] and qsm_findings(qsm) == [] and flair_findings(flair) == []


@pytest.mark.parametrize(("data", "integer_storage", "level", "pattern"), [
    (np.zeros((8, 8, 8)), False, "error", "QSM is zero"),
    (np.full((8, 8, 8), np.nan), False, "error", "QSM is zero"),
    (brain_qsm(1000), False, "warning", r"99th percentile of \|QSM\| in the brain is 1[\d.]+: is it in ppb\? prlkit "
                                        "expects ppm"),
    (np.round(brain_qsm(1000)), True, "warning", "in the brain is 1[\\d.]+ \\(stored as integers with no scale"),
    (np.round(brain_qsm(3)), True, "warning", r"only \d distinct values .*rounded to whole ppm"),
    (np.abs(brain_qsm(5000)) + 200, False, "warning", "only 0.0% .* negative .*magnitude image such as a T1w"),
    (brain_qsm(1e-3), False, "warning", "far below real QSM .*--qsm-unit ppb"),
])
def test_implausible_qsm_is_named_by_its_statistic(data, integer_storage, level, pattern):
    (found,) = messages(qsm_findings(data, integer_storage))
    assert found[0] == level and re.search(pattern, found[1]), found[1]


@pytest.mark.parametrize(("data", "level", "pattern"), [
    (np.zeros((8, 8, 8)), "error", "FLAIR is zero"),
    (-subject_volumes()[1], "warning", "100% of the non-zero voxels are negative .*inverted"),
    (subject_volumes()[1] - 100, "warning", r"\d+% of the non-zero voxels are negative .*z-scored"),
])
def test_implausible_flair_is_named_by_its_statistic(data, level, pattern):
    (found,) = messages(flair_findings(data))
    assert found[0] == level and re.search(pattern, found[1]), found[1]


def test_prlkit_synthetic_subject_passes_and_its_t1w_as_qsm_does_not():
    from prlkit.synth.cohort import generate_subject
    from prlkit.synth.profiles import get_profile

    subject = generate_subject(0, 0, 1, get_profile("tiny"))
    assert qsm_findings(subject.qsm) == [] and flair_findings(subject.flair) == []
    assert "T1w" in qsm_findings(subject.t1w)[0].message


@pytest.mark.realdata
@pytest.mark.parametrize("patient", ["patient07", "patient26"])
def test_real_flair_passes_and_real_t1_as_qsm_warns(realdata, patient):
    flair = read_volume(realdata / patient / "FLAIR.nii.gz")
    assert flair_findings(flair.data) == []
    (finding,) = qsm_findings(read_volume(realdata / patient / "T1.nii.gz").data)
    assert finding.level == "warning" and "magnitude image" in finding.message


def _with_qsm(root: Path, qsm: np.ndarray, dtype=np.float32) -> Path:
    path = root / "sub-01" / "anat" / "sub-01_Chimap.nii.gz"
    save(path, qsm.astype(dtype))
    return path


def test_load_session_warns_once_naming_the_file_and_converts_ppb(tmp_path):
    root = write_bids(tmp_path / "bids", participants=("sub-01",))
    ppm = subject_volumes(0)[0]
    qsm_path = _with_qsm(root, ppm * 1000)
    with pytest.warns(PrlkitWarning, match=f"{qsm_path}: 99th percentile of .*ppb"):
        load_session(discover_cohort(root).sessions[0], LesionConfig())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_session(discover_cohort(root, qsm_unit="ppb").sessions[0], LesionConfig())
    np.testing.assert_allclose(data.qsm, ppm, rtol=1e-5)
    config = get_profile("quick")  # patches read in ppb are others than those read in ppm
    assert cache_key(discover_cohort(root), config) != cache_key(discover_cohort(root, qsm_unit="ppb"), config)


def test_int16_qsm_without_scale_factor_is_named(tmp_path):
    root = write_bids(tmp_path / "bids", participants=("sub-01",))
    qsm_path = _with_qsm(root, np.round(subject_volumes(0)[0] * 1000), dtype=np.int16)
    assert nib.load(qsm_path).get_data_dtype() == np.int16
    with pytest.warns(PrlkitWarning, match="stored as integers with no scale factor"):
        load_session(discover_cohort(root).sessions[0], LesionConfig())


def test_all_zero_qsm_is_refused_naming_the_file(tmp_path):
    root = write_bids(tmp_path / "bids", participants=("sub-01",))
    qsm_path = _with_qsm(root, np.zeros((24, 24, 24)))
    with pytest.raises(InputFileError, match=f"{qsm_path}: QSM is zero"):
        load_session(discover_cohort(root).sessions[0], LesionConfig())


def test_validate_prints_one_warning_line_and_qsm_unit_ppb_silences_it(tmp_path, capsys):
    root = write_bids(tmp_path / "bids", participants=("sub-01",))
    _with_qsm(root, subject_volumes(0)[0] * 1000)
    assert main(["validate", str(root)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "Chimap" in line]
    assert len(lines) == 1 and lines[0].startswith("prlkit: warning: ") and "is it in ppb?" in lines[0]
    assert main(["validate", str(root), "--qsm-unit", "ppb"]) == 0
    assert "Chimap" not in capsys.readouterr().err
