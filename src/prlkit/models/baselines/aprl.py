"""APRL (Lou et al., NeuroImage: Clinical 2021) on QSM: first-order features -> SMOTE -> random forest.

As QSMRim-Net adapted it from phase to QSM.

Features: `prlkit.features.radiomics.lesion_feature_table` (first-order QSM statistics per lesion).
Model: an imbalanced-learn Pipeline [StandardScaler, SMOTE, RandomForestClassifier(500 trees)], so
SMOTE only ever resamples the rows a pipeline is fitted on (inner-CV training folds, then the whole
training set), never validation or test rows. SMOTE oversamples positives to a 1:1 ratio ("by the
reciprocal of the minority percentage"); the scaler only changes which neighbours SMOTE pairs (the
forest is scale-invariant). mtry (`max_features`) is tuned by stratified inner CV on ROC-AUC over
round(sqrt(p) * factor) for the configured factors.

Storage: `APRLModel` is the trained model as a tensor-only module (training rows as buffers, seed
and mtry in its config) that refits the forest on first use after loading, because a scikit-learn
forest cannot be saved without pickle. The refit is exact: same rows, same seed, same mtry.

Paper vs code: APRL itself was described on phase images (its R implementation was not consulted
here); the QSMRim-Net paper, whose adaptation this follows, gives only "first-order features, SMOTE,
random forest". The feature list, the scaler before SMOTE and the mtry grid are this toolkit's
documented choices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import StandardScaler
from torch import nn

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
        self.pipeline: Pipeline | None = None
        self.best_mtry: int | None = None  # the max_features the inner CV chose
        self.inner_auc = float("nan")  # its mean inner-CV ROC-AUC

    def _smote_neighbours(self, y: np.ndarray) -> int:
        """SMOTE's k, fixed by the labels alone: every inner training fold must hold k + 1 positives."""
        positives = int(y.sum())
        inner_positives = positives - int(np.ceil(positives / self.config.inner_folds))
        if inner_positives < 2 or len(y) - positives < self.config.inner_folds:
            raise PrlkitError(
                f"APRL: {positives} rim+ of {len(y)} training lesions are too few for "
                f"{self.config.inner_folds}-fold inner CV with SMOTE"
            )
        return min(self.config.smote_neighbours, inner_positives - 1)

    def _pipeline(self, y: np.ndarray, seed: int) -> Pipeline:
        return Pipeline([
            ("scale", StandardScaler()),
            ("smote", SMOTE(k_neighbors=self._smote_neighbours(y), random_state=seed)),
            ("forest", RandomForestClassifier(n_estimators=self.config.n_estimators, random_state=seed,
                                              n_jobs=self.config.n_jobs)),
        ])

    def fit(self, features: np.ndarray, y: np.ndarray, seed: int) -> APRLClassifier:
        """Tune mtry by inner stratified CV and refit on all training rows; features (n, p), y (n,) in {0, 1}."""
        features, y = np.asarray(features, dtype=np.float64), np.asarray(y).astype(int)
        search = GridSearchCV(
            self._pipeline(y, seed),
            {"forest__max_features": mtry_grid(features.shape[1], self.config.mtry_factors)},
            scoring="roc_auc",
            cv=StratifiedKFold(self.config.inner_folds, shuffle=True, random_state=seed),
            refit=False,
        )
        search.fit(features, y)
        self.inner_auc = float(search.best_score_)
        return self.refit(features, y, seed, int(search.best_params_["forest__max_features"]))

    def refit(self, features: np.ndarray, y: np.ndarray, seed: int, mtry: int) -> APRLClassifier:
        """Fit the pipeline with a chosen mtry on all rows: the same rows, seed and mtry give the same forest."""
        features, y = np.asarray(features, dtype=np.float64), np.asarray(y).astype(int)
        self.pipeline = self._pipeline(y, seed).set_params(forest__max_features=mtry).fit(features, y)
        self.best_mtry = mtry
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probability of rim+ per row, (n,)."""
        if self.pipeline is None:
            raise PrlkitError("APRL: predict_proba called before fit")
        return self.pipeline.predict_proba(np.asarray(features, dtype=np.float64))[:, 1]


@dataclass(frozen=True)
class FittedAPRLConfig(APRLConfig):
    """APRL settings plus what a trained model needs to rebuild its forest: data shape, seed, chosen mtry."""

    n_train: int = 0
    n_features: int = 0
    seed: int = 0
    mtry: int = 1


class APRLModel(nn.Module):
    """A trained APRL model in the form every method shares (a module with tensors, no pickle).

    scikit-learn forests can only be stored by pickling, which prlkit's model files never do. The
    module therefore keeps the training rows (features float64, labels) as buffers and the seed and
    mtry in its config, and refits the forest from them, deterministically, on first use after
    loading (a few seconds for 500 trees). forward(x, features) ignores the patches and returns the
    logit of the forest's probability.
    """

    takes_features = True

    def __init__(self, config: FittedAPRLConfig = FittedAPRLConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("train_features", torch.zeros(config.n_train, config.n_features, dtype=torch.float64))
        self.register_buffer("train_labels", torch.zeros(config.n_train, dtype=torch.int64))
        self.classifier: APRLClassifier | None = None
        self.register_load_state_dict_post_hook(APRLModel._forget_forest)

    @staticmethod
    def _forget_forest(module: APRLModel, incompatible_keys) -> None:
        module.classifier = None  # new training rows: refit on next use

    @classmethod
    def trained(cls, features: np.ndarray, y: np.ndarray, config: APRLConfig, seed: int) -> APRLModel:
        """Tune and fit on training rows `features` (n, p), `y` (n,); the module keeps them for refitting."""
        classifier = APRLClassifier(config).fit(features, y, seed)
        fitted = FittedAPRLConfig(**dataclasses.asdict(config), n_train=len(y), n_features=features.shape[1],
                                  seed=seed, mtry=classifier.best_mtry)
        model = cls(fitted)
        model.train_features.copy_(torch.as_tensor(np.asarray(features, dtype=np.float64)))
        model.train_labels.copy_(torch.as_tensor(np.asarray(y).astype(np.int64)))
        model.classifier = classifier
        return model

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Raw lesion features (B, F) -> logit of P(rim+) (B,), float64."""
        if self.classifier is None:
            self.classifier = APRLClassifier(self.config).refit(
                self.train_features.cpu().numpy(), self.train_labels.cpu().numpy(), self.config.seed, self.config.mtry
            )
        probability = self.classifier.predict_proba(features.detach().cpu().numpy())
        return torch.logit(torch.from_numpy(probability)).to(features.device)
