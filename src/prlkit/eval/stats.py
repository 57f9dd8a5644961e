"""Statistical tests on out-of-fold predictions: DeLong, McNemar, Holm, participant-level bootstrap, Pearson CI,
subject-level counts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from prlkit.errors import PrlkitError
from prlkit.eval.metrics import check_labels, check_scores, decision_metrics


@dataclass(frozen=True)
class DeLongResult:
    """DeLong's test of AUC(a) − AUC(b) for two correlated ROC curves on the same lesions."""

    auc_a: float
    auc_b: float
    difference: float
    se: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float


def delong_test(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray,
                confidence: float = 0.95) -> DeLongResult:
    """DeLong, DeLong & Clarke-Pearson (1988) test, fast midrank algorithm of Sun & Xu (2014).

    Used by RimNet §2.7 and the main paper §3.2 on out-of-fold predictions. The structural
    components come from midranks (`scipy.stats.rankdata`), so the cost is O(n log n). Two-sided
    p from the normal distribution; the CI is difference ± z_(1+c)/2 · SE. When SE is 0 (e.g.
    identical scores) z is 0 and p is 1 if the AUCs are equal.
    """
    y, a = check_scores(y_true, score_a, what="DeLong test (scores a)")
    _, b = check_scores(y_true, score_b, what="DeLong test (scores b)")
    order = np.argsort(-y, kind="stable")  # positives first
    m = int(y.sum())
    n = y.size - m
    if min(m, n) < 2:
        raise PrlkitError(f"DeLong test: needs at least 2 Rim+ and 2 Rim- lesions, got {m} and {n}")
    scores = np.vstack([a, b])[:, order]
    rank_pos = stats.rankdata(scores[:, :m], axis=1)
    rank_neg = stats.rankdata(scores[:, m:], axis=1)
    rank_all = stats.rankdata(scores, axis=1)
    aucs = (rank_all[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v_pos = (rank_all[:, :m] - rank_pos) / n  # per Rim+ lesion: share of Rim- lesions ranked below
    v_neg = 1.0 - (rank_all[:, m:] - rank_neg) / m  # per Rim- lesion: share of Rim+ lesions ranked above
    cov = np.cov(v_pos) / m + np.cov(v_neg) / n
    diff = float(aucs[0] - aucs[1])
    se = float(np.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0)))
    if se > 0:
        z = diff / se
    elif diff == 0:
        z = 0.0
    else:
        z = float(np.copysign(np.inf, diff))
    half = stats.norm.ppf(0.5 + confidence / 2) * se
    return DeLongResult(float(aucs[0]), float(aucs[1]), diff, se, z, float(2 * stats.norm.sf(abs(z))),
                        diff - half, diff + half)


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired decisions: `b` lesions only method a gets right, `c` only method b."""

    b: int
    c: int
    statistic: float
    p_value: float


def mcnemar_test(y_true: np.ndarray, decision_a: np.ndarray, decision_b: np.ndarray) -> McNemarResult:
    """McNemar's chi-square test with continuity correction on paired binary decisions (RimNet §2.7).

    Compares correctness against `y_true`: statistic (|b − c| − 1)² / (b + c), chi-square with
    1 df. As in R's `mcnemar.test`, no correction is applied when b = c (statistic 0, p = 1);
    with no discordant pairs (b + c = 0) the result is statistic 0, p = 1. To compare
    sensitivities or specificities pass only the Rim+ or only the Rim- lesions.
    """
    y = check_labels(y_true, both_classes=False, what="McNemar test")
    da = check_labels(decision_a, both_classes=False, what="McNemar test (decisions a)")
    db = check_labels(decision_b, both_classes=False, what="McNemar test (decisions b)")
    if not (da.shape == db.shape == y.shape):
        raise PrlkitError(f"McNemar test: {y.size} labels but decisions of sizes {da.size} and {db.size}")
    right_a, right_b = da == y, db == y
    b, c = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    statistic = (abs(b - c) - 1) ** 2 / (b + c) if b != c else 0.0
    return McNemarResult(b, c, float(statistic), float(stats.chi2.sf(statistic, 1)))


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values for a family of tests (the same as statsmodels'
    `multipletests(method="holm")`): the i-th smallest p times (m − i + 1), made monotone, at most 1."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise PrlkitError(f"Holm adjustment: p-values must be a 1-D array in [0, 1], got {p}")
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * (p.size - np.arange(p.size))))
    adjusted = np.empty_like(p)
    adjusted[order] = stepped
    return adjusted


@dataclass(frozen=True)
class ClusterBootstrap:
    """Pooled ROC-AUC and PR-AUC of k score columns on participant-level bootstrap resamples.

    `roc_auc` and `pr_auc` have one row per kept resample and one column per score column;
    `n_skipped` resamples lacked Rim+ or Rim- lesions and were skipped (not redrawn).
    """

    roc_auc: np.ndarray
    pr_auc: np.ndarray
    n_resamples: int
    n_skipped: int
    seed: int


def draw_participants(n_participants: int, n_resamples: int, seed: int) -> np.ndarray:
    """The participant indices of every resample: one (n_resamples × n_participants) draw with replacement."""
    return np.random.default_rng(seed).integers(0, n_participants, size=(n_resamples, n_participants))


def cluster_bootstrap(y_true: np.ndarray, scores: np.ndarray, groups: np.ndarray, n_resamples: int = 2000,
                      seed: int = 0) -> ClusterBootstrap:
    """Participant-level (cluster) bootstrap of pooled ROC-AUC and PR-AUC (average precision).

    Lesions are nested in participants, so a resample draws participants with replacement
    (`draw_participants`) and takes every lesion of each draw as often as its participant was
    drawn. A resample whose lesions are all of one class has undefined AUCs: it is skipped (not
    redrawn) and counted in `n_skipped`. Each resample's AUCs equal scikit-learn's on the
    resampled lesions, computed for all resamples at once from per-participant counts (`_aucs`).
    """
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[:, None] if scores.ndim == 1 else scores
    y, _ = check_scores(y_true, scores[:, 0], what="cluster bootstrap")
    for column in scores.T[1:]:
        check_scores(y, column, what="cluster bootstrap")
    if n_resamples < 1:
        raise PrlkitError(f"cluster bootstrap: needs at least one resample, got {n_resamples}")
    names, member = np.unique(np.asarray(groups), return_inverse=True)
    if member.size != y.size:
        raise PrlkitError(f"cluster bootstrap: {y.size} labels but {member.size} participant ids")
    draws = draw_participants(names.size, n_resamples, seed)
    times = np.zeros((n_resamples, names.size))
    np.add.at(times, (np.arange(n_resamples)[:, None], draws), 1.0)  # how often each participant was drawn
    n_pos = times @ np.bincount(member[y == 1], minlength=names.size)
    n_neg = times @ np.bincount(member[y == 0], minlength=names.size)
    kept = (n_pos > 0) & (n_neg > 0)
    times, n_pos, n_neg = times[kept], n_pos[kept], n_neg[kept]
    aucs = [_aucs(times, member, y, column, n_pos, n_neg) for column in scores.T]
    return ClusterBootstrap(np.column_stack([roc for roc, _ in aucs]), np.column_stack([ap for _, ap in aucs]),
                            n_resamples, int(np.sum(~kept)), seed)


def _aucs(times: np.ndarray, member: np.ndarray, y: np.ndarray, score: np.ndarray, n_pos: np.ndarray,
          n_neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC-AUC and average precision of every resample (rows of `times`: how often each participant is drawn).

    Both are sums over the Rim+ lesions i, each weighted by its draws: ROC-AUC of the Rim- lesions scored
    below s_i (ties one half) / (n_pos n_neg); average precision of the precision at threshold s_i (Rim+
    lesions / all lesions scored >= s_i) / n_pos. Every count is linear in the draws, hence one matrix
    product per count: resamples x participants times participants x Rim+ lesions.
    """
    positive = y == 1
    above = score[:, None] >= score[positive][None, :]  # lesion j at or above the threshold of Rim+ lesion i
    below = ~above + 0.5 * (score[:, None] == score[positive][None, :])  # Rim- j scored below Rim+ i (ties 1/2)

    def per_participant(lesions: np.ndarray, counts: np.ndarray) -> np.ndarray:
        out = np.zeros((times.shape[1], counts.shape[1]))
        np.add.at(out, member[lesions], counts[lesions])
        return out

    weight = times[:, member[positive]]  # how often each Rim+ lesion is in the resample
    neg_below = times @ per_participant(~positive, below)
    called, true = times @ per_participant(np.full(y.size, True), above), times @ per_participant(positive, above)
    roc = np.sum(weight * neg_below, axis=1) / (n_pos * n_neg)
    precision = np.divide(true, called, out=np.zeros_like(true), where=called > 0)
    return roc, np.sum(weight * precision, axis=1) / n_pos


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval: the (1 − c)/2 and (1 + c)/2 quantiles (NaN without samples)."""
    if samples.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(samples, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class PearsonResult:
    """Pearson's r with a Fisher-z confidence interval."""

    r: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def pearson_ci(x: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> PearsonResult:
    """Pearson's r, two-sided p and CI tanh(atanh r ± z/√(n−3)) (QSMRim-Net §3.2 reports r with 95 % CI).

    Needs n >= 4. If either variable is constant (e.g. no participant has a predicted Rim+
    lesion) r is undefined and every field except n is NaN.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise PrlkitError(f"Pearson correlation: inputs of shapes {x.shape} and {y.shape} must be equal 1-D")
    if x.size < 4:
        raise PrlkitError(f"Pearson correlation: needs at least 4 pairs for a Fisher-z CI, got {x.size}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return PearsonResult(np.nan, np.nan, np.nan, np.nan, x.size)
    r, p = stats.pearsonr(x, y)
    with np.errstate(divide="ignore"):  # |r| = 1: z is infinite and the interval collapses onto r
        z = np.arctanh(r)
    half = stats.norm.ppf(0.5 + confidence / 2) / np.sqrt(x.size - 3)
    return PearsonResult(float(r), float(np.tanh(z - half)), float(np.tanh(z + half)), float(p), x.size)


def subject_counts(lesions: pd.DataFrame, participants: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-participant expert and predicted Rim+ counts from a per-lesion table (QSMRim-Net §2.5).

    `lesions` has columns `participant_id`, `label` (0/1 expert), `probability`, `decision` (0/1
    at the chosen threshold). Returns `participant_id, n_lesions, expert_count, predicted_count,
    expected_count` (sum of probabilities; meaningful once probabilities are calibrated).
    Participants listed in `participants` without lesions get zero counts.
    """
    missing = {"participant_id", "label", "probability", "decision"} - set(lesions.columns)
    if missing:
        raise PrlkitError(f"subject counts: lesion table lacks columns {sorted(missing)}")
    check_scores(lesions["label"].to_numpy(), lesions["probability"].to_numpy(), both_classes=False,
                 what="subject counts")
    check_labels(lesions["decision"].to_numpy(), both_classes=False, what="subject counts (decisions)")
    counts = (lesions.assign(n_lesions=1)
              .groupby("participant_id", sort=True)
              .agg(n_lesions=("n_lesions", "sum"), expert_count=("label", "sum"),
                   predicted_count=("decision", "sum"), expected_count=("probability", "sum")))
    if participants is not None:
        unknown = sorted(set(counts.index) - set(participants))
        if unknown:
            raise PrlkitError(f"subject counts: lesions of participants not in the cohort: {unknown[:5]}")
        counts = counts.reindex(sorted(participants), fill_value=0)
    counts.index.name = "participant_id"
    return counts.astype({"n_lesions": int, "expert_count": int, "predicted_count": int}).reset_index()


def subject_level_summary(counts: pd.DataFrame, chronic_active_min: int = 4) -> dict[str, float]:
    """Subject-level agreement of predicted vs expert Rim+ counts and patient-level classification.

    Pearson r (95 % CI, Fisher z) and MSE of `predicted_count` and of `expected_count` against
    `expert_count` (QSMRim-Net §2.5); patients are "chronic active" with >= `chronic_active_min`
    Rim+ lesions (RimNet §2.7, default 4) and the expert vs predicted patient calls are scored
    with `decision_metrics` (keys prefixed `patient_`).
    """
    expert = counts["expert_count"].to_numpy(dtype=np.float64)
    out: dict[str, float] = {"n_participants": int(expert.size)}
    for column, prefix in (("predicted_count", "count"), ("expected_count", "expected")):
        value = counts[column].to_numpy(dtype=np.float64)
        pr = pearson_ci(value, expert)
        out.update({f"{prefix}_pearson_r": pr.r, f"{prefix}_pearson_ci_low": pr.ci_low,
                    f"{prefix}_pearson_ci_high": pr.ci_high, f"{prefix}_pearson_p": pr.p_value,
                    f"{prefix}_mse": float(np.mean((value - expert) ** 2))})
    patient = decision_metrics((expert >= chronic_active_min).astype(int),
                               (counts["predicted_count"].to_numpy() >= chronic_active_min).astype(int))
    out.update({f"patient_{k}": v for k, v in patient.items()})
    return out
