"""The synthetic cohort passes the foundation's own contract checks: the loader finds no problem."""

import json

import numpy as np
import pytest

from prlkit.cli import main
from prlkit.synth.cohort import write_cohort
from prlkit.synth.profiles import get_profile


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "cohort"
    truth = write_cohort(out, 3, seed=4, profile=get_profile("tiny"), jobs=1, progress=False)
    return out, truth


def test_prlkit_validate_accepts_the_simulated_cohort(cohort, capsys):
    out, truth = cohort
    assert main(["validate", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == []
    totals = report["totals"]
    assert totals["subjects"] == 3 and totals["lesions"] == len(truth)
    assert totals["rim_pos"] + totals["rim_neg"] == totals["included"]
    included_truth = truth[truth["volume_voxels"] >= 110]
    assert totals["included"] == len(included_truth)
    assert totals["rim_pos"] == int(included_truth["rim"].sum())


def test_loader_centres_match_the_generator_truth(cohort):
    from prlkit.config import LesionConfig
    from prlkit.data.bids import discover_cohort
    from prlkit.data.session import load_session

    out, truth = cohort
    session = discover_cohort(out).sessions[0]
    lesions = load_session(session, LesionConfig()).lesions.set_index("index")
    rows = truth[truth["participant_id"] == session.participant_id].set_index("index")
    assert list(lesions.index) == list(rows.index)
    np.testing.assert_array_equal(lesions["voxels"], rows["volume_voxels"])
    centres = np.floor(lesions[["center_vox_i", "center_vox_j", "center_vox_k"]].to_numpy() + 0.5)
    np.testing.assert_array_equal(centres, rows[["center_i", "center_j", "center_k"]].to_numpy())
