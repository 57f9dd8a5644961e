"""`prlkit predict`: BIDS-derivatives outputs that agree with each other; jobs per participant; bad input."""

import errno
import json
import shutil
import socket
import subprocess
import tempfile

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

import prlkit
from prlkit.cli import main
from prlkit.config import config_from_dict
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set
from prlkit.data.session import load_session
from prlkit.eval.folds import labelled_lesions, split_development
from prlkit.methods.contract import TrainingJob
from prlkit.methods.frodo import train_frodo
from prlkit.predict import LESION_OUTPUT_COLUMNS, Ensemble, load_ensemble
from prlkit.provenance import software_versions
from prlkit.report.pages import recorded_dataset

from conftest import tiny_config, write_toy_rim_cohort

TINY = tiny_config(pretrain={"kind": "none"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    dataset = write_toy_rim_cohort(root / "bids", n_participants=6)
    config = config_from_dict(TINY)
    patch_set = build_patch_set(discover_cohort(dataset), config, cache_dir=root / "cache", progress=False)
    train, val = split_development(labelled_lesions(patch_set.lesions), val_fraction=0.3, seed=0)
    model, _ = train_frodo(TrainingJob(method="frodo", patch_set=patch_set, train_index=train, val_index=val,
                                       config=config, run_dir=root / "runs", device=torch.device("cpu"),
                                       progress=False))
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
                                            f"{participant}_desc-lesions_dseg.nii.gz")).dataobj)
        flair = nib.load(str(dataset / participant / "anat" / f"{participant}_FLAIR.nii.gz"))
        np.testing.assert_allclose(probseg.affine, flair.affine)
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


def test_bids_app_form_predicts_each_participant_then_reports_the_group(trained, tmp_path):
    dataset, model, _ = trained
    for label in ("01", "02"):  # one cluster job per participant, the BIDS-Apps spelling of the option
        assert main([str(dataset), str(tmp_path), "participant", "--model", str(model), "--participant_label", label,
                     "--no-progress"]) == 0
    subjects = pd.read_csv(tmp_path / "derivatives/prlkit/subjects.tsv", sep="\t")
    assert list(subjects["participant_id"]) == ["sub-01", "sub-02"]
    assert main([str(dataset), str(tmp_path), "group", "--top", "1"]) == 0
    assert "sub-02" in (tmp_path / "report.html").read_text()


def test_single_session_mode_matches_dataset_mode(trained, tmp_path):
    dataset, model, _ = trained
    anat, lesions = dataset / "sub-02" / "anat", dataset / "derivatives/lesions/sub-02/anat"
    assert run_predict("--model", model, "--out", tmp_path / "one", "--qsm", anat / "sub-02_Chimap.nii.gz",
                       "--flair", anat / "sub-02_FLAIR.nii.gz",
                       "--lesions", lesions / "sub-02_desc-lesions_dseg.nii.gz", "--subject", "02") == 0
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
    error = capsys.readouterr().err
    assert "sub-04_FLAIR.nii.gz" in error and "--skip-invalid" in error
    assert not (tmp_path / "out").exists()


def test_ensemble_averages_models_and_thresholds(trained):
    _, model, _ = trained
    single = load_ensemble(model)
    twice = Ensemble(single.models * 2)
    patches = np.random.default_rng(0).normal(size=(3, 3, 16, 16, 16)).astype(np.float32)
    cpu = torch.device("cpu")
    np.testing.assert_allclose(twice.probabilities(patches, cpu), single.probabilities(patches, cpu))
    assert twice.threshold == single.threshold


def _copy(dataset, root, name):
    """A fresh copy of the toy dataset to break."""
    copy = root / name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(dataset, copy)
    return copy


def test_empty_lesion_map_gives_an_empty_table(trained, tmp_path):
    dataset, model, _ = trained
    copy = _copy(dataset, tmp_path, "empty")
    lesion_dir = copy / "derivatives/lesions/sub-03/anat"
    lesion_map = lesion_dir / "sub-03_desc-lesions_dseg.nii.gz"
    image = nib.load(lesion_map)
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine), lesion_map)
    (lesion_dir / "sub-03_desc-lesions_dseg.tsv").write_text("index\trim\n")
    assert run_predict(copy, "--model", model, "--out", tmp_path / "all") == 0
    assert run_predict("--model", model, "--out", tmp_path / "one", "--qsm", copy / "sub-03/anat/sub-03_Chimap.nii.gz",
                       "--flair", copy / "sub-03/anat/sub-03_FLAIR.nii.gz", "--lesions", lesion_map,
                       "--subject", "03") == 0
    for out in (tmp_path / "all", tmp_path / "one"):
        base = out / "derivatives/prlkit"
        table = pd.read_csv(base / "sub-03/anat/sub-03_lesions.tsv", sep="\t")
        assert table.empty and list(table.columns) == LESION_OUTPUT_COLUMNS
        assert not np.asarray(nib.load(base / "sub-03/anat/sub-03_desc-rim_dseg.nii.gz").dataobj).any()
        subjects = pd.read_csv(base / "subjects.tsv", sep="\t").set_index("participant_id")
        assert subjects.loc["sub-03", "n_lesions"] == 0 and subjects.loc["sub-03", "chronic_active"] == 0
    assert len(pd.read_csv(tmp_path / "all/derivatives/prlkit/subjects.tsv", sep="\t")) == 6


def test_lesion_table_has_the_documented_columns(trained, tmp_path):
    dataset, model, _ = trained
    assert run_predict(dataset, "--model", model, "--out", tmp_path, "--participant-label", "01") == 0
    table = pd.read_csv(tmp_path / "derivatives/prlkit/sub-01/anat/sub-01_lesions.tsv", sep="\t")
    assert "touches_border" in LESION_OUTPUT_COLUMNS and list(table.columns) == LESION_OUTPUT_COLUMNS
    session = load_session(discover_cohort(dataset).sessions[1], load_ensemble(model).config.lesions)
    assert list(table["touches_border"]) == list(session.lesions["touches_border"])


def _fail_on_fifth_image(monkeypatch):
    """nibabel writing the third session's first image fails as on a full disk (no file name in the error)."""
    calls = []
    save = nib.save

    def failing(image, filename):
        calls.append(filename)
        if len(calls) == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(image, filename)

    monkeypatch.setattr(nib, "save", failing)


def test_failed_write_leaves_the_output_as_before(trained, tmp_path, monkeypatch, capsys):
    dataset, model, _ = trained
    out = tmp_path / "out"
    _fail_on_fifth_image(monkeypatch)
    assert run_predict(dataset, "--model", model, "--out", out) == 1
    assert not out.exists()  # a fresh folder: nothing left, not even the folder
    error = capsys.readouterr().err.strip()  # names the file being written, by its final name
    written = out / "derivatives/prlkit/sub-02/anat/sub-02_desc-rim_probseg.nii.gz"
    assert error == f"prlkit: error: {written}: No space left on device"
    monkeypatch.undo()
    assert run_predict(dataset, "--model", model, "--out", out, "--participant-label", "01") == 0  # another job's
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _fail_on_fifth_image(monkeypatch)
    assert run_predict(dataset, "--model", model, "--out", out) == 1
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # no staging folder, no temporary


def test_stale_leftovers_of_a_killed_run_are_removed(trained, tmp_path):
    dataset, model, _ = trained
    tag = f"~prlkit-{socket.gethostname()}-{_dead_pid()}~"
    staging = tmp_path / f".prlkit-staging{tag}" / "derivatives"
    staging.mkdir(parents=True)
    anat = tmp_path / "derivatives/prlkit/sub-01/anat"
    anat.mkdir(parents=True)
    (anat / f".sub-01_lesions.tsv{tag}x1.tmp.tsv").write_text("half")
    assert run_predict(dataset, "--model", model, "--out", tmp_path, "--participant-label", "01") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["derivatives"]
    assert not [p for p in anat.iterdir() if p.name.startswith(".")]


def test_skip_invalid_predicts_the_others(trained, tmp_path, capsys):
    dataset, model, _ = trained
    copy = _copy(dataset, tmp_path, "missing")
    (copy / "sub-04/anat/sub-04_FLAIR.nii.gz").unlink()
    with open(copy / "participants.tsv", "a") as listing:
        listing.write("sub-99\n")  # listed, no folder: a cohort-level problem
    assert run_predict(copy, "--model", model, "--out", tmp_path / "strict") == 1
    error = capsys.readouterr().err
    assert "sub-99" in error and "--skip-invalid" in error and not (tmp_path / "strict").exists()
    assert run_predict(copy, "--model", model, "--out", tmp_path / "out", "--skip-invalid") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("prlkit: warning:")]
    assert len(warnings) == 2 and "sub-99 is listed but has no folder" in warnings[0]
    assert "skipped 1 of 6" in warnings[1] and "sub-04" in warnings[1]
    base = tmp_path / "out/derivatives/prlkit"
    skipped = pd.read_csv(base / "skipped_sessions.tsv", sep="\t", keep_default_na=False)
    assert skipped.to_dict("records") == [{"participant_id": "sub-04", "session_id": "",
                                           "file": str(copy / "sub-04/anat/sub-04_FLAIR.nii.gz"),
                                           "problem": "missing flair file for sub-04"}]
    subjects = pd.read_csv(base / "subjects.tsv", sep="\t")
    assert list(subjects["participant_id"]) == ["sub-00", "sub-01", "sub-02", "sub-03", "sub-05"]


def test_report_finds_the_recorded_dataset(trained, tmp_path):
    dataset, model, _ = trained
    assert run_predict(dataset, "--model", model, "--out", tmp_path, "--participant-label", "02") == 0
    description = json.loads((tmp_path / "derivatives/prlkit/dataset_description.json").read_text())
    assert description["SourceDatasets"] == [{"URL": dataset.resolve().as_uri(), "Name": "toy-rim"}]
    assert recorded_dataset(tmp_path) == dataset.resolve()
    assert main(["report", str(tmp_path), "--top", "1"]) == 0
    assert "sub-02" in (tmp_path / "report.html").read_text()


def test_dataset_description_records_prlkit_the_software_and_every_model(trained, tmp_path):
    dataset, model, _ = trained
    assert run_predict(dataset, "--model", model, "--out", tmp_path, "--participant-label", "02") == 0
    [generated_by] = json.loads((tmp_path / "derivatives/prlkit/dataset_description.json").read_text())["GeneratedBy"]
    assert generated_by["Name"] == "prlkit" and generated_by["Version"] == prlkit.__version__
    assert generated_by["Software"] == software_versions()
    [used] = generated_by["Models"]
    assert used["Path"] == str(model.resolve()) and used["Method"] == "frodo"
    assert used["PrlkitVersion"] == json.loads((model / "model.json").read_text())["prlkit_version"]
    assert len(used["ConfigDigest"]) == 16


def _dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_read_only_output_is_one_line_naming_the_file(trained, tmp_path, monkeypatch, capsys):
    dataset, model, _ = trained

    def read_only(suffix=None, prefix=None, dir=None, text=False):
        raise OSError(errno.EROFS, "Read-only file system", f"{dir}/{prefix}a1b2{suffix}")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)  # root ignores chmod: the file system's answer, simulated
    out = tmp_path / "out"
    assert run_predict(dataset, "--model", model, "--out", out, "--participant-label", "01") == 1
    description = out / "derivatives/prlkit/dataset_description.json"
    assert capsys.readouterr().err == f"prlkit: error: {description}: Read-only file system\n"
    assert not out.exists()


def test_a_model_file_from_before_the_weight_average_still_loads(trained, tmp_path):
    """A quick model.json written before `average_fraction` existed (early stopping, keep best) loads and predicts:
    the missing key takes the value it was trained under, not today's quick default."""
    dataset, model, _ = trained
    older = tmp_path / "older"
    shutil.copytree(model, older)
    meta = json.loads((older / "model.json").read_text())
    finetune = meta["config"]["finetune"]
    del finetune["average_fraction"]
    finetune |= {"max_epochs": 30, "patience": 8, "keep": "best"}
    (older / "model.json").write_text(json.dumps(meta))
    assert meta["config"]["profile"] == "quick"
    assert load_ensemble(older).models[0].config.finetune.average_fraction == 0
    assert run_predict(dataset, "--model", older, "--out", tmp_path / "out", "--participant-label", "02") == 0
