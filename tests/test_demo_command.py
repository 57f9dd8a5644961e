"""`prlkit demo` wiring: held-out participants are predicted and scored (toy cohort, tiny network)."""

import json

import pandas as pd
import yaml
from conftest import tiny_config, write_toy_rim_cohort

import prlkit.demo as demo
from prlkit.cli import main
from prlkit.config import config_from_dict

TINY = tiny_config(finetune={"max_epochs": 2})


def test_demo_trains_predicts_and_scores_held_out_participants(tmp_path, monkeypatch, capsys):
    out = tmp_path / "demo"
    write_toy_rim_cohort(out / "data", n_participants=8)  # present data is reused, not simulated again
    monkeypatch.setattr(demo, "demo_config", lambda: config_from_dict(TINY))
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Held-out participants: 2" in printed and "roc_auc" in printed
    subjects = pd.read_csv(out / "predictions/derivatives/prlkit/subjects.tsv", sep="\t")
    assert len(subjects) == 2
    meta = json.loads((out / "model" / "model.json").read_text())
    assert meta["training"]["participants"] == 6  # the two held-out participants were never trained on
    assert (out / "demo_results.md").is_file()
    assert yaml.safe_load((out / "model" / "config.yaml").read_text())["patches"]["size"] == 16
