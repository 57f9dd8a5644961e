"""benchmarks/resample_cohort.py: a copy on another voxel grid keeps every lesion, its label and volume in mm³,
and one grid per session (prlkit's own loader checks it)."""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import write_toy_rim_cohort

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import resample_cohort


def test_resampled_cohort_keeps_labels_and_one_grid_per_session(tmp_path):
    from prlkit.config import LesionConfig
    from prlkit.data.bids import discover_cohort
    from prlkit.data.session import load_session

    cohort = write_toy_rim_cohort(tmp_path / "toy", n_participants=2)
    assert resample_cohort.resample_cohort(cohort, tmp_path / "fine", 0.5) == 6
    session = discover_cohort(tmp_path / "fine").sessions[0]
    data = load_session(session, LesionConfig())  # raises if the images of a session disagree in grid
    assert data.qsm.shape == (79, 79, 79)  # 40 voxel centres 1 mm apart, now 0.5 mm apart
    assert np.allclose(nib.load(session.qsm).header.get_zooms(), 0.5)
    assert set(np.unique(data.instances)) == {0, 1, 2, 3, 4}
    before = np.asarray(nib.load(discover_cohort(cohort).sessions[0].lesions).dataobj)
    assert (data.instances == 1).sum() == pytest.approx(8 * (before == 1).sum(), rel=0.1)  # same volume in mm³
    assert list(data.lesions["rim"]) == [1, 0, 0, 1]


def test_a_missing_cohort_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    import mask_convention

    for script, extra in [(resample_cohort, ["--voxel-mm", "0.65"]), (mask_convention, ["--grow", "1"])]:
        arguments = ["--cohort", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), *extra]
        monkeypatch.setattr(sys, "argv", ["x", *arguments])
        with pytest.raises(SystemExit):
            script.main()
        assert f"{tmp_path / 'nope'}: no such cohort folder" in capsys.readouterr().err
        assert not (tmp_path / "o").exists()
