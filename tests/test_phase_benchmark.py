"""benchmarks/phase_vs_qsm.py's own arithmetic, no training: pooled AUCs per run and the QSM/phase table."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import phase_vs_qsm


def _oof(folder: Path, labels, scores) -> None:
    folder.mkdir(parents=True)
    pd.DataFrame({"method": "aprl", "label": labels, "probability": scores}).to_csv(
        folder / "oof_predictions.tsv", sep="\t", index=False)


def test_table_pairs_qsm_and_phase_per_seed(tmp_path):
    labels = [0, 0, 1, 1, 0, 1]
    runs = {(1, "qsm"): [0.1, 0.2, 0.9, 0.8, 0.3, 0.7], (1, "phase"): [0.5, 0.2, 0.4, 0.8, 0.3, 0.7],
            (2, "qsm"): [0.1, 0.6, 0.9, 0.5, 0.3, 0.7], (2, "phase"): [0.9, 0.2, 0.4, 0.8, 0.3, 0.1],
            (3, "qsm"): [0.1, 0.2, 0.9, 0.8, 0.3, 0.7]}  # seed 3 has no phase run yet: left out of the table
    for (seed, source), scores in runs.items():
        _oof(tmp_path / f"cv-{seed}-{source}", labels, scores)
    rows = phase_vs_qsm.collect(tmp_path)
    assert len(rows) == 5
    first = rows[(rows["seed"] == 1) & (rows["source"] == "phase")].iloc[0]
    assert first["roc_auc"] == roc_auc_score(labels, runs[1, "phase"])
    assert first["pr_auc"] == average_precision_score(labels, runs[1, "phase"])
    table = phase_vs_qsm.summary_table(rows)
    qsm = [roc_auc_score(labels, runs[s, "qsm"]) for s in (1, 2)]
    assert f"| aprl | 2 | {np.mean(qsm):.2f} ± {np.std(qsm, ddof=1):.2f} |" in table


def test_a_method_without_any_finished_phase_run_is_left_out(tmp_path):
    _oof(tmp_path / "cv-1-qsm", [0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8])
    table = phase_vs_qsm.summary_table(phase_vs_qsm.collect(tmp_path))
    assert table.count("\n") == 1 and "aprl" not in table  # the header only
