"""The main method as its authors built it: checkpoint conversion end to end, both encoders learn in stage 1,
the authors' threshold rule, and `prlkit cv --profile paper` (tiny width) running through the harness."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file
from sklearn.metrics import f1_score

from prlkit.cli import main
from prlkit.config import FrodoConfig, PretrainConfig
from prlkit.eval.calibration import PriorShift, TemperatureScaling
from prlkit.eval.metrics import AUTHORS_THRESHOLD_GRID, select_threshold_f1
from prlkit.methods.finalize import decision_threshold
from prlkit.methods.trained import load_trained_model
from prlkit.models.frodo import FrodoNet
from prlkit.train.augment import random_symmetries
from prlkit.train.loop import Split, fit
from prlkit.train.stages import CrossModalPretraining
from test_models_authors import REFERENCE, authors_state_dict, reference_input

from conftest import tiny_config, write_toy_rim_cohort


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """fold_0.pt (train.py: the whole network) and best.pt (train_ssl.py: the encoders), from the reference formula."""
    root = tmp_path_factory.mktemp("authors")
    state = authors_state_dict()
    torch.save(state, root / "fold_0.pt")
    torch.save({k: v for k, v in state.items() if k.startswith(("qsm_stem.", "flair_stem."))}, root / "best.pt")
    return root


def test_convert_checkpoint_then_predict(checkpoints, tmp_path):
    model_dir = tmp_path / "model"
    (tmp_path / "c.yaml").write_text("profile: paper\npatches:\n  size: 32\n")  # the toy volumes are 40^3
    assert main(["convert-checkpoint", str(checkpoints / "fold_0.pt"), "--out", str(model_dir), "--threshold", "0.3",
                 "--config", str(tmp_path / "c.yaml")]) == 0
    model = load_trained_model(model_dir)
    assert model.model_config == {"base_width": 16, "norm": "group", "se_reduction": 16, "dropout": 0.5,
                                  "stem_stride": 1, "seeds": 1, "test_time_symmetries": "none"}
    assert model.threshold == np.nextafter(0.3, 1.0)  # their rule p > 0.3 as prlkit's p >= threshold
    with torch.no_grad():
        logits = model.module(reference_input(32))
    np.testing.assert_allclose(logits.numpy(), REFERENCE["outputs"]["32"]["logits"], atol=1e-5)
    np.testing.assert_allclose(model.probabilities(reference_input(32), torch.device("cpu")),
                               torch.sigmoid(logits).numpy(), atol=1e-7)  # uncalibrated, as theirs
    dataset = write_toy_rim_cohort(tmp_path / "bids", n_participants=2)
    assert main(["predict", str(dataset), "--model", str(model_dir), "--out", str(tmp_path / "pred"),
                 "--no-progress"]) == 0
    tables = list((tmp_path / "pred").rglob("*_lesions.tsv"))
    assert len(tables) == 2
    rows = pd.concat(pd.read_csv(t, sep="\t") for t in tables)
    assert len(rows) == 8 and rows["probability"].between(0, 1).all()


def test_converted_encoders_start_fine_tuning(checkpoints, tmp_path):
    encoders = tmp_path / "enc"
    assert main(["convert-checkpoint", str(checkpoints / "best.pt"), "--out", str(encoders)]) == 0
    weights = load_file(str(encoders / "encoders.safetensors"))
    assert set(weights) == set(FrodoNet(FrodoConfig()).pretrained_state_dict())
    assert json.loads((encoders / "encoders.json").read_text())["frodo"]["base_width"] == 16
    dataset = write_toy_rim_cohort(tmp_path / "bids", n_participants=4)
    config = tiny_config(frodo={"base_width": 16, "norm": "group"}, patches={"size": 32},
                         finetune={"max_epochs": 1, "learning_rate": 1e-12, "weight_decay": 0.0})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(dataset), "--out", str(tmp_path / "model"), "--config", str(tmp_path / "c.yaml"),
                 "--pretrained-encoders", str(encoders / "encoders.safetensors"), "--cache-dir",
                 str(tmp_path / "cache"), "--no-progress"]) == 0
    trained = load_trained_model(tmp_path / "model")
    assert "pretrain" not in trained.training["stages"]  # the given encoders replace stage 1
    for key, value in trained.module.pretrained_state_dict().items():
        torch.testing.assert_close(value, weights[key], rtol=0, atol=1e-6)


def test_bad_checkpoints_are_one_line_errors(checkpoints, tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    (tmp_path / "trap.pt").write_bytes(pickle.dumps({"qsm_stem.stem.weight": Payload()}))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    torch.save({"conv1.weight": torch.zeros(2, 2)}, tmp_path / "foreign.pt")
    state = authors_state_dict()
    state["classifier.out.weight"] = torch.zeros(1, 3)
    torch.save(state, tmp_path / "misshapen.pt")
    for name, message in [("trap.pt", "weights_only"), ("junk.pt", "weights_only"), ("foreign.pt", "not a FRODO"),
                          ("misshapen.pt", "do not fit"), ("missing.pt", "not found")]:
        capsys.readouterr()
        assert main(["convert-checkpoint", str(tmp_path / name), "--out", str(tmp_path / f"out-{name}")]) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and name in err and message in err, err
        assert not (tmp_path / f"out-{name}").exists()
    assert not (tmp_path / "pwned").exists()  # the pickled payload never ran


def test_stage_one_trains_both_encoders_without_stop_gradient(tmp_path):
    """The authors' train_ssl.py: MSE(phi(z_F), z_Q) with gradients into both encoders."""
    x = torch.randn(12, 2, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    data = Split(x=x, y=torch.zeros(12, dtype=torch.long))
    moved = {}
    for stop_gradient in (False, True):
        net = FrodoNet(FrodoConfig(base_width=2), seed=0)
        start = {k: v.clone() for k, v in net.pretrained_state_dict().items()}
        stage = CrossModalPretraining(net, 12, 4, "regression", stop_gradient, 0.5, seed=0)
        fit(stage, data, data, PretrainConfig(max_epochs=2, learning_rate=1e-3), tmp_path / str(stop_gradient),
            torch.device("cpu"), augment=random_symmetries, progress=False)
        after = net.pretrained_state_dict()
        moved[stop_gradient] = {stream: any(not torch.equal(after[k], start[k]) for k in start if k.startswith(stream))
                                for stream in ("qsm_encoder.", "flair_encoder.")}
    assert moved[False] == {"qsm_encoder.": True, "flair_encoder.": True}
    assert moved[True] == {"qsm_encoder.": False, "flair_encoder.": True}


@pytest.mark.parametrize("calibrator", [PriorShift(0.5, 0.1), TemperatureScaling(2.5)])
def test_raw_threshold_rule_is_the_authors(calibrator):
    """t over 0.00..1.00 maximising F1 of `p > t` on raw validation probabilities (first best, as their loop);
    the saved calibrated threshold gives the same decisions."""
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.15).astype(int)
    raw = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1).round(2)  # ties at grid values make > vs >= matter
    best_t, best_f1 = 0.5, -1.0
    for t in np.arange(0.0, 1.001, 0.01):
        score = f1_score(y, (raw > t).astype(int), zero_division=0)
        if score > best_f1:
            best_f1, best_t = score, float(t)
    assert select_threshold_f1(y, raw, grid=AUTHORS_THRESHOLD_GRID, strict=True) == pytest.approx(best_t)
    threshold = decision_threshold("raw", y, raw, calibrator)
    np.testing.assert_array_equal(calibrator.apply(raw) >= threshold, raw > best_t)


def test_cv_with_the_paper_profile_runs_and_says_so(tmp_path):
    """Also: frodo and frodo_scratch end up different in both encoders (stage 1 trains both)."""
    dataset = write_toy_rim_cohort(tmp_path / "bids", n_participants=10)
    config = {"profile": "paper", "patches": {"size": 32}, "frodo": {"base_width": 2},
              "pretrain": {"max_epochs": 1}, "finetune": {"max_epochs": 1}, "split": {"n_folds": 2}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["cv", str(dataset), "--out", str(tmp_path / "out"), "--methods", "frodo,frodo_scratch",
                 "--config", str(tmp_path / "c.yaml"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "| frodo [base_width=2] | paper |" in markdown  # the row names its network switch
    assert "`frodo.base_width=2`" in markdown and "`patches.size=32`" in markdown
    saved = json.loads((tmp_path / "out" / "frodo" / "fold-0" / "model.json").read_text())
    assert saved["config"]["split"]["by"] == "participant" and saved["config"]["pretrain"]["stop_gradient"] is False
    assert saved["training"]["stages"]["pretrain"]["epochs_run"] == 1
    pretrained, scratch = (load_file(str(tmp_path / "out" / m / "fold-0" / "model.safetensors"))
                           for m in ("frodo", "frodo_scratch"))  # same seed, same fine-tuning: stage 1 differs
    for stream in ("qsm_encoder.", "flair_encoder."):
        assert any(not torch.equal(pretrained[k], scratch[k]) for k in pretrained if k.startswith(stream)), stream


def test_chance_level_model_gets_one_warning_line(tmp_path, caplog):
    """Labels unrelated to the images (lesion 1 of everyone is "Rim+", whatever its shell) cannot be learned:
    the model is flagged in one line (here: three validation Rim+, too few to vouch for it); the p-value is
    SciPy's one-sided Mann-Whitney test, recorded in model.json."""
    dataset = write_toy_rim_cohort(tmp_path / "bids", n_participants=6)
    for table in dataset.rglob("*_dseg.tsv"):
        table.write_text("index\trim\n1\t1\n2\t0\n3\t0\n4\t0\n")
    config = tiny_config(pretrain={"kind": "none"}, finetune={"max_epochs": 1, "learning_rate": 1e-12})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    with caplog.at_level("WARNING", logger="prlkit"):
        assert main(["train", str(dataset), "--out", str(tmp_path / "model"), "--config", str(tmp_path / "c.yaml"),
                     "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--val-fraction", "0.4"]) == 0
    warnings = [r.getMessage() for r in caplog.records if "frodo: validation ROC-AUC" in r.getMessage()]
    training = json.loads((tmp_path / "model" / "model.json").read_text())["training"]
    assert training["val_chance_p"] >= 0.05 and training["n_val_rim_pos"] == 3
    assert len(warnings) == 1 and "\n" not in warnings[0] and "fewer than 5 validation Rim+" in warnings[0]


@pytest.mark.parametrize(("n_val_rim_pos", "p_value", "expected"), [
    (4, 1e-6, "fewer than 5 validation Rim+"),  # a perfect ranking of 4 Rim+ still cannot vouch for the model
    (12, 0.3, "not significantly better than chance"),
    (12, 0.049, None),
])
def test_validation_warning_names_the_reason(n_val_rim_pos, p_value, expected):
    from prlkit.methods.finalize import validation_warning

    training = {"n_val_rim_pos": n_val_rim_pos, "n_val": 80, "val_roc_auc": 0.7, "val_chance_p": p_value}
    warning = validation_warning("frodo", training)
    if expected is None:
        assert warning is None
    else:
        assert warning.startswith(f"frodo: validation ROC-AUC 0.70 ({n_val_rim_pos} Rim+ of 80 lesions")
        assert expected in warning and "\n" not in warning


def test_chance_p_value_is_scipys_one_sided_mann_whitney():
    from scipy.stats import mannwhitneyu

    from prlkit.methods.finalize import chance_p_value

    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    separated = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3, 0.2, 0.1])
    assert chance_p_value(y, separated) == mannwhitneyu(separated[:3], separated[3:], alternative="greater").pvalue
    assert chance_p_value(y, separated) < 0.05 < chance_p_value(y, separated[::-1])
    assert chance_p_value(np.zeros(4, int), np.arange(4.0)) == 1.0


def test_size_matched_sampler_reaches_the_main_method(tmp_path):
    """`finetune.sampler: size_matched` (prlkit's option) draws other fine-tuning batches than the default
    class balance, from the same seed: the trained weights differ, and the setting is saved in model.json."""
    dataset = write_toy_rim_cohort(tmp_path / "bids", n_participants=6, radii=(4, 5, 4, 5))
    weights = {}
    for sampler in ("balanced", "size_matched"):
        config = tiny_config(pretrain={"kind": "none"}, finetune={"max_epochs": 1, "sampler": sampler})
        (tmp_path / f"{sampler}.yaml").write_text(yaml.safe_dump(config))
        assert main(["train", str(dataset), "--out", str(tmp_path / sampler), "--config",
                     str(tmp_path / f"{sampler}.yaml"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
        weights[sampler] = load_file(str(tmp_path / sampler / "model.safetensors"))
        saved = json.loads((tmp_path / sampler / "model.json").read_text())
        assert saved["config"]["finetune"]["sampler"] == sampler
    assert any(not torch.equal(weights["balanced"][k], weights["size_matched"][k]) for k in weights["balanced"])
