"""benchmarks/transfer.py's own code, no training: reading and joining predicted lesion tables with
expert labels, which lesions count, the metrics, and the shell-minus-core feature's known answer."""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from conftest import write_predicted_lesions, write_subject

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import transfer
from prlkit.config import LesionConfig
from prlkit.synth.calibration import lesion_features


@pytest.fixture
def predictions(tmp_path):
    base = tmp_path / "derivatives" / "prlkit"
    write_predicted_lesions(base / "sub-01" / "anat" / "sub-01_lesions.tsv",
               [dict(index=1, probability=0.9), dict(index=2, probability=np.nan, excluded="too_small"),
                dict(index=3, probability=0.2)])
    write_predicted_lesions(base / "sub-02" / "ses-1" / "anat" / "sub-02_ses-1_lesions.tsv",
               [dict(index=1, probability=0.4), dict(index=2, probability=0.1)])
    return transfer.read_predictions(tmp_path)


def _labels(rows: list[tuple]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=["participant_id", "session_id", "index", "rim", "volume_mm3"])
    return table.assign(rim=table["rim"].astype("Int64"))


LABELS = _labels([("sub-01", "", 1, 1, 300.0), ("sub-01", "", 2, 0, 50.0), ("sub-01", "", 3, 0, 120.0),
                  ("sub-02", "ses-1", 1, pd.NA, 500.0), ("sub-02", "ses-1", 2, 0, 150.0)])


def test_read_predictions_names_participant_and_session(predictions):
    keys = list(predictions[["participant_id", "session_id", "index"]].itertuples(index=False, name=None))
    assert keys == [("sub-01", "", 1), ("sub-01", "", 2), ("sub-01", "", 3), ("sub-02", "ses-1", 1),
                    ("sub-02", "ses-1", 2)]
    assert list(predictions["excluded"]) == ["", "too_small", "", "", ""]
    assert np.isnan(predictions.loc[1, "probability"])


def test_join_keeps_labelled_included_lesions_only(predictions):
    joined = transfer.scored(transfer.join_labels(predictions, LABELS), "probability")
    # sub-01 lesion 2 is excluded (too small), sub-02 lesion 1 has no expert label
    assert sorted(zip(joined["participant_id"], joined["index"])) == [("sub-01", 1), ("sub-01", 3), ("sub-02", 2)]
    row = joined[(joined["participant_id"] == "sub-02") & (joined["index"] == 2)].iloc[0]
    assert row["probability"] == pytest.approx(0.1) and row["rim"] == 0 and row["volume_mm3"] == 150.0
    assert row["rim_pred"] == 0  # the model's own decision travels with its probability


def test_join_refuses_lesions_missing_from_either_side(predictions):
    with pytest.raises(ValueError, match=r"only in predictions.*sub-02 ses-1 lesion 2"):
        transfer.join_labels(predictions, LABELS.iloc[:4])
    extra = pd.concat([LABELS, _labels([("sub-03", "", 1, 0, 200.0)])], ignore_index=True)
    with pytest.raises(ValueError, match="only in the test cohort's labels"):
        transfer.join_labels(predictions, extra)


def test_metrics_against_hand_computed_values():
    rim = np.array([0, 0, 1, 0, 1, 0])
    score = np.array([0.1, 0.7, 0.8, 0.3, 0.6, 0.2])
    volume = np.array([100.0, 400.0, 300.0, 300.0, 200.0, 200.0])
    metrics = transfer.transfer_metrics(rim, score, volume)
    # 8 (Rim+, Rim-) pairs, 7 ranked right (0.6 < 0.7 is the miss)
    assert metrics["roc_auc"] == pytest.approx(7 / 8)
    # ranking: 0.8 (+), 0.7 (-), 0.6 (+): precision 1 at recall 1/2, 2/3 at recall 1
    assert metrics["pr_auc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert (metrics["n_lesions"], metrics["n_rim_pos"]) == (6, 2)
    # Rim- lesions: scores 0.1, 0.7, 0.3, 0.2 and volumes 100, 400, 300, 200 rank alike
    assert metrics["spearman_volume_rim_neg"] == pytest.approx(1.0)
    assert metrics["spearman_p"] == pytest.approx(spearmanr([0.1, 0.7, 0.3, 0.2], [100, 400, 300, 200]).pvalue)


def test_operating_point_against_scikit_learn():
    rim = np.array([0, 0, 1, 0, 1, 0, 1])
    decision = np.array([0, 1, 1, 0, 0, 0, 1])
    probability = np.array([0.1, 0.6, 0.8, 0.3, 0.4, 0.2, 0.9])
    point = transfer.operating_point(rim, decision, probability)
    # 2 of 3 Rim+ found, 1 of 4 Rim- called Rim+: F1 = 2 * 2 / (2 * 2 + 1 + 1)
    assert point["sensitivity"] == pytest.approx(2 / 3) and point["specificity"] == pytest.approx(3 / 4)
    assert point["f1"] == pytest.approx(4 / 6)
    assert point["brier"] == pytest.approx(np.mean((probability - rim) ** 2))
    assert transfer.operating_point(np.zeros(3), np.zeros(3), np.zeros(3))["f1"] is None


def test_metrics_without_both_classes_are_none():
    metrics = transfer.transfer_metrics(np.zeros(4, dtype=int), np.arange(4.0), np.arange(4.0))
    assert metrics["roc_auc"] is None and metrics["pr_auc"] is None
    assert metrics["spearman_volume_rim_neg"] == pytest.approx(1.0)
    assert transfer.transfer_metrics(np.array([1, 0]), np.array([0.9, 0.1]),
                                     np.ones(2))["spearman_volume_rim_neg"] is None


def test_shell_minus_core_known_answer():
    """A 5^3 cube lesion: core (inner 3^3) at -0.02 ppm, its border and the ring outside at 0.10 ppm.
    A second lesion touching the ring at 5 ppm must not count as ring."""
    labels = np.zeros((16, 16, 16), dtype=np.int32)
    labels[4:9, 4:9, 4:9] = 1
    labels[10:12, 4:9, 4:9] = 2
    labels[9, 6, 6] = 2  # lesion 2 touches lesion 1 here: a ring voxel if it were background
    qsm = np.zeros(labels.shape, dtype=np.float32)
    qsm[3:10, 3:10, 3:10] = 0.10
    qsm[5:8, 5:8, 5:8] = -0.02
    qsm[labels == 2] = 5.0
    features = lesion_features(qsm, labels).set_index("index")
    assert features.loc[1, "shell_minus_core"] == pytest.approx(0.12, abs=1e-6)
    assert features.loc[1, "voxels"] == 125


def test_a_lesion_enclosed_by_another_has_no_shell_and_no_contrast():
    """A 1-voxel-thin lesion inside a bigger one: no core of its own, no background around it (found on a
    simulated cohort, where it crashed the transfer benchmark)."""
    labels = np.zeros((12, 12, 12), dtype=np.int32)
    labels[2:9, 2:9, 2:9] = 1
    labels[5, 4:7, 4:7] = 2
    features = lesion_features(np.ones(labels.shape, dtype=np.float32), labels).set_index("index")
    assert np.isnan(features.loc[2, "shell_minus_core"]) and np.isnan(features.loc[2, "shell_p90"])
    assert features.loc[2, "voxels"] == 9 and np.isfinite(features.loc[1, "shell_minus_core"])


def test_expert_lesions_read_labels_and_feature(tmp_path):
    paths = write_subject(tmp_path, "sub-01", rims=(1, 0))
    write_subject(tmp_path, "sub-02", session="ses-1", rims=(0, 1), seed=1)
    (tmp_path / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\n")
    (tmp_path / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    lesions = transfer.expert_lesions(tmp_path, LesionConfig(min_voxels=110))
    assert list(lesions[["participant_id", "session_id", "index", "rim"]].itertuples(index=False, name=None)) == [
        ("sub-01", "", 1, 1), ("sub-01", "", 2, 0), ("sub-02", "ses-1", 1, 0), ("sub-02", "ses-1", 2, 1)]
    assert list(lesions["excluded"]) == ["", "too_small", "", "too_small"]
    qsm = np.asarray(nib.load(paths["qsm"]).dataobj)
    labels = np.asarray(nib.load(paths["lesions"]).dataobj).astype(np.int32)
    expected = lesion_features(qsm, labels)["shell_minus_core"].to_numpy()
    assert lesions["shell_minus_core"].to_numpy()[:2] == pytest.approx(expected)
    assert len(transfer.scored(lesions, "shell_minus_core")) == 2


def test_markdown_table_lists_every_row():
    rows = [{"test": "b", "method": "aprl", "roc_auc": 0.91234, "pr_auc": None, "n_lesions": 10, "n_rim_pos": 2,
             "spearman_volume_rim_neg": -0.256, "train_s": 12.5, "predict_s": 3.0},
            {"test": "b", "method": "shell_minus_core", "roc_auc": 0.8, "pr_auc": 0.5, "n_lesions": 10,
             "n_rim_pos": 2, "spearman_volume_rim_neg": None}]
    lines = transfer.markdown_table(rows).splitlines()
    assert len(lines) == 4 and lines[0].count("|") == lines[1].count("|") == lines[2].count("|")
    assert lines[2] == "| b | aprl | 0.912 | n/a | 10 (2) | -0.26 | 12.5 | 3.0 |"
    assert lines[3] == "| b | shell_minus_core | 0.800 | 0.500 | 10 (2) | n/a | - | - |"
