"""Lesion-level metrics against scikit-learn and hand-checked cases."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from prlkit.errors import PrlkitError
from prlkit.eval.metrics import (
    DEFAULT_THRESHOLD_GRID,
    decision_metrics,
    lesion_metrics,
    mcclish_standardize,
    mean_pr_curve,
    mean_roc_curve,
    operating_point_at_sensitivity,
    operating_point_at_specificity,
    partial_roc_auc,
    pr_auc,
    roc_auc,
    select_threshold_f1,
    summarize_folds,
    threshold_metrics,
)


def _sample(seed: int, n: int = 300, prevalence: float = 0.1, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    y[:2] = [0, 1]
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y)))
    return y, (np.round(s, 1) if ties else s)


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, False)])
def test_aucs_match_sklearn(seed, ties):
    y, s = _sample(seed, ties=ties)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert pr_auc(y, s) == pytest.approx(average_precision_score(y, s))
    for max_fpr in (0.05, 0.1, 0.5):
        part = partial_roc_auc(y, s, max_fpr)
        assert part.standardized == pytest.approx(roc_auc_score(y, s, max_fpr=max_fpr), abs=1e-12)
        assert 0 <= part.raw <= max_fpr
    assert partial_roc_auc(y, s, 1.0).raw == pytest.approx(roc_auc_score(y, s))


def test_partial_auc_known_values():
    perfect = partial_roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 0.1)
    assert perfect.raw == pytest.approx(0.1) and perfect.standardized == pytest.approx(1.0)
    # Ranked upside down: TPR is 0 up to FPR 1, so the raw partial area is 0;
    # McClish then gives 0.5 · (1 − A_min / (A_max − A_min)).
    worst = partial_roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], 0.1)
    assert worst.raw == 0.0
    assert worst.standardized == pytest.approx(0.5 * (1 - 0.005 / 0.095))


@pytest.mark.parametrize("fn", [roc_auc, pr_auc, partial_roc_auc, select_threshold_f1,
                                operating_point_at_specificity, operating_point_at_sensitivity])
def test_single_class_raises(fn):
    with pytest.raises(PrlkitError, match="undefined"):
        fn(np.zeros(5, int), np.linspace(0, 1, 5))


def test_bad_inputs_raise():
    with pytest.raises(PrlkitError, match="0 or 1"):
        roc_auc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(PrlkitError, match="NaN"):
        roc_auc([0, 1, 1], [0.1, np.nan, 0.3])
    with pytest.raises(PrlkitError, match="3 labels"):
        roc_auc([0, 1, 1], [0.1, 0.3])


def test_select_threshold_f1_brute_force_and_ties():
    y, s = _sample(3, n=200, prevalence=0.2)
    t = select_threshold_f1(y, s)
    f1s = np.array([f1_score(y, s >= g, zero_division=0.0) for g in DEFAULT_THRESHOLD_GRID])
    assert f1_score(y, s >= t) == pytest.approx(f1s.max())
    assert t == DEFAULT_THRESHOLD_GRID[np.argmax(f1s)]  # smallest threshold among ties
    # Every threshold in (0.3, 0.7] gives F1 = 1; the smallest grid value is chosen.
    assert select_threshold_f1([0, 0, 1, 1], [0.1, 0.3, 0.7, 0.9], grid=[0.5, 0.4, 0.6, 0.2]) == 0.4


@pytest.mark.parametrize("seed", [0, 4])
def test_threshold_metrics_match_sklearn(seed):
    y, s = _sample(seed, prevalence=0.3)
    m = threshold_metrics(y, s, 0.6)
    d = s >= 0.6
    tn, fp, fn, tp = confusion_matrix(y, d).ravel()
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (tp, fp, fn, tn)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, d))
    assert m["f1"] == pytest.approx(f1_score(y, d))
    assert m["sensitivity"] == pytest.approx(recall_score(y, d))
    assert m["specificity"] == pytest.approx(recall_score(1 - y, ~d))
    assert m["ppv"] == pytest.approx(precision_score(y, d))
    assert m["npv"] == pytest.approx(precision_score(1 - y, ~d))


def test_zero_denominators_are_nan():
    m = decision_metrics([0, 0, 0], [0, 0, 1])  # no Rim+ lesions
    assert np.isnan(m["sensitivity"]) and m["npv"] == 1.0
    assert m["specificity"] == pytest.approx(2 / 3) and m["f1"] == 0.0 and m["ppv"] == 0.0
    m = decision_metrics([0, 0], [0, 0])  # nothing positive anywhere
    assert np.isnan(m["f1"]) and np.isnan(m["ppv"]) and np.isnan(m["sensitivity"])
    assert m["accuracy"] == 1.0 and m["npv"] == 1.0


def test_lesion_metrics_row_collects_every_metric():
    y, s = _sample(6)
    row = lesion_metrics(y, s, 0.5)
    assert row["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert row["pr_auc"] == pytest.approx(average_precision_score(y, s))
    assert row["proc_auc"] == pytest.approx(roc_auc_score(y, s, max_fpr=0.1))
    assert row["proc_auc_raw"] == partial_roc_auc(y, s).raw
    assert row["tp"] + row["fn"] == row["n_rim"] == y.sum() and row["threshold"] == 0.5


def test_summarize_folds_mean_sd_ddof_and_nan():
    table = pd.DataFrame({"fold": [0, 1, 2], "method": "x", "roc_auc": [0.8, 0.9, 1.0],
                          "sensitivity": [0.5, np.nan, 0.7]})
    summary = summarize_folds(table.drop(columns="fold"))
    assert summary.loc["roc_auc", "mean"] == pytest.approx(0.9)
    assert summary.loc["roc_auc", "sd"] == pytest.approx(np.std([0.8, 0.9, 1.0], ddof=1))
    assert summarize_folds(table, ddof=0).loc["roc_auc", "sd"] == pytest.approx(np.std([0.8, 0.9, 1.0]))
    assert "fold" not in summarize_folds(table).index
    assert summary.loc["sensitivity", "n"] == 2 and summary.loc["sensitivity", "mean"] == pytest.approx(0.6)
    assert "method" not in summary.index


def test_mean_roc_curve_is_a_step_function():
    y = np.array([0, 0, 1, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    # ROC points: (0,0) (0,1/3) (0,2/3) (1/3,2/3) (1/3,1) (2/3,1) (1,1)
    curve = mean_roc_curve([(y, s)], n_points=7)
    assert np.allclose(curve.x, np.linspace(0, 1, 7))
    assert np.allclose(curve.mean, [2 / 3, 2 / 3, 1, 1, 1, 1, 1])
    assert curve.area() == pytest.approx(np.sum((curve.mean[1:] + curve.mean[:-1]) / 2 * np.diff(curve.x)))


def test_mean_curves_average_folds_and_integrate_to_auc():
    folds = [_sample(seed, n=400, prevalence=0.15) for seed in range(3)]
    roc = mean_roc_curve(folds, n_points=20001)
    assert roc.area() == pytest.approx(np.mean([roc_auc_score(y, s) for y, s in folds]), abs=1e-3)
    assert roc.n_folds == 3 and np.all(roc.sd >= 0)
    pr = mean_pr_curve(folds, n_points=20001)
    assert pr.area() == pytest.approx(np.mean([average_precision_score(y, s) for y, s in folds]), abs=2e-3)
    assert np.all(np.diff(roc.mean) >= 0)
    partial = mean_roc_curve(folds, max_fpr=0.1, n_points=20001)
    assert partial.x[-1] == pytest.approx(0.1)
    # Without tied scores the step curve is the ROC curve, so its area is the mean raw partial AUC.
    raw = np.mean([partial_roc_auc(y, s).raw for y, s in folds])
    assert partial.area() == pytest.approx(raw, abs=1e-4)
    assert mcclish_standardize(partial.area(), 0.1) == pytest.approx(mcclish_standardize(raw, 0.1), abs=1e-3)


def test_operating_point_at_specificity():
    y, s = _sample(5, n=500, prevalence=0.2)
    op = operating_point_at_specificity(y, s, 0.95)
    assert op["specificity"] >= 0.95
    # No threshold with specificity >= 0.95 has a higher sensitivity.
    for t in np.unique(s):
        m = threshold_metrics(y, s, t)
        if m["specificity"] >= 0.95:
            assert m["sensitivity"] <= op["sensitivity"] + 1e-12


def test_operating_point_at_sensitivity_counts_review_workload():
    y = np.array([0, 0, 0, 0, 0, 0, 1, 0, 1, 1])
    s = np.arange(10) / 10
    op = operating_point_at_sensitivity(y, s, 0.95)
    assert op["threshold"] == pytest.approx(0.6) and op["sensitivity"] == 1.0
    assert op["n_review"] == 4 and op["review_fraction"] == pytest.approx(0.4)
    assert op["specificity"] == pytest.approx(6 / 7)
    assert operating_point_at_sensitivity(y, s, 0.6)["n_review"] == 2  # 2 of 3 Rim+ found at 0.8
    with pytest.raises(PrlkitError, match="target"):
        operating_point_at_specificity(y, s, 95)
