"""benchmarks/data_size_curve.py's own code, no training: nested participant subsets written as
manifests prlkit reads back, and the mean ± SD table over seeds from transfer.py's JSON files."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import write_subject

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import data_size_curve
from prlkit.data.bids import discover_cohort


def test_subsets_are_nested_manifests_prlkit_reads(tmp_path):
    cohort = tmp_path / "cohort"
    for n in range(1, 7):
        write_subject(cohort, f"sub-{n:02d}", seed=n)
    chosen = []
    for size in (2, 4, 6):
        manifest = data_size_curve.subset_manifest(cohort, size, seed=3, out=tmp_path / f"n{size}.csv")
        sessions = discover_cohort(manifest).sessions
        assert len(sessions) == size and all(s.rim_table is not None and s.flair is not None for s in sessions)
        chosen.append({s.participant_id for s in sessions})
    assert chosen[0] < chosen[1] < chosen[2]
    with pytest.raises(ValueError, match="6 participants, 7 asked for"):
        data_size_curve.subset_manifest(cohort, 7, seed=3, out=tmp_path / "n7.csv")


def _run(root: Path, name: str, tests: dict, method: str = "aprl") -> None:
    folder = root / "runs" / name / method
    folder.mkdir(parents=True)
    (folder / "transfer.json").write_text(json.dumps({"tests": tests}))


def test_summary_is_mean_and_sd_over_seeds(tmp_path):
    def scores(roc, pr):
        return {"roc_auc": roc, "pr_auc": pr, "spearman_volume_rim_neg": 0.1}

    _run(tmp_path, "default-1-n15", {"default-1-test": {"path": "x", "aprl": scores(0.8, 0.4)},
                                      "noisy-1-test": {"path": "y", "aprl": scores(0.7, 0.3)}})
    _run(tmp_path, "default-2-n15", {"default-2-test": {"path": "x", "aprl": scores(0.6, 0.2),
                                                        "frodo": {"roc_auc": None, "pr_auc": None}}})
    free = {"roc_auc": 0.5, "pr_auc": 0.1, "spearman_volume_rim_neg": 0.0}
    for method in ("aprl", "frodo"):  # each method's own run also scores the training-free contrast
        _run(tmp_path, "default-3-n15", {"default-3-test": {"path": "x", method: scores(0.9, 0.5),
                                                            "shell_minus_core": free}}, method)
    rows = data_size_curve.collect(tmp_path)
    assert len(rows[rows["seed"] == 3]) == 3  # aprl, frodo and the contrast once
    rows = rows[rows["seed"] != 3]
    assert len(rows) == 3 and set(rows["test"]) == {"default", "noisy"}
    table = data_size_curve.summary_table(rows)
    line = next(row for row in table.splitlines() if "default → default" in row)
    expected = pd.Series([0.8, 0.6])
    assert f"{expected.mean():.2f} ± {expected.std():.2f}" in line and "| 2 |" in line
    assert "| default → noisy | aprl | 15 | 1 | 0.70 | 0.30 |" in table  # one seed: no SD to show
