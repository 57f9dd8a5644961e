"""APRL in the shared harness: a random forest on the cached lesion features, no torch training.

The pipeline (scaler, SMOTE, forest; mtry by inner CV) is fitted on the training rows only, so
SMOTE never sees validation or test lesions; calibration (train prior 0.5: SMOTE balances to 1:1)
and the F1 threshold come from the validation rows, as for every method. The model file holds
the training rows and the chosen mtry instead of a pickled forest (`APRLModel`).
"""

from __future__ import annotations

import numpy as np

from prlkit.methods.contract import TrainingJob
from prlkit.methods.finalize import finalize
from prlkit.methods.networks import network_config
from prlkit.methods.splits import lesion_split
from prlkit.methods.trained import TrainedModel
from prlkit.models.baselines.aprl import APRLConfig, APRLModel
from prlkit.train.loop import FitResult


def train_aprl(job: TrainingJob) -> tuple[TrainedModel, dict[str, FitResult]]:
    """Tune and fit APRL on the job's training lesions; validation gives the threshold and calibration.

    The job's `run_dir`, `resume` and `progress` go unused: fitting takes seconds.
    """
    patch_set, config = job.patch_set, job.config
    rows = patch_set.lesions.loc[job.train_index]
    features = np.asarray(patch_set.features[rows.index.to_numpy()], dtype=np.float64)
    labels = rows["rim"].astype(int).to_numpy()
    model = APRLModel.trained(features, labels, network_config("aprl", config.network, APRLConfig),
                               seed=config.finetune.seed)
    fits = {"forest": FitResult(best_epoch=0, best_score=model.classifier.inner_auc, epochs_run=1)}
    val = lesion_split(patch_set, job.val_index)
    trained = finalize(job, model, network="aprl", model_config=model.config, val=val, fits=fits)
    trained.training["features"] = list(patch_set.feature_names)
    return trained, fits
