"""Calibration: prior shift, Platt and temperature scaling, Brier score, reliability data."""

import numpy as np
import pytest
from scipy import special
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from prlkit.errors import PrlkitError
from prlkit.eval.calibration import (
    PlattScaling,
    PriorShift,
    TemperatureScaling,
    brier_score,
    fit_calibrator,
    reliability_curve,
)


def _calibrated_sample(seed: int, n: int = 4000, prevalence: float = 0.08):
    """True Rim+ probabilities at a given prevalence, and labels drawn from them."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n) * 1.5 + special.logit(prevalence) - 0.5
    p = special.expit(z)
    return (rng.random(n) < p).astype(int), p


def test_prior_shift_undoes_balanced_training_prior():
    y, p_true = _calibrated_sample(0)
    prevalence = y.mean()
    # A balanced sampler multiplies the odds by (0.5/0.5) / (π/(1-π)).
    p_balanced = special.expit(special.logit(p_true) - special.logit(prevalence))
    cal = PriorShift.fit(y, p_balanced, train_prior=0.5)
    assert cal.target_prior == pytest.approx(prevalence) and cal.train_prior == 0.5
    assert np.allclose(cal.apply(p_balanced), p_true, atol=1e-6)
    assert brier_score(y, cal.apply(p_balanced)) < brier_score(y, p_balanced)
    with pytest.raises(PrlkitError, match="train_prior"):
        PriorShift.fit(y, p_balanced, train_prior=1.0)


def test_platt_matches_unpenalised_logistic_regression():
    y, p_true = _calibrated_sample(1, n=2000, prevalence=0.2)
    p_model = special.expit(2.0 * special.logit(p_true) + 1.0)  # overconfident and shifted
    cal = PlattScaling.fit(y, p_model)
    ref = LogisticRegression(C=1e10, tol=1e-10, max_iter=1000).fit(special.logit(p_model)[:, None], y)
    assert cal.a == pytest.approx(ref.coef_[0, 0], rel=1e-3)
    assert cal.b == pytest.approx(ref.intercept_[0], rel=1e-3, abs=1e-3)
    assert cal.a == pytest.approx(0.5, abs=0.1) and cal.b == pytest.approx(-0.5, abs=0.25)
    assert brier_score(y, cal.apply(p_model)) < brier_score(y, p_model)


def test_platt_never_reverses_the_ranking_of_anti_correlated_validation_scores():
    import statsmodels.api as sm

    from prlkit.data.bids import PrlkitWarning

    y, p_true = _calibrated_sample(3, n=600, prevalence=0.3)
    p_val = 1 - p_true  # validation scores fall with the labels: an unconstrained fit has slope < 0
    unconstrained = LogisticRegression(C=1e10, tol=1e-10, max_iter=1000).fit(special.logit(p_val)[:, None], y)
    assert unconstrained.coef_[0, 0] < 0
    with pytest.warns(PrlkitWarning, match="slope .* not positive"):
        cal = PlattScaling.fit(y, p_val)
    assert cal.a == 1.0
    offset_fit = sm.GLM(y, np.ones((y.size, 1)), family=sm.families.Binomial(), offset=special.logit(p_val)).fit()
    assert cal.b == pytest.approx(offset_fit.params[0], abs=1e-5)  # the intercept-only maximum likelihood
    p_test = np.linspace(0.01, 0.99, 50)
    assert np.all(np.diff(cal.apply(p_test)) > 0)  # increasing: AUCs and carried-over thresholds unchanged


def test_temperature_recovers_overconfidence():
    y, p_true = _calibrated_sample(2, n=8000, prevalence=0.3)
    p_model = special.expit(2.0 * special.logit(p_true))
    cal = TemperatureScaling.fit(y, p_model)
    assert cal.temperature == pytest.approx(2.0, rel=0.1)

    def nll(t):
        q = TemperatureScaling(t).apply(p_model)
        return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))
    assert nll(cal.temperature) <= min(nll(cal.temperature * 0.98), nll(cal.temperature * 1.02), nll(1.0))


def test_calibrators_are_deterministic_monotone_and_bounded():
    y_val, p_val = _calibrated_sample(3, n=500)
    p_test = np.array([0.0, 0.2, 0.5, 1.0])
    for method in ("prior", "platt", "temperature"):
        cal = fit_calibrator(method, y_val, p_val)
        out = cal.apply(p_test)
        assert np.all((out >= 0) & (out <= 1)) and np.all(np.diff(out) >= 0)
        assert cal == fit_calibrator(method, y_val, p_val)  # same validation data, same parameters
    assert np.allclose(PriorShift(0.5, 0.5).apply(p_test[1:3]), p_test[1:3])
    with pytest.raises(PrlkitError, match="not one of"):
        fit_calibrator("isotonic", y_val, p_val)
    with pytest.raises(PrlkitError, match=r"\[0, 1\]"):
        PlattScaling(1.0, 0.0).apply(np.array([1.5]))


def test_brier_matches_sklearn():
    y, p = _calibrated_sample(4, n=300)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p))
    assert brier_score([0, 0], [0.1, 0.3]) == pytest.approx(0.05)  # single class is fine


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_curve_matches_sklearn(strategy):
    y, p = _calibrated_sample(5, n=600)
    table = reliability_curve(y, p, n_bins=8, strategy=strategy)
    frac, mean_pred = calibration_curve(y, p, n_bins=8, strategy=strategy)
    assert np.allclose(table["fraction_positive"], frac) and np.allclose(table["mean_predicted"], mean_pred)
    assert table["count"].sum() == y.size and (table["count"] > 0).all()
    assert np.average(table["mean_predicted"], weights=table["count"]) == pytest.approx(p.mean())
    assert np.average(table["fraction_positive"], weights=table["count"]) == pytest.approx(y.mean())
