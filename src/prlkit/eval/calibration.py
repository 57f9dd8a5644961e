"""Probability calibration fitted on the validation split only, Brier score and reliability data.

A class-balanced sampler (or focal loss, or SMOTE) trains the model at a Rim+ prior near 0.5,
so its probabilities overstate the real prevalence (4–10 %). Before probabilities are summed
into an expected Rim+ count or shown as "probability", calibrate them (docs/evaluation.md, Calibration).
Each calibrator is a frozen dataclass: `fit` sees validation labels and scores only and
returns the fitted parameters; `apply` maps any (test) probabilities. Nothing fitted touches test data.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special
from sklearn.calibration import calibration_curve

from prlkit.data.bids import PrlkitWarning
from prlkit.errors import PrlkitError
from prlkit.eval.metrics import check_scores

#: Probabilities are clipped to [EPS, 1 − EPS] before taking logits, so 0 and 1 stay finite.
EPS = 1e-7


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1 or np.isnan(p).any()):
        raise PrlkitError("calibration: probabilities must lie in [0, 1]")
    return special.logit(np.clip(p, EPS, 1 - EPS))


def _check_prior(value: float, name: str) -> float:
    if not 0 < value < 1:
        raise PrlkitError(f"prior-shift calibration: {name} must be in (0, 1), got {value}")
    return float(value)


@dataclass(frozen=True)
class PriorShift:
    """Bayes odds adjustment from the training prior to the target prevalence (no free parameters).

    odds' = odds · [π_t/(1−π_t)] / [π_s/(1−π_s)], with π_s the Rim+ prior the sampler trained at
    (0.5 for an inverse-frequency WeightedRandomSampler) and π_t the validation prevalence.
    """

    train_prior: float
    target_prior: float

    @classmethod
    def fit(cls, y_val: np.ndarray, p_val: np.ndarray, train_prior: float = 0.5) -> PriorShift:
        """Take the target prior from the validation labels."""
        y, _ = check_scores(y_val, p_val, what="prior-shift calibration")
        return cls(_check_prior(train_prior, "train_prior"), _check_prior(float(y.mean()), "validation prevalence"))

    def apply(self, p: np.ndarray) -> np.ndarray:
        shift = special.logit(self.target_prior) - special.logit(self.train_prior)
        return special.expit(_logit(p) + shift)


@dataclass(frozen=True)
class PlattScaling:
    """p' = σ(a · logit(p) + b), a and b fitted by maximum likelihood on validation.

    Platt (1999) on the model's logit, without Platt's label smoothing. The slope is kept positive, so
    calibration never reorders lesions (AUCs, and decisions at a carried-over threshold, stay those of the
    model): when the fitted slope is <= 0 (validation scores not increasing with the labels) prlkit keeps
    a = 1, fits b alone and warns.
    """

    a: float
    b: float

    @classmethod
    def fit(cls, y_val: np.ndarray, p_val: np.ndarray) -> PlattScaling:
        y, p = check_scores(y_val, p_val, what="Platt scaling")
        x = _logit(p)

        def nll(params: np.ndarray) -> tuple[float, np.ndarray]:
            z = params[0] * x + params[1]
            residual = special.expit(z) - y
            return float(np.sum(np.logaddexp(0.0, z) - y * z)), np.array([residual @ x, residual.sum()])

        result = optimize.minimize(nll, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
        if result.x[0] > 0:
            return cls(float(result.x[0]), float(result.x[1]))
        warnings.warn(f"Platt scaling: the fitted slope {result.x[0]:.3g} is not positive (validation scores do not "
                      "rise with the labels); kept slope 1 and fitted the intercept only, so the ranking is the "
                      "model's", PrlkitWarning, stacklevel=2)

        def nll_intercept(b: np.ndarray) -> tuple[float, np.ndarray]:
            value, gradient = nll(np.array([1.0, b[0]]))
            return value, gradient[1:]

        return cls(1.0, float(optimize.minimize(nll_intercept, np.zeros(1), jac=True, method="L-BFGS-B").x[0]))

    def apply(self, p: np.ndarray) -> np.ndarray:
        return special.expit(self.a * _logit(p) + self.b)


@dataclass(frozen=True)
class TemperatureScaling:
    """p' = σ(logit(p) / T), one temperature T > 0 fitted by maximum likelihood on validation (Guo et al. 2017)."""

    temperature: float

    @classmethod
    def fit(cls, y_val: np.ndarray, p_val: np.ndarray) -> TemperatureScaling:
        y, p = check_scores(y_val, p_val, what="temperature scaling")
        x = _logit(p)

        def nll(log_t: float) -> float:
            z = x * np.exp(-log_t)
            return float(np.sum(np.logaddexp(0.0, z) - y * z))

        result = optimize.minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded", options={"xatol": 1e-8})
        return cls(float(np.exp(result.x)))

    def apply(self, p: np.ndarray) -> np.ndarray:
        return special.expit(_logit(p) / self.temperature)


Calibrator = PriorShift | PlattScaling | TemperatureScaling
CALIBRATION_METHODS = {"prior": PriorShift, "platt": PlattScaling, "temperature": TemperatureScaling}
CALIBRATOR_NAMES = {cls: name for name, cls in CALIBRATION_METHODS.items()}


def calibrator_to_dict(calibrator: Calibrator) -> dict[str, Any]:
    """A calibrator as model.json stores it: its method name and fitted parameters."""
    return {"method": CALIBRATOR_NAMES[type(calibrator)], **dataclasses.asdict(calibrator)}


def calibrator_from_dict(data: dict[str, Any] | None, default: Calibrator) -> Calibrator:
    """The calibrator stored by :func:`calibrator_to_dict`; `default` for model files saved before calibration
    was recorded (modelfile checks the stored method and parameters when the file is read)."""
    if not data:
        return default
    parameters = dict(data)
    return CALIBRATION_METHODS[parameters.pop("method")](**parameters)


def fit_calibrator(method: str, y_val: np.ndarray, p_val: np.ndarray, train_prior: float = 0.5) -> Calibrator:
    """Fit the named calibrator (`prior`, `platt` or `temperature`) on validation labels and probabilities."""
    if method not in CALIBRATION_METHODS:
        raise PrlkitError(f"calibration method {method!r} is not one of {sorted(CALIBRATION_METHODS)}")
    if method == "prior":
        return PriorShift.fit(y_val, p_val, train_prior=train_prior)
    return CALIBRATION_METHODS[method].fit(y_val, p_val)


def brier_score(y_true: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference between probability and 0/1 label (defined for a single class too)."""
    y, s = check_scores(y_true, p, both_classes=False, what="Brier score")
    return float(np.mean((s - y) ** 2))


def reliability_curve(y_true: np.ndarray, p: np.ndarray, n_bins: int = 10, strategy: str = "uniform") -> pd.DataFrame:
    """Reliability-plot data per non-empty bin: `mean_predicted`, `fraction_positive` (scikit-learn) and `count`."""
    y, s = check_scores(y_true, p, both_classes=False, what="reliability curve")
    if strategy not in ("uniform", "quantile"):
        raise PrlkitError(f"reliability curve: strategy must be 'uniform' or 'quantile', got {strategy!r}")
    fraction, mean_pred = calibration_curve(y, s, n_bins=n_bins, strategy=strategy, pos_label=1)
    # Same bin edges and assignment as calibration_curve, to report how many lesions each point rests on.
    if strategy == "uniform":
        edges = np.linspace(0, 1, n_bins + 1)
    else:
        edges = np.percentile(s, np.linspace(0, 100, n_bins + 1))
    count = np.bincount(np.searchsorted(edges[1:-1], s), minlength=n_bins)
    return pd.DataFrame({"mean_predicted": mean_pred, "fraction_positive": fraction, "count": count[count > 0]})
