"""Segmentation end to end on a toy cohort with obvious rims: training, saving, `prlkit segment train|predict`."""

import argparse
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from prlkit.cli import main
from prlkit.commands import segment
from prlkit.config import config_from_dict
from prlkit.data.bids import PrlkitWarning, discover_cohort
from prlkit.errors import PrlkitError
from prlkit.eval.calibration import TemperatureScaling
from prlkit.methods.trained import load_trained_model
from prlkit.predict import LESION_OUTPUT_COLUMNS
from prlkit.segment.model import UNCALIBRATED, load_segmentation_model
from prlkit.segment.stage import validation_outputs
from prlkit.segment.train import train_segmentation
from prlkit.segment.volumes import load_segment_volume
from prlkit.train.checkpoint import RESUME_FILES

from conftest import write_toy_rim_cohort

TINY = {"profile": "quick", "segment": {"patch_size": 16, "channels": [8, 16], "strides": [2], "rounds_per_epoch": 4,
                                        "train": {"max_epochs": 6, "patience": 6, "learning_rate": 0.01}}}


def run_segment(argv: list[str]) -> int:
    """`prlkit segment ...` through a parser holding only this command (cli.py wires it for users)."""
    parser = argparse.ArgumentParser()
    segment.register(parser.add_subparsers())
    args = parser.parse_args(["segment", *argv])
    return args.func(args)


def test_voxel_mm_is_named_as_ignored(tmp_path):
    config = config_from_dict({**TINY, "patches": {"voxel_mm": 1.0}})
    with pytest.warns(PrlkitWarning, match=r"patches\.voxel_mm is ignored"), pytest.raises(PrlkitError):
        train_segmentation([], [], config, tmp_path, torch.device("cpu"))


@pytest.mark.slow
def test_train_segments_obvious_rims_and_predict_writes_maps_on_the_input_grid(tmp_path):
    dataset = write_toy_rim_cohort(tmp_path / "bids", n_participants=5)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    model_dir, out = tmp_path / "model", tmp_path / "pred"
    assert run_segment(["train", str(dataset), "--out", str(model_dir), "--config", str(tmp_path / "tiny.yaml"),
                        "--device", "cpu", "--no-progress"]) == 0
    training = json.loads((model_dir / "model.json").read_text())["training"]
    assert training["n_val_sessions"] == 1 and training["n_train_sessions"] == 4
    assert training["val_dice_PRL"] > 0.5 and training["val_dice_nonPRL"] > 0.5  # on a held-out participant
    assert training["val_roc_auc"] == 1.0
    assert (pd.read_csv(model_dir / "split.tsv", sep="\t")["split"] == "val").sum() == 1
    for name in ("config.yaml", "training_curves.png", "model.safetensors", "runs/metrics.jsonl"):
        assert (model_dir / name).is_file(), name
    assert not any((model_dir / "runs" / name).exists() for name in RESUME_FILES)  # the model is complete

    assert run_segment(["predict", str(dataset), "--model", str(model_dir), "--out", str(out), "--device", "cpu",
                        "--no-progress"]) == 0
    description = json.loads((out / "derivatives" / "prlkit" / "dataset_description.json").read_text())
    assert description["SourceDatasets"][0]["URL"] == dataset.resolve().as_uri()
    assert [(m["Path"], m["Method"]) for m in description["GeneratedBy"][0]["Models"]] == [(str(model_dir.resolve()),
                                                                                           "prlseg")]
    anat = out / "derivatives" / "prlkit" / "sub-01" / "anat"
    source = nib.load(dataset / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz")
    dseg = nib.load(anat / "sub-01_desc-prlseg_dseg.nii.gz")
    prl = nib.load(anat / "sub-01_label-PRL_desc-prlseg_probseg.nii.gz").get_fdata()
    non_prl = nib.load(anat / "sub-01_label-nonPRL_desc-prlseg_probseg.nii.gz").get_fdata()
    assert dseg.shape == source.shape and np.allclose(dseg.affine, source.affine)
    assert set(np.unique(dseg.get_fdata())) <= {0, 1, 2} and ((prl + non_prl) <= 1 + 1e-5).all()
    lesions = pd.read_csv(anat / "sub-01_desc-prlseg_lesions.tsv", sep="\t")
    truth = pd.read_csv(dataset / "derivatives" / "lesions" / "sub-01" / "anat" / "sub-01_desc-lesions_dseg.tsv",
                        sep="\t")
    assert lesions["index"].tolist() == truth["index"].tolist()
    assert lesions.loc[truth["rim"] == 1, "probability"].min() > lesions.loc[truth["rim"] == 0, "probability"].max()
    metrics = pd.read_csv(out / "derivatives" / "prlkit" / "prlseg_metrics.tsv", sep="\t")
    assert len(metrics) == 5 and (metrics["dice_PRL"] > 0.5).all()
    assert json.loads((out / "derivatives" / "prlkit" / "prlseg_metrics.json").read_text())["global_f1"] == 1.0

    # calibrated P(Rim+) = the saved calibrator applied to the raw score, decisions at the saved threshold
    model = load_segmentation_model(model_dir)
    assert isinstance(model.calibrator, TemperatureScaling) and model.calibrator.temperature > 0
    np.testing.assert_allclose(lesions["probability"], model.calibrator.apply(lesions["score"]), rtol=1e-5)
    assert (lesions["rim_pred"] == (lesions["probability"] >= model.threshold)).all()

    # `prlkit predict` with the prlseg model: the lesion table, maps and subjects.tsv of every method
    assert main(["predict", str(dataset), "--model", str(model_dir), "--out", str(tmp_path / "p"), "--device", "cpu",
                 "--no-progress"]) == 0
    base = tmp_path / "p" / "derivatives" / "prlkit"
    table = pd.read_csv(base / "sub-01" / "anat" / "sub-01_lesions.tsv", sep="\t", keep_default_na=False)
    assert list(table.columns) == LESION_OUTPUT_COLUMNS
    np.testing.assert_allclose(table["probability"].astype(float), lesions["probability"], rtol=1e-5)
    assert (table["rim_pred"] == lesions["rim_pred"]).all()
    probseg = nib.load(base / "sub-01" / "anat" / "sub-01_desc-rim_probseg.nii.gz").get_fdata()
    instances = np.asarray(nib.load(dataset / "derivatives" / "lesions" / "sub-01" / "anat" /
                                    "sub-01_desc-lesions_dseg.nii.gz").dataobj)
    first = table.loc[table["index"] == 1, "probability"].item()
    assert probseg[instances == 1].mean() == pytest.approx(first, rel=1e-5)
    subjects = pd.read_csv(base / "subjects.tsv", sep="\t")
    assert len(subjects) == 5 and (subjects["n_rim_pred"] == [2, 1, 1, 2, 1]).all()  # (n + k) % 3 == 0 of 4 lesions

    # lesions excluded from classification get no probability, as with the patch methods
    meta = json.loads((model_dir / "model.json").read_text())
    meta["config"]["lesions"]["min_voxels"] = 1000
    (model_dir / "model.json").write_text(json.dumps(meta))
    assert main(["predict", str(dataset), "--model", str(model_dir), "--out", str(tmp_path / "q"), "--device", "cpu",
                 "--no-progress", "--participant-label", "01"]) == 0
    table = pd.read_csv(tmp_path / "q" / "derivatives" / "prlkit" / "sub-01" / "anat" / "sub-01_lesions.tsv", sep="\t")
    assert table["probability"].isna().all() and (table["rim_pred"] == 0).all()
    assert (table["excluded"] == "too_small").all()


def test_saved_model_reproduces_probabilities_and_a_seed_reproduces_training(tmp_path):
    dataset = write_toy_rim_cohort(tmp_path / "bids", n_participants=3)
    config = config_from_dict(TINY | {"segment": TINY["segment"] | {"rounds_per_epoch": 1, "train": {"max_epochs": 1}}})
    volumes = [load_segment_volume(files, config) for files in discover_cohort(dataset).sessions]
    cpu = torch.device("cpu")
    first, _ = train_segmentation(volumes[:2], volumes[2:], config, tmp_path / "a", cpu, progress=False)
    again, _ = train_segmentation(volumes[:2], volumes[2:], config, tmp_path / "b", cpu, progress=False)
    for a, b in zip(first.module.state_dict().values(), again.module.state_dict().values()):
        assert torch.equal(a, b)
    first.save(tmp_path / "model")
    loaded = load_segmentation_model(tmp_path / "model")
    assert loaded.threshold == first.threshold and loaded.config == first.config
    assert loaded.calibrator == first.calibrator  # temperature, fitted on the validation lesions' raw scores
    val = validation_outputs(first.module, volumes[2:], config.segment, cpu).lesions
    assert first.calibrator == TemperatureScaling.fit(val["rim"].astype(int), val["score"])
    np.testing.assert_array_equal(loaded.probabilities(volumes[2], cpu), first.probabilities(volumes[2], cpu))
    with pytest.raises(PrlkitError, match="run it with `prlkit segment predict`"):
        load_trained_model(tmp_path / "model")  # the patch-model loader of `prlkit predict`
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    (tmp_path / "model" / "model.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "calibration"}))
    assert load_segmentation_model(tmp_path / "model").calibrator == UNCALIBRATED  # saved before calibration
    (tmp_path / "model" / "model.json").write_text(json.dumps(meta | {"method": "frodo"}))
    with pytest.raises(PrlkitError, match="not a prlseg segmentation model"):
        run_segment(["predict", str(dataset), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "o")])
