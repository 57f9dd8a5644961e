"""The generated cohort: determinism, jobs independence, the docs/data.md contract, atomic output."""

import argparse
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from prlkit.commands import simulate
from prlkit.errors import PrlkitError
from prlkit.synth import cohort
from prlkit.synth.cohort import generate_subject, write_cohort
from prlkit.synth.profiles import get_profile

TINY = get_profile("tiny")
IMAGES = ("Chimap", "part-phase_T2starw", "FLAIR", "T1w")


def _files(root, pid):
    anat = root / pid / "anat"
    lesions = root / "derivatives" / "lesions" / pid / "anat"
    return {**{kind: anat / f"{pid}_{kind}.nii.gz" for kind in IMAGES},
            "dseg": lesions / f"{pid}_desc-lesions_dseg.nii.gz", "table": lesions / f"{pid}_desc-lesions_dseg.tsv"}


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    base = tmp_path_factory.mktemp("cohorts")
    one = base / "jobs1"
    two = base / "jobs2"
    write_cohort(one, 3, seed=5, profile=TINY, jobs=1, progress=False)
    write_cohort(two, 3, seed=5, profile=TINY, jobs=2, progress=False)
    return one, two


def test_different_seed_differs(cohorts):
    other = generate_subject(6, 0, 3, TINY)
    qsm = np.asarray(nib.load(_files(cohorts[0], "sub-001")["Chimap"]).dataobj)
    assert other.qsm.shape == qsm.shape and not np.array_equal(other.qsm, qsm)


def test_same_seed_is_identical_whatever_the_jobs(cohorts):
    """Two runs with one seed (one with 1 job, one with 2) give identical arrays and tables."""
    one, two = cohorts
    for name in ("participants.tsv", "sourcedata/truth.tsv", "dataset_description.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes()
    for pid in pd.read_csv(one / "participants.tsv", sep="\t")["participant_id"]:
        for kind, path in _files(one, pid).items():
            other = _files(two, pid)[kind]
            if kind == "table":
                assert path.read_bytes() == other.read_bytes()
            else:
                assert np.array_equal(nib.load(path).get_fdata(), nib.load(other).get_fdata())


def test_files_follow_the_contract(cohorts):
    root = cohorts[0]
    description = json.loads((root / "dataset_description.json").read_text())
    assert description["Name"] and description["BIDSVersion"]
    participants = pd.read_csv(root / "participants.tsv", sep="\t")
    assert list(participants["participant_id"]) == ["sub-001", "sub-002", "sub-003"]
    assert participants["site"].notna().all()
    truth = pd.read_csv(root / "sourcedata" / "truth.tsv", sep="\t")
    for pid in participants["participant_id"]:
        files = _files(root, pid)
        images = {kind: nib.load(files[kind]) for kind in IMAGES + ("dseg",)}
        reference = images["Chimap"]
        assert reference.get_data_dtype() == np.float32
        assert images["dseg"].get_data_dtype() == np.uint16
        assert np.allclose(np.diag(reference.affine)[:3], 1.0)
        assert np.allclose(reference.header.get_qform(), reference.header.get_sform())
        for image in images.values():
            assert image.shape == TINY.shape
            assert np.allclose(image.affine, reference.affine)
        labels = np.asarray(images["dseg"].dataobj)
        table = pd.read_csv(files["table"], sep="\t")
        assert list(table.columns) == ["index", "name", "rim", "consensus_needed"]
        assert sorted(table["index"]) == sorted(np.unique(labels[labels > 0]).tolist())
        assert list(table["index"]) == list(range(1, len(table) + 1))
        assert set(table["rim"]) <= {0, 1} and set(table["consensus_needed"]) <= {0, 1}
        rows = truth[truth["participant_id"] == pid]
        assert list(rows["rim"]) == list(table["rim"])
        assert list(rows["volume_voxels"]) == [int((labels == i).sum()) for i in table["index"]]
        assert (np.asarray(images["FLAIR"].dataobj) >= 0).all()


def assert_confluent_flags(root, truth):
    """Every lesion flagged confluent touches another label, and no other lesion does."""
    full = ndimage.generate_binary_structure(3, 3)
    for pid, rows in truth.groupby("participant_id"):
        labels = np.asarray(nib.load(_files(root, pid)["dseg"]).dataobj)
        for row in rows.itertuples():
            own = labels == row.index
            touches = np.any(labels[ndimage.binary_dilation(own, full) & ~own] > 0)
            assert touches == bool(row.confluent)


def test_confluent_flags_match_the_map(cohorts):
    root = cohorts[0]
    assert_confluent_flags(root, pd.read_csv(root / "sourcedata" / "truth.tsv", sep="\t"))


def test_refuses_non_empty_output(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(PrlkitError, match="not an empty folder"):
        write_cohort(tmp_path, 1, 0, TINY, jobs=1, progress=False)
    assert (tmp_path / "keep.txt").read_text() == "x"


def test_failure_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_write(root, subject):
        calls.append(subject.participant_id)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real_write(root, subject)

    real_write = cohort.write_subject
    monkeypatch.setattr(cohort, "write_subject", failing_write)
    with pytest.raises(RuntimeError):
        write_cohort(tmp_path / "out", 3, 0, TINY, jobs=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_cohort_and_preview(tmp_path):
    parser = argparse.ArgumentParser()
    simulate.register(parser.add_subparsers())
    out = tmp_path / "cohort"
    args = parser.parse_args(["simulate", str(out), "--subjects", "1", "--seed", "1", "--synth-profile", "tiny",
                              "--preview", "--jobs", "1"])
    assert args.func(args) == 0
    assert (out / "sourcedata" / "preview.png").stat().st_size > 10_000
    with pytest.raises(PrlkitError, match="--shape"):
        simulate.run(parser.parse_args(["simulate", str(tmp_path / "x"), "--shape", "10", "64", "64"]))
