"""DeLong, McNemar, Pearson CI and subject-level counts against reference implementations."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar

from prlkit.errors import PrlkitError
from prlkit.eval.stats import delong_test, mcnemar_test, pearson_ci, subject_counts, subject_level_summary


def _slow_delong(y, a, b):
    """Direct DeLong (1988): structural components from the full Rim+ × Rim- kernel matrix."""
    def components(s):
        psi = np.sign(s[y == 1][:, None] - s[y == 0][None, :]) * 0.5 + 0.5
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)
    (auc_a, v10a, v01a), (auc_b, v10b, v01b) = components(a), components(b)
    s10, s01 = np.cov(np.vstack([v10a, v10b])), np.cov(np.vstack([v01a, v01b]))
    var = ((s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / v10a.size
           + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / v01a.size)
    return auc_a, auc_b, np.sqrt(var)


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True)])
def test_delong_matches_sklearn_and_slow_reference(seed, ties):
    rng = np.random.default_rng(seed)
    y = (rng.random(150) < 0.2).astype(int)
    a = rng.normal(size=150) + 1.2 * y
    b = a + rng.normal(scale=1.0, size=150) - 0.5 * y
    if ties:
        a, b = np.round(a), np.round(b)
    res = delong_test(y, a, b)
    auc_a, auc_b, se = _slow_delong(y, a, b)
    assert res.auc_a == pytest.approx(roc_auc_score(y, a)) == pytest.approx(auc_a)
    assert res.auc_b == pytest.approx(roc_auc_score(y, b)) == pytest.approx(auc_b)
    assert res.se == pytest.approx(se, rel=1e-10)
    assert res.z == pytest.approx((auc_a - auc_b) / se)
    assert res.p_value == pytest.approx(2 * stats.norm.sf(abs(res.z)))
    assert res.ci_low == pytest.approx(res.difference - 1.959964 * se, abs=1e-6)
    assert res.ci_high == pytest.approx(res.difference + 1.959964 * se, abs=1e-6)


def test_delong_known_answer():
    # Rim+ a=(0.9, 0.4) b=(0.3, 0.6); Rim- a=(0.5, 0.1) b=(0.7, 0.2). AUCs 3/4 and 1/2.
    # V10a=(1, .5) V10b=(.5, .5); V01a=(.5, 1) V01b=(0, 1): var = (0.125)/2 + (0.125+0.5-2·0.25)/2 = 0.125.
    y = [1, 1, 0, 0]
    res = delong_test(y, [0.9, 0.4, 0.5, 0.1], [0.3, 0.6, 0.7, 0.2])
    assert (res.auc_a, res.auc_b, res.difference) == pytest.approx((0.75, 0.5, 0.25))
    assert res.se == pytest.approx(np.sqrt(0.125))
    assert res.z == pytest.approx(1 / np.sqrt(2))
    assert res.p_value == pytest.approx(0.4795001, abs=1e-6)


def test_delong_identical_scores_and_single_class():
    res = delong_test([0, 1, 0, 1], [0.1, 0.9, 0.3, 0.4], [0.1, 0.9, 0.3, 0.4])
    assert res.difference == 0 and res.se == 0 and res.z == 0 and res.p_value == 1.0
    with pytest.raises(PrlkitError, match="undefined"):
        delong_test([1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    with pytest.raises(PrlkitError, match="at least 2"):
        delong_test([1, 0, 0], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mcnemar_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(200) < 0.3).astype(int)
    da = np.where(rng.random(200) < 0.85, y, 1 - y)
    db = np.where(rng.random(200) < 0.75, y, 1 - y)
    res = mcnemar_test(y, da, db)
    ra, rb = da == y, db == y
    table = [[np.sum(ra & rb), np.sum(ra & ~rb)], [np.sum(~ra & rb), np.sum(~ra & ~rb)]]
    ref = mcnemar(table, exact=False, correction=True)
    assert res.b != res.c
    assert res.statistic == pytest.approx(ref.statistic) and res.p_value == pytest.approx(ref.pvalue)


def test_mcnemar_no_difference_gives_p_one():
    y = np.array([1, 1, 0, 0])
    assert mcnemar_test(y, [1, 0, 0, 0], [0, 1, 0, 0]).p_value == 1.0  # b = c = 1
    assert mcnemar_test(y, y, y).p_value == 1.0  # no discordant pairs
    with pytest.raises(PrlkitError, match="decisions of sizes"):
        mcnemar_test(y, y, y[:3])


@pytest.mark.parametrize("seed", [0, 1])
def test_pearson_ci_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.poisson(2, 40).astype(float)
    y = x + rng.normal(scale=1.5, size=40)
    res = pearson_ci(x, y)
    ref = stats.pearsonr(x, y)
    ci = ref.confidence_interval(0.95)
    assert (res.r, res.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high))
    ci90 = ref.confidence_interval(0.9)
    assert pearson_ci(x, y, 0.9).ci_low == pytest.approx(ci90.low)


def test_pearson_constant_and_too_small():
    assert np.isnan(pearson_ci([0, 0, 0, 0], [1, 2, 3, 4]).r)
    with pytest.raises(PrlkitError, match="at least 4"):
        pearson_ci([1, 2, 3], [1, 2, 4])


def _lesion_table():
    rows = []
    # (participant, expert labels, decisions, probabilities)
    spec = {"p1": ([1, 1, 1, 1, 0], [1, 1, 1, 1, 1]), "p2": ([1, 0, 0], [0, 1, 0]),
            "p3": ([0, 0], [0, 0]), "p4": ([1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]),
            "p5": ([1, 0], [1, 0])}
    for pid, (labels, decisions) in spec.items():
        for label, decision in zip(labels, decisions):
            rows.append({"participant_id": pid, "label": label, "decision": decision,
                         "probability": 0.8 if decision else 0.1})
    return pd.DataFrame(rows)


def test_subject_counts_and_summary():
    counts = subject_counts(_lesion_table(), participants=["p1", "p2", "p3", "p4", "p5", "p6"])
    assert counts["participant_id"].tolist() == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert counts["expert_count"].tolist() == [4, 1, 0, 5, 1, 0]
    assert counts["predicted_count"].tolist() == [5, 1, 0, 3, 1, 0]
    assert counts["n_lesions"].tolist() == [5, 3, 2, 6, 2, 0]
    assert counts["expected_count"].tolist() == pytest.approx([4.0, 1.0, 0.2, 2.7, 0.9, 0.0])
    summary = subject_level_summary(counts)
    expert, predicted = np.array([4, 1, 0, 5, 1, 0]), np.array([5, 1, 0, 3, 1, 0])
    assert summary["count_pearson_r"] == pytest.approx(stats.pearsonr(predicted, expert).statistic)
    assert summary["count_mse"] == pytest.approx(np.mean((predicted - expert) ** 2))
    assert summary["expected_mse"] == pytest.approx(np.mean((counts["expected_count"] - expert) ** 2))
    # Chronic active (>= 4): expert p1, p4; predicted p1 only.
    assert (summary["patient_tp"], summary["patient_fn"], summary["patient_fp"]) == (1, 1, 0)
    assert summary["patient_sensitivity"] == 0.5 and summary["patient_specificity"] == 1.0
    assert summary["patient_accuracy"] == pytest.approx(5 / 6)
    assert subject_level_summary(counts, chronic_active_min=3)["patient_sensitivity"] == 1.0


def test_subject_counts_bad_table():
    with pytest.raises(PrlkitError, match="lacks columns"):
        subject_counts(_lesion_table().drop(columns="decision"))
    with pytest.raises(PrlkitError, match="not in the cohort"):
        subject_counts(_lesion_table(), participants=["p1"])
    with pytest.raises(PrlkitError, match="NaN"):
        subject_counts(_lesion_table().assign(label=np.nan))
