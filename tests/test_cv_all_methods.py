"""`prlkit cv --methods all --profile quick` on a small cohort: every registered method runs on the same
folds and the comparison table carries the reviewer's columns (profile, switches, bootstrap CIs, Holm)."""

from __future__ import annotations

import json

import pytest
import yaml

from prlkit.cli import main
from prlkit.methods.registry import METHODS
from prlkit.train.checkpoint import RESUME_FILES

from conftest import tiny_config, write_toy_rim_cohort

TINY_ALL = tiny_config(
    finetune={"max_epochs": 1}, split={"n_folds": 2},
    segment={"patch_size": 16, "channels": [4, 8], "strides": [2], "rounds_per_epoch": 1, "train": {"max_epochs": 1}},
    methods={name: {"finetune": {"max_epochs": 1, "patience": 1}}
             for name in ("frodo_ensemble", "frodo_simpretrained")},
)


@pytest.mark.slow
def test_every_method_in_one_table_with_participant_statistics(tmp_path):
    dataset = write_toy_rim_cohort(tmp_path / "bids", n_participants=8)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TINY_ALL))
    out = tmp_path / "cv"
    assert main(["cv", str(dataset), "--out", str(out), "--methods", "all", "--config", str(tmp_path / "c.yaml"),
                 "--bootstrap", "200", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    markdown = (out / "results.md").read_text()
    for method in METHODS:
        assert f"| {method}" in markdown, method
    assert "Holm" in markdown and "bootstrap" in markdown.lower()
    assert "threshold chosen on the test predictions" in markdown
    assert "| qsmrimnet [" in markdown  # its switches that differ from the paper are named in the row
    assert results["methods"] == list(METHODS)
    assert all((out / method / "fold-0" / "fingerprint.json").is_file() for method in METHODS)
    # finished folds are read back from predictions.tsv: their checkpoints (0.5 GB per ResNet-18 stage) are gone
    assert [str(p.relative_to(out)) for name in RESUME_FILES for p in out.rglob(name)] == []
    assert next(out.rglob("metrics.jsonl"), None) is not None
