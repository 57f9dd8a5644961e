"""DeLong, McNemar, Pearson CI and subject-level counts against reference implementations."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from prlkit.errors import PrlkitError
from prlkit.eval.stats import (
    cluster_bootstrap,
    delong_test,
    draw_participants,
    holm_adjust,
    mcnemar_test,
    pearson_ci,
    percentile_interval,
    subject_counts,
    subject_level_summary,
)


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


def _clustered_sample(seed: int, n_participants: int = 12):
    """Lesions nested in participants (1-6 each), labels at ~30 %, two tied score columns."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"sub-{i:02d}" for i in range(n_participants)], rng.integers(1, 7, n_participants))
    y = (rng.random(groups.size) < 0.3).astype(int)
    return y, np.round(rng.normal(size=(groups.size, 2)) + y[:, None], 1), groups


def test_cluster_bootstrap_equals_a_direct_loop_over_resampled_participants():
    y, scores, groups = _clustered_sample(0)
    result = cluster_bootstrap(y, scores, groups, n_resamples=200, seed=3)
    names = np.unique(groups)
    roc, pr, skipped = [], [], 0
    for draw in draw_participants(names.size, 200, seed=3):  # the same draws, lesions concatenated
        rows = np.concatenate([np.flatnonzero(groups == names[g]) for g in draw])
        if np.unique(y[rows]).size < 2:
            skipped += 1
            continue
        roc.append([roc_auc_score(y[rows], scores[rows, j]) for j in range(2)])
        pr.append([average_precision_score(y[rows], scores[rows, j]) for j in range(2)])
    assert result.n_skipped == skipped and result.roc_auc.shape == (200 - skipped, 2)
    np.testing.assert_allclose(result.roc_auc, roc, atol=1e-12)
    np.testing.assert_allclose(result.pr_auc, pr, atol=1e-12)
    again = cluster_bootstrap(y, scores, groups, n_resamples=200, seed=3)
    np.testing.assert_array_equal(again.roc_auc, result.roc_auc)


def test_cluster_bootstrap_skips_and_counts_resamples_without_both_classes():
    groups = np.repeat(["a", "b", "c", "d"], 3)
    y = np.array([1, 0, 0] + [0] * 9)  # only participant a has a Rim+ lesion
    result = cluster_bootstrap(y, np.linspace(0, 1, 12), groups, n_resamples=100, seed=0)
    without_a = int(np.sum(~(draw_participants(4, 100, 0) == 0).any(axis=1)))
    assert result.n_skipped == without_a > 0 and len(result.roc_auc) == 100 - without_a


def test_duplicated_lesions_shrink_the_delong_interval_but_not_the_participant_bootstrap():
    """k perfectly correlated copies of each lesion add no information: lesion-level DeLong is fooled,
    resampling participants is not."""
    y, scores, groups = _clustered_sample(1, n_participants=30)
    k = 4
    y_k, scores_k, groups_k = np.repeat(y, k), np.repeat(scores, k, axis=0), np.repeat(groups, k)
    delong, delong_k = delong_test(y, scores[:, 0], scores[:, 1]), delong_test(y_k, scores_k[:, 0], scores_k[:, 1])
    assert delong_k.ci_high - delong_k.ci_low < 0.6 * (delong.ci_high - delong.ci_low)
    boot, boot_k = (cluster_bootstrap(a, b, c, n_resamples=500, seed=0) for a, b, c in
                    ((y, scores, groups), (y_k, scores_k, groups_k)))
    for samples, samples_k in ((boot.roc_auc, boot_k.roc_auc), (boot.pr_auc, boot_k.pr_auc),
                               (boot.roc_auc[:, 0] - boot.roc_auc[:, 1], boot_k.roc_auc[:, 0] - boot_k.roc_auc[:, 1])):
        low, high = percentile_interval(samples)
        low_k, high_k = percentile_interval(samples_k)
        assert (low_k, high_k) == pytest.approx((low, high), abs=1e-12) and high > low
    lesion_level = cluster_bootstrap(y_k, scores_k, np.arange(y_k.size), n_resamples=500, seed=0)
    diff = lesion_level.roc_auc[:, 0] - lesion_level.roc_auc[:, 1]
    clustered = boot_k.roc_auc[:, 0] - boot_k.roc_auc[:, 1]
    assert np.ptp(percentile_interval(diff)) < 0.6 * np.ptp(percentile_interval(clustered))


def test_percentile_interval_matches_numpy_quantiles():
    samples = np.random.default_rng(0).normal(size=1000)
    assert percentile_interval(samples) == pytest.approx(tuple(np.quantile(samples, [0.025, 0.975])))
    assert np.isnan(percentile_interval(np.array([]))).all()


@pytest.mark.parametrize("p", [[0.01, 0.04, 0.03, 0.2], [0.5], [0.02, 0.02, 0.9, 0.001, 0.04], [0.3, 0.6, 0.9]])
def test_holm_matches_statsmodels(p):
    np.testing.assert_allclose(holm_adjust(p), multipletests(p, method="holm")[1], atol=1e-15)
    with pytest.raises(PrlkitError, match="Holm"):
        holm_adjust([0.1, 1.5])


def test_pearson_ci_of_a_perfect_correlation_collapses_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = pearson_ci(np.arange(6.0), 2 * np.arange(6.0) + 1)
    assert (result.r, result.ci_low, result.ci_high) == pytest.approx((1.0, 1.0, 1.0))
