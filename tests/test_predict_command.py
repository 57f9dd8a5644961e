"""`prlkit predict`: BIDS-derivatives outputs that agree with each other; jobs per participant; bad input."""

import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_config, write_toy_rim_cohort

from prlkit.cli import main
from prlkit.config import config_from_dict
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set
from prlkit.eval.folds import labelled_lesions, split_development
from prlkit.methods.frodo import train_frodo
from prlkit.predict import Ensemble, load_ensemble

TINY = tiny_config(pretrain={"kind": "none"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    dataset = write_toy_rim_cohort(root / "bids", n_participants=6)
    config = config_from_dict(TINY)
    patch_set = build_patch_set(discover_cohort(dataset), config, cache_dir=root / "cache", progress=False)
    train, val = split_development(labelled_lesions(patch_set.lesions), val_fraction=0.3, seed=0)
    model, _ = train_frodo(patch_set, train, val, config, root / "runs", torch.device("cpu"), progress=False)
    model.save(root / "model")
    return dataset, root / "model", root


def run_predict(*args):
    return main(["predict", *map(str, args), "--no-progress"])


def test_outputs_agree_with_each_other(trained, tmp_path):
    dataset, model, _ = trained
    assert run_predict(dataset, "--model", model, "--out", tmp_path) == 0
    base = tmp_path / "derivatives" / "prlkit"
    assert (base / "dataset_description.json").is_file()
    subjects = pd.read_csv(base / "subjects.tsv", sep="\t")
    assert list(subjects["participant_id"]) == [f"sub-{n:02d}" for n in range(6)]
    threshold = load_ensemble(model).threshold
    for participant in subjects["participant_id"]:
        folder = base / participant / "anat"
        lesions = pd.read_csv(folder / f"{participant}_lesions.tsv", sep="\t")
        probseg = nib.load(str(folder / f"{participant}_desc-rim_probseg.nii.gz"))
        dseg = np.asarray(nib.load(str(folder / f"{participant}_desc-rim_dseg.nii.gz")).dataobj)
        instances = np.asarray(nib.load(str(dataset / "derivatives/lesions" / participant / "anat" /
                                            f"{participant}_desc-lesions_dseg.nii.gz")).dataobj)  # fmt: skip
        np.testing.assert_allclose(probseg.affine, nib.load(str(dataset / participant / "anat" / f"{participant}_FLAIR.nii.gz")).affine)
        probability = np.asarray(probseg.dataobj)
        for row in lesions.itertuples():
            voxels = instances == row.index
            assert np.allclose(probability[voxels], row.probability, atol=1e-6)
            assert (dseg[voxels] == 1 + row.rim_pred).all()
            assert row.rim_pred == int(row.probability >= threshold)
        assert (dseg[instances == 0] == 0).all() and (probability[instances == 0] == 0).all()
        row = subjects.set_index("participant_id").loc[participant]
        assert row.n_rim_pred == lesions["rim_pred"].sum()
        assert row.expected_rim_count == pytest.approx(lesions["probability"].sum(), abs=1e-3)
        assert row.chronic_active == int(row.n_rim_pred >= 4)


def test_jobs_per_participant_share_one_output(trained, tmp_path):
    dataset, model, _ = trained
    assert run_predict(dataset, "--model", model, "--out", tmp_path, "--participant-label", "01") == 0
    assert run_predict(dataset, "--model", model, "--out", tmp_path, "--participant-label", "sub-03", "04") == 0
    subjects = pd.read_csv(tmp_path / "derivatives/prlkit/subjects.tsv", sep="\t")
    assert list(subjects["participant_id"]) == ["sub-01", "sub-03", "sub-04"]
    assert run_predict(dataset, "--model", model, "--out", tmp_path / "x", "--participant-label", "99") == 1


def test_single_session_mode_matches_dataset_mode(trained, tmp_path):
    dataset, model, _ = trained
    anat, lesions = dataset / "sub-02" / "anat", dataset / "derivatives/lesions/sub-02/anat"
    assert run_predict("--model", model, "--out", tmp_path / "one", "--qsm", anat / "sub-02_Chimap.nii.gz",
                       "--flair", anat / "sub-02_FLAIR.nii.gz", "--lesions", lesions / "sub-02_desc-lesions_dseg.nii.gz",
                       "--subject", "02") == 0  # fmt: skip
    assert run_predict(dataset, "--model", model, "--out", tmp_path / "all", "--participant-label", "02") == 0
    one = pd.read_csv(tmp_path / "one/derivatives/prlkit/sub-02/anat/sub-02_lesions.tsv", sep="\t")
    everything = pd.read_csv(tmp_path / "all/derivatives/prlkit/sub-02/anat/sub-02_lesions.tsv", sep="\t")
    pd.testing.assert_frame_equal(one, everything)


def test_bad_session_leaves_no_output(trained, tmp_path, capsys):
    dataset, model, root = trained
    broken = root / "broken"
    if not broken.exists():
        shutil.copytree(dataset, broken)
        (broken / "sub-04/anat/sub-04_FLAIR.nii.gz").write_bytes(b"not nifti")
    assert run_predict(broken, "--model", model, "--out", tmp_path / "out") == 1
    assert "sub-04_FLAIR.nii.gz" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ensemble_averages_models_and_thresholds(trained):
    _, model, _ = trained
    single = load_ensemble(model)
    twice = Ensemble(single.models * 2)
    patches = np.random.default_rng(0).normal(size=(3, 3, 16, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(twice.probabilities(patches, torch.device("cpu")), single.probabilities(patches, torch.device("cpu")))
    assert twice.threshold == single.threshold
