"""Confluent vs isolated lesions: detection of touching lesions, and per-subset metrics of cv predictions."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from prlkit.eval.subsets import confluent_lesions, metrics_by_confluence
from prlkit.synth.cohort import generate_subject
from prlkit.synth.profiles import get_profile


def test_touching_lesions_are_confluent_by_the_chosen_connectivity():
    instances = np.zeros((12, 12, 12), np.int32)
    instances[1:3, 1:3, 1:3] = 1
    instances[3:5, 3:5, 3:5] = 2  # touches 1 at a corner only
    instances[5:7, 3:5, 3:5] = 4  # shares a face with 2
    instances[9:11, 9:11, 9:11] = 3  # isolated
    assert confluent_lesions(instances).tolist() == [1, 2, 4]
    assert confluent_lesions(instances, connectivity=6).tolist() == [2, 4]
    assert confluent_lesions(np.zeros((3, 3, 3), int)).size == 0


def test_agrees_with_the_generators_truth_table():
    subject = generate_subject(3, 0, 8, get_profile("tiny"))  # this seed draws a confluent pair
    expected = subject.truth.loc[subject.truth["confluent"] == 1, "index"].tolist()
    assert expected and confluent_lesions(subject.labels.astype(np.int32)).tolist() == expected


def test_subset_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    n = 40
    lesions = pd.DataFrame({"participant_id": np.repeat(["sub-1", "sub-2"], n // 2), "session_id": "",
                            "index": np.tile(np.arange(1, n // 2 + 1), 2)})
    confluence = lesions.assign(confluent=rng.random(n) < 0.4)
    label = (rng.random(n) < 0.3).astype(int)
    label[:4] = [1, 0, 1, 0]
    oof = pd.concat([lesions.assign(method=m, label=label, probability=np.clip(label * 0.3 + rng.random(n), 0, 1))
                     for m in ("frodo", "prlseg")], ignore_index=True)
    oof["decision"] = (oof["probability"] >= 0.6).astype(int)
    table = metrics_by_confluence(oof, confluence).set_index(["method", "subset"])
    assert set(table.index) == {(m, s) for m in ("frodo", "prlseg") for s in ("confluent", "isolated")}
    merged = oof.merge(confluence, on=["participant_id", "session_id", "index"])
    for (method, confluent), group in merged.groupby(["method", "confluent"]):
        row = table.loc[(method, "confluent" if confluent else "isolated")]
        assert row["n_lesions"] == len(group) and row["n_rim"] == group["label"].sum()
        assert row["roc_auc"] == pytest.approx(roc_auc_score(group["label"], group["probability"]))
        assert row["pr_auc"] == pytest.approx(average_precision_score(group["label"], group["probability"]))
        assert row["f1"] == pytest.approx(f1_score(group["label"], group["decision"]))
    with pytest.raises(Exception, match="lacks lesions"):
        metrics_by_confluence(oof, confluence.iloc[1:])
