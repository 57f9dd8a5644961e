"""APRL (Lou et al., NeuroImage: Clinical 2021) on QSM: first-order features -> SMOTE -> random forest.

As QSMRim-Net adapted it from phase to QSM.

Features: `prlkit.features.radiomics.lesion_feature_table` (first-order QSM statistics per lesion).
Model: an imbalanced-learn Pipeline [StandardScaler, SMOTE, RandomForestClassifier(500 trees)], so
SMOTE only ever resamples the rows a pipeline is fitted on (inner-CV training folds, then the whole
training set), never validation or test rows. SMOTE oversamples positives to a 1:1 ratio ("by the
reciprocal of the minority percentage"); the scaler only changes which neighbours SMOTE pairs (the
forest is scale-invariant). mtry (`max_features`) is tuned by stratified inner CV on ROC-AUC over
round(sqrt(p) * factor) for the configured factors.

Paper vs code: APRL itself was described on phase images (its R implementation was not consulted
here); the QSMRim-Net paper, whose adaptation this follows, gives only "first-order features, SMOTE,
random forest". The feature list, the scaler before SMOTE and the mtry grid are this toolkit's
documented choices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from prlkit.errors import PrlkitError


@dataclass(frozen=True)
class APRLConfig:
    n_estimators: int = 500
    mtry_factors: tuple[float, ...] = (0.5, 1.0, 2.0)  # max_features grid: round(sqrt(p) * factor)
    inner_folds: int = 3
    smote_neighbours: int = 5  # imbalanced-learn's default; lowered when a fold has fewer positives
    n_jobs: int = 1


def mtry_grid(n_features: int, factors: tuple[float, ...]) -> list[int]:
    """Distinct max_features values round(sqrt(p) * factor), clipped to [1, p]."""
    return sorted({int(np.clip(round(np.sqrt(n_features) * f), 1, n_features)) for f in factors})


class APRLClassifier:
    """SMOTE + random forest on lesion features; `fit` then `predict_proba` (probability of rim+)."""

    def __init__(self, config: APRLConfig = APRLConfig()):
        self.config = config
        self.search: GridSearchCV | None = None

    def fit(self, features: np.ndarray, y: np.ndarray, seed: int) -> APRLClassifier:
        """Tune mtry by inner stratified CV and refit on all training rows; features (n, p), y (n,) in {0, 1}."""
        features, y = np.asarray(features, dtype=np.float64), np.asarray(y).astype(int)
        positives = int(y.sum())
        # the smallest inner training fold holds at least this many positives
        inner_positives = positives - int(np.ceil(positives / self.config.inner_folds))
        if inner_positives < 2 or len(y) - positives < self.config.inner_folds:
            raise PrlkitError(
                f"APRL: {positives} rim+ of {len(y)} training lesions are too few for "
                f"{self.config.inner_folds}-fold inner CV with SMOTE"
            )
        pipeline = Pipeline([
            ("scale", StandardScaler()),
            ("smote", SMOTE(k_neighbors=min(self.config.smote_neighbours, inner_positives - 1), random_state=seed)),
            ("forest", RandomForestClassifier(n_estimators=self.config.n_estimators, random_state=seed,
                                              n_jobs=self.config.n_jobs)),
        ])  # fmt: skip
        self.search = GridSearchCV(
            pipeline,
            {"forest__max_features": mtry_grid(features.shape[1], self.config.mtry_factors)},
            scoring="roc_auc",
            cv=StratifiedKFold(self.config.inner_folds, shuffle=True, random_state=seed),
            refit=True,
        )
        self.search.fit(features, y)
        return self

    @property
    def best_mtry(self) -> int:
        """The max_features the inner CV chose."""
        return int(self.search.best_params_["forest__max_features"])

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probability of rim+ per row, (n,)."""
        if self.search is None:
            raise PrlkitError("APRL: predict_proba called before fit")
        return self.search.predict_proba(np.asarray(features, dtype=np.float64))[:, 1]
