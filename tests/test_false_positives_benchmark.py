"""benchmarks/false_positives.py on hand-made runs: percentiles averaged over runs, lesions scored by every
run only, grouped means and the top-k false positives checked against direct pandas/scikit-learn sums."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from conftest import write_predicted_lesions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import false_positives

TRUTH = pd.DataFrame({
    "participant_id": ["sub-001"] * 4 + ["sub-002"] * 4,
    "index": [1, 2, 3, 4] * 2,
    "rim": [1, 0, 0, 0, 1, 0, 0, 1],
    "confounder": ["none", "vein_hug", "none", "streak", "none", "vein_hug", "none", "none"],
    "location": ["deep", "deep", "periventricular", "deep", "juxtacortical", "deep", "deep", "deep"],
    "rim_strength_ppm": [0.1, 0, 0, 0, 0.05, 0, 0, 0.2],
    "rim_coverage": [0.9, 0, 0, 0, 0.4, 0, 0, 0.6],
    "rim_thickness": [1, 0, 0, 0, 2, 0, 0, 1],
    "volume_voxels": [150, 300, 120, 800, 400, 200, 260, 900],
    "core_delta_ppm": [0.01, -0.02, 0.03, 0.0, 0.01, -0.01, 0.02, 0.0],
})
# per run: sub-001 lesions 1-4, sub-002 lesions 1-4; NaN = excluded by prlkit predict
RUNS = {"run-a": [0.9, 0.8, 0.1, 0.3, 0.6, 0.7, 0.2, 0.95],
        "run-b": [0.7, 0.9, 0.2, 0.4, 0.5, 0.6, np.nan, 0.8]}


@pytest.fixture
def runs(tmp_path):
    cohort = tmp_path / "test-cohort"
    (cohort / "sourcedata").mkdir(parents=True)
    TRUTH.to_csv(cohort / "sourcedata" / "truth.tsv", sep="\t", index=False)
    folders = []
    for run, scores in RUNS.items():
        base = tmp_path / run / "aprl" / "pred-test-cohort" / "derivatives" / "prlkit"
        for participant, chunk in (("sub-001", scores[:4]), ("sub-002", scores[4:])):
            write_predicted_lesions(base / participant / "anat" / f"{participant}_lesions.tsv",
                                    [dict(index=i, probability=p, excluded="" if p == p else "too_small")
                                     for i, p in enumerate(chunk, start=1)])
        folders.append(tmp_path / run)
    return cohort, folders


def test_scores_are_percentiles_averaged_over_runs_on_lesions_every_run_scored(runs):
    cohort, folders = runs
    frame, n_runs = false_positives.scored_lesions(cohort, folders, ["aprl"])
    assert n_runs == {"aprl": 2} and len(frame) == 7  # sub-002 lesion 3 was excluded in run-b
    assert not ((frame["participant_id"] == "sub-002") & (frame["index"] == 3)).any()
    run_a = pd.Series(RUNS["run-a"]).rank(pct=True).drop(6)  # ranked among the 8 it scored
    run_b = pd.Series(RUNS["run-b"]).rank(pct=True).dropna()  # among its 7
    np.testing.assert_allclose(frame["aprl"], (run_a.to_numpy() + run_b.to_numpy()) / 2)
    rim_negative = frame[frame["rim"] == 0]
    by_confounder = false_positives.grouped_means(rim_negative, ["aprl"], "confounder")
    assert by_confounder.loc["vein_hug", "lesions"] == 2
    assert by_confounder.loc["vein_hug", "aprl"] == pytest.approx(rim_negative.loc[
        rim_negative["confounder"] == "vein_hug", "aprl"].mean())
    by_volume = false_positives.grouped_means(frame[frame["rim"] == 1], ["aprl"], "volume_voxels")
    assert by_volume["lesions"].tolist() == [1, 1, 1]  # tertiles of the three Rim+ volumes
    # top k = 3 Rim+: sub-002/4 (Rim+), sub-001/2 (vein_hug, Rim-) and sub-001/1 (Rim+)
    assert false_positives.top_false_positives(frame, "aprl").to_dict() == {"vein_hug": 1}
    trends = false_positives.rim_negative_trends(frame, ["aprl"])
    for column in ("core_delta_ppm", "volume_voxels"):
        assert trends.loc["aprl", column] == pytest.approx(spearmanr(rim_negative["aprl"], rim_negative[column])[0])
    text = false_positives.markdown(frame, ["aprl"], n_runs)
    assert f"ROC-AUC {roc_auc_score(frame['rim'], frame['aprl']):.3f}" in text
    assert "| confounder | aprl | lesions |" in text and "Rim+ by rim_thickness" in text


def test_a_method_without_predictions_is_one_clear_error(runs):
    cohort, folders = runs
    with pytest.raises(SystemExit, match="frodo: no predictions of test-cohort under any of"):
        false_positives.main(["--cohort", str(cohort), "--runs", *map(str, folders), "--methods", "aprl,frodo"])
