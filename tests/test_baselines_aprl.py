"""APRL: SMOTE sees training rows only, the forest learns a separable signal, seeds fix the result."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from imblearn.over_sampling import SMOTE
from sklearn.metrics import roc_auc_score

from prlkit.errors import PrlkitError
from prlkit.models.baselines.aprl import APRLClassifier, APRLConfig, APRLModel, FittedAPRLConfig, mtry_grid

FAST = APRLConfig(n_estimators=25)


def lesions(n: int, positives: int, seed: int):
    """Feature rows (n, 6): rim+ lesions have a higher mean in the first two columns."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=int)
    y[:positives] = 1
    x = rng.normal(size=(n, 6))
    x[:, :2] += 2.0 * y[:, None]
    x[:, 2] *= 1000.0  # a feature on another scale (energy-like)
    return x, y


def test_smote_only_ever_resamples_training_rows(monkeypatch):
    seen = []
    original = SMOTE.fit_resample

    def spy(self, X, y, **kwargs):
        seen.append((X.shape[0], int(np.sum(y))))
        X_res, y_res = original(self, X, y, **kwargs)
        assert np.sum(y_res == 1) == np.sum(y_res == 0)  # oversampled to 1:1
        return X_res, y_res

    monkeypatch.setattr(SMOTE, "fit_resample", spy)
    x_train, y_train = lesions(90, 12, seed=0)
    x_test, _ = lesions(40, 6, seed=1)
    model = APRLClassifier(FAST).fit(x_train, y_train, seed=0)
    grid = len(mtry_grid(6, FAST.mtry_factors))
    assert len(seen) == grid * FAST.inner_folds + 1  # every inner fit, then the refit
    assert seen[-1] == (90, 12)  # the refit: exactly the training rows
    assert all(rows == 60 for rows, _ in seen[:-1])  # inner training folds: 2/3 of them
    model.predict_proba(x_test)
    assert len(seen) == grid * FAST.inner_folds + 1  # predicting resamples nothing


def test_aprl_separates_a_clear_signal_and_is_seeded():
    x_train, y_train = lesions(120, 15, seed=2)
    x_test, y_test = lesions(80, 10, seed=3)
    model = APRLClassifier(FAST).fit(x_train, y_train, seed=4)
    p = model.predict_proba(x_test)
    assert p.shape == (80,) and np.all((p >= 0) & (p <= 1))
    assert roc_auc_score(y_test, p) > 0.9
    assert model.best_mtry in mtry_grid(6, FAST.mtry_factors)
    again = APRLClassifier(FAST).fit(x_train, y_train, seed=4).predict_proba(x_test)
    np.testing.assert_array_equal(p, again)


def test_mtry_grid_around_sqrt_p():
    assert mtry_grid(25, (0.5, 1.0, 2.0)) == [2, 5, 10]
    assert mtry_grid(1, (0.5, 1.0, 2.0)) == [1]
    assert mtry_grid(4, (0.5, 1.0, 4.0)) == [1, 2, 4]  # clipped to p


def test_too_few_positives_and_predict_before_fit_are_errors():
    x, y = lesions(30, 2, seed=5)
    with pytest.raises(PrlkitError, match="too few"):
        APRLClassifier(FAST).fit(x, y, seed=0)
    with pytest.raises(PrlkitError, match="before fit"):
        APRLClassifier(FAST).predict_proba(x)


def test_aprl_model_refits_the_same_forest_from_its_saved_tensors():
    x_train, y_train = lesions(90, 12, seed=6)
    x_test, _ = lesions(30, 4, seed=7)
    model = APRLModel.trained(x_train, y_train, FAST, seed=3)
    assert model.config.mtry == model.classifier.best_mtry and model.config.n_train == 90
    logits = model(torch.zeros(30, 1), torch.from_numpy(x_test))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert set(state) == {"train_features", "train_labels"}  # tensors only: no pickled forest
    loaded = APRLModel(FittedAPRLConfig(**dataclasses.asdict(model.config)))
    loaded.load_state_dict(state)
    assert loaded.classifier is None  # refitted on first use
    np.testing.assert_array_equal(loaded(torch.zeros(30, 1), torch.from_numpy(x_test)).numpy(), logits.numpy())
    expected = model.classifier.predict_proba(x_test)
    np.testing.assert_allclose(torch.sigmoid(logits).numpy(), expected, atol=1e-12)
