"""Phase as the susceptibility input, end to end: validate, train, cv and predict with --susceptibility phase."""

import dataclasses
import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from prlkit.cli import main
from prlkit.config import LesionConfig
from prlkit.data.bids import discover_cohort
from prlkit.data.session import load_session
from prlkit.report.gallery import display_session, lesion_figure
from prlkit.report.pages import read_as_predicted
from prlkit.synth.cohort import write_cohort
from prlkit.synth.profiles import get_profile

from conftest import tiny_config


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Six tiny simulated participants (QSM and phase, negative sign convention) and a CPU-second config."""
    root = tmp_path_factory.mktemp("phase_input")
    write_cohort(root / "bids", 6, seed=21, profile=get_profile("tiny"), jobs=1, progress=False)
    config = root / "tiny.yaml"
    settings = tiny_config(pretrain={"kind": "none"}, finetune={"max_epochs": 1}, split={"n_folds": 3})
    config.write_text(yaml.safe_dump(settings))
    return root, config


@pytest.fixture(scope="module")
def full_size(tmp_path_factory):
    """Two participants of the default generator: a whole brain's veins, as a real scan has."""
    root = tmp_path_factory.mktemp("phase_full") / "bids"
    write_cohort(root, 2, seed=22, profile=get_profile("default"), jobs=1, progress=False)
    return root


def validate(capsys, dataset, *options):
    assert main(["validate", str(dataset), "--json", *options]) == 0
    return json.loads(capsys.readouterr().out)


def test_validate_reads_phase_and_tells_its_sign_from_the_veins(full_size, capsys):
    report = validate(capsys, full_size, "--susceptibility", "phase")
    assert report["problems"] == [] and report["totals"]["sessions_with_phase"] == 2
    assert {row["phase_sign"] for row in report["sessions"]} == {"negative"}  # the simulator's convention


def test_the_other_sign_convention_is_found_too(tmp_path, capsys):
    profile = dataclasses.replace(get_profile("default"), phase_sign="positive")
    write_cohort(tmp_path / "bids", 1, seed=23, profile=profile, jobs=1, progress=False)
    report = validate(capsys, tmp_path / "bids", "--susceptibility", "phase")
    assert [row["phase_sign"] for row in report["sessions"]] == ["positive"]


def test_a_given_phase_sign_is_used_as_given(cohort, capsys):
    root, _ = cohort
    forced = validate(capsys, root / "bids", "--susceptibility", "phase", "--phase-sign", "positive")
    assert forced["problems"] == [] and {row["phase_sign"] for row in forced["sessions"]} == {"positive"}
    assert {row["phase_sign"] for row in validate(capsys, root / "bids")["sessions"]} == {""}  # QSM: no phase


def test_no_veins_in_view_is_one_line_naming_the_file(full_size, tmp_path, capsys):
    shutil.copytree(full_size, tmp_path / "bids")
    path = tmp_path / "bids/sub-001/anat/sub-001_part-phase_T2starw.nii.gz"
    image = nib.load(path)
    brain = np.asarray(image.dataobj) != 0
    noise = np.random.default_rng(0).normal(0, 0.05, brain.shape).astype(np.float32) * brain
    nib.save(nib.Nifti1Image(noise, image.affine), path)  # phase without any vein
    assert main(["validate", str(tmp_path / "bids"), "--json", "--susceptibility", "phase"]) == 1
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert problem.startswith(f"{path}: cannot tell the phase sign convention from veins")
    assert problem.endswith("pass --phase-sign positive|negative") and "\n" not in problem


def test_a_missing_phase_image_is_the_missing_file(cohort, tmp_path, capsys):
    root, _ = cohort
    shutil.copytree(root / "bids", tmp_path / "bids")
    path = tmp_path / "bids/sub-002/anat/sub-002_part-phase_T2starw.nii.gz"
    path.unlink()
    assert main(["validate", str(tmp_path / "bids"), "--json", "--susceptibility", "phase",
                 "--phase-sign", "negative"]) == 1
    assert json.loads(capsys.readouterr().out)["problems"] == [f"{path}: missing phase file for sub-002"]


def test_train_and_predict_on_phase_record_the_sign(cohort, tmp_path, capsys):
    root, config = cohort
    common = ["--config", str(config), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(["train", str(root / "bids"), "--out", str(tmp_path / "model"), "--method", "frodo",
                 "--susceptibility", "phase", "--phase-sign", "negative", *common]) == 0
    model = json.loads((tmp_path / "model/model.json").read_text())
    assert model["config"]["susceptibility"] == "phase" and model["config"]["phase_sign"] == "negative"
    lesions = pd.read_csv(tmp_path / "model/lesions.tsv", sep="\t")
    assert set(lesions["phase_sign"]) == {"negative"} and set(lesions["susceptibility"]) == {"phase"}
    capsys.readouterr()
    assert main(["predict", str(root / "bids"), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "pred"),
                 "--participant-label", "sub-001", "--no-progress"]) == 0
    table = pd.read_csv(tmp_path / "pred/derivatives/prlkit/sub-001/anat/sub-001_lesions.tsv", sep="\t")
    assert set(table["susceptibility"]) == {"phase"} and set(table["phase_sign"]) == {"negative"}
    assert set(table["phase_sign_from"]) == {"given (phase_sign)"} and set(table["acquisition_from"]) == {"sidecar"}
    assert main(["report", str(tmp_path / "pred"), "--dataset", str(root / "bids")]) == 0  # reads the phase
    files = read_as_predicted(discover_cohort(root / "bids").sessions[0],
                              tmp_path / "pred/derivatives/prlkit/sub-001/anat/sub-001_lesions.tsv")
    view = display_session(load_session(files, LesionConfig()))
    assert view.susceptibility == "phase (field shift, paramagnetic bright; sign negative)"
    figure = lesion_figure(view, 1, table.loc[0, ["center_mm_x", "center_mm_y", "center_mm_z"]].to_numpy(), "t")
    assert figure.axes[0].get_ylabel() == "phase" and "phase (field shift" in figure._suptitle.get_text()


def test_cv_compares_qsm_and_phase_of_the_same_cohort(cohort, tmp_path, capsys):
    root, config = cohort
    results = {}
    for source in ("qsm", "phase"):
        out = tmp_path / source
        assert main(["cv", str(root / "bids"), "--methods", "frodo", "--out", str(out), "--config", str(config),
                     "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--bootstrap", "0",
                     "--susceptibility", source, "--phase-sign", "negative"]) == 0
        results[source] = json.loads((out / "results.json").read_text())
        assert yaml.safe_load((out / "config.yaml").read_text())["susceptibility"] == source
    capsys.readouterr()
    # the two runs read different images: their patch caches and predictions differ
    assert len(list((tmp_path / "cache").glob("patches-*"))) == 2
    assert main(["compare", str(tmp_path / "qsm"), str(tmp_path / "phase"), "--out", str(tmp_path / "both")]) == 0
    merged = json.loads((tmp_path / "both/results.json").read_text())
    assert merged["reference"] == "frodo (qsm)" and "frodo (phase)" in merged["summary"]


def test_the_pretrained_variant_starts_from_the_phase_weights_on_phase(cohort, tmp_path):
    from safetensors.torch import load_file

    from prlkit.weights import SHIPPED_WEIGHTS

    root, _ = cohort
    settings = tiny_config(methods={"frodo_simpretrained": {"finetune": {
        "max_epochs": 1, "learning_rate": 1e-12, "weight_decay": 0.0}}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(settings))
    assert main(["train", str(root / "bids"), "--out", str(tmp_path / "model"), "--method", "frodo_simpretrained",
                 "--susceptibility", "phase", "--phase-sign", "negative", "--config", str(tmp_path / "c.yaml"),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    trained = load_file(str(tmp_path / "model/model.safetensors"))
    phase, qsm = (load_file(str(SHIPPED_WEIGHTS["simulated_anatomy"][source])) for source in ("phase", "qsm"))
    assert all(np.allclose(trained[f"net.{key}"], phase[key], atol=1e-6) for key in phase)
    assert not all(np.allclose(phase[key], qsm[key], atol=1e-6) for key in phase)  # the check has teeth


def test_segment_trains_and_predicts_on_phase_without_any_qsm_file(cohort, tmp_path, capsys):
    root, _ = cohort
    shutil.copytree(root / "bids", tmp_path / "bids")
    for qsm in (tmp_path / "bids").rglob("*_Chimap.nii.gz"):
        qsm.unlink()  # phase only: every step must read the phase
    settings = tiny_config(segment={"patch_size": 16, "channels": [4, 8], "strides": [2], "rounds_per_epoch": 1,
                                    "train": {"max_epochs": 1}})
    (tmp_path / "seg.yaml").write_text(yaml.safe_dump(settings))
    assert main(["segment", "train", str(tmp_path / "bids"), "--out", str(tmp_path / "model"), "--config",
                 str(tmp_path / "seg.yaml"), "--susceptibility", "phase", "--phase-sign", "negative",
                 "--no-progress"]) == 0
    assert json.loads((tmp_path / "model/model.json").read_text())["config"]["susceptibility"] == "phase"
    capsys.readouterr()
    assert main(["segment", "predict", str(tmp_path / "bids"), "--model", str(tmp_path / "model"), "--out",
                 str(tmp_path / "seg"), "--no-progress"]) == 0
    table = pd.read_csv(tmp_path / "seg/derivatives/prlkit/sub-001/anat/sub-001_desc-prlseg_lesions.tsv", sep="\t")
    assert set(table["susceptibility"]) == {"phase"} and set(table["phase_sign"]) == {"negative"}
    assert table["probability"].notna().any()
    # `prlkit predict` reads the phase for a segmentation model too, and --phase-sign overrides the model's
    assert main(["predict", str(tmp_path / "bids"), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "p"),
                 "--phase-sign", "auto", "--participant-label", "sub-001", "--no-progress"]) == 0
    table = pd.read_csv(tmp_path / "p/derivatives/prlkit/sub-001/anat/sub-001_lesions.tsv", sep="\t")
    assert set(table["susceptibility"]) == {"phase"} and table["phase_sign_from"].str.startswith("veins").all()


def test_the_segmentation_input_scales_phase_by_the_phase_window(cohort):
    from prlkit.config import get_profile as get_config_profile
    from prlkit.data.patches import normalise_qsm
    from prlkit.segment.volumes import image_channels

    root, _ = cohort
    config = get_config_profile("quick")
    files = dataclasses.replace(discover_cohort(root / "bids").sessions[0], susceptibility="phase",
                                phase_sign="negative")
    session = load_session(files, config.lesions)
    field = image_channels(session, config)[0]
    windows = config.patches.phase_window_ppm, config.patches.qsm_window_ppm
    phase_scaled, qsm_scaled = (normalise_qsm(session.qsm, w, config.patches.qsm_scale) for w in windows)
    np.testing.assert_array_equal(field, phase_scaled)
    assert not np.allclose(field, qsm_scaled)  # the field shift is far smaller than the QSM window


@pytest.mark.slow
def test_every_method_runs_on_phase_in_one_cv(tmp_path):
    from prlkit.methods.registry import METHODS
    from test_cv_all_methods import TINY_ALL

    tiny = get_profile("tiny")
    # about 3 Rim+ per participant: APRL's inner CV needs 4 in every fold's training set
    rim_rich = dataclasses.replace(tiny, lesions=dataclasses.replace(tiny.lesions, rim_mean=3.0, rim_dispersion=20.0))
    write_cohort(tmp_path / "bids", 10, seed=24, profile=rim_rich, jobs=1, progress=False)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TINY_ALL))
    assert main(["cv", str(tmp_path / "bids"), "--out", str(tmp_path / "cv"), "--methods", "all", "--config",
                 str(tmp_path / "c.yaml"), "--bootstrap", "0", "--susceptibility", "phase", "--phase-sign", "negative",
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    oof = pd.read_csv(tmp_path / "cv/oof_predictions.tsv", sep="\t")
    assert set(oof["method"]) == set(METHODS) and oof["probability"].notna().all()
    assert yaml.safe_load((tmp_path / "cv/config.yaml").read_text())["susceptibility"] == "phase"
