"""Learning-rate schedules as pure functions of the epoch and the validation history.

The baselines' papers decay the learning rate (QSMRim-Net: multi-step at 50/70/90 % of its
epochs; RimNet: step-down on plateau; Deep-PRL: polynomial). Computing the rate from
(epoch, history) instead of keeping a scheduler object means a resumed run gets the same rate as
an uninterrupted one with nothing extra in the checkpoint. The rules match PyTorch's
MultiStepLR, PolynomialLR and ReduceLROnPlateau (threshold 0, no cooldown; tested against them).
"""

from __future__ import annotations

import math

from prlkit.config import TrainConfig


def milestone_epochs(config: TrainConfig) -> list[int]:
    """Epochs at which `multistep` multiplies the rate by `lr_factor` (fractions of max_epochs)."""
    return [round(fraction * config.max_epochs) for fraction in config.lr_milestones]


def _plateau_steps(scores: list[float], monitor: str, patience: int) -> int:
    """How many times ReduceLROnPlateau would have reduced the rate after these epochs' scores."""
    best, bad, steps = None, 0, 0
    for score in scores:
        improved = not math.isnan(score) and (best is None or (score > best if monitor == "max" else score < best))
        best, bad = (score, 0) if improved else (best, bad + 1)
        if bad > patience:
            steps, bad = steps + 1, 0
    return steps


def learning_rate_at(config: TrainConfig, epoch: int, scores: list[float] = (), monitor: str = "max") -> float:
    """The rate for `epoch` given the validation `scores` of the epochs before it."""
    base = config.learning_rate
    if config.schedule == "multistep":
        return base * config.lr_factor ** sum(epoch >= m for m in milestone_epochs(config))
    if config.schedule == "poly":
        return base * (1.0 - min(epoch, config.max_epochs) / config.max_epochs) ** config.lr_power
    if config.schedule == "plateau":
        return base * config.lr_factor ** _plateau_steps(list(scores)[:epoch], monitor, config.lr_plateau_patience)
    return base
