"""Learning-rate schedules: the pure functions agree with PyTorch's schedulers, and the loop applies them."""

from __future__ import annotations

import pytest
import torch

from prlkit.config import TrainConfig
from prlkit.errors import PrlkitError
from prlkit.train.schedule import learning_rate_at, milestone_epochs


def torch_rates(scheduler_factory, epochs: int, scores=None) -> list[float]:
    """Rates PyTorch's scheduler gives for each epoch (stepped after every epoch, on the score for plateau)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = scheduler_factory(optimizer)
    rates = []
    for epoch in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step(scores[epoch]) if scores is not None else scheduler.step()
    return rates


def test_multistep_matches_torch():
    config = TrainConfig(max_epochs=40, learning_rate=1e-3, schedule="multistep")
    assert milestone_epochs(config) == [20, 28, 36]  # 50/70/90 % of 40 epochs (QSMRim-Net)
    expected = torch_rates(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [20, 28, 36], gamma=0.1), 40)
    assert [learning_rate_at(config, e) for e in range(40)] == pytest.approx(expected, rel=1e-9)


def test_poly_matches_torch():
    config = TrainConfig(max_epochs=12, learning_rate=1e-3, schedule="poly", lr_power=0.9)
    expected = torch_rates(lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=12, power=0.9), 12)
    assert [learning_rate_at(config, e) for e in range(12)] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("monitor", ["max", "min"])
def test_plateau_matches_torch(monitor):
    scores = [0.5, 0.6, 0.6, 0.55, 0.58, 0.59, 0.61, 0.61, 0.6, 0.6, 0.6, 0.7, 0.7, 0.69, 0.68, 0.5]
    if monitor == "min":
        scores = [-s for s in scores]
    config = TrainConfig(max_epochs=len(scores), learning_rate=1e-3, schedule="plateau", lr_plateau_patience=2)
    expected = torch_rates(lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(
        o, mode=monitor, factor=0.1, patience=2, threshold=0.0, threshold_mode="abs"), len(scores), scores)
    ours = [learning_rate_at(config, e, scores, monitor) for e in range(len(scores))]
    assert ours == pytest.approx(expected, rel=1e-9)
    assert min(ours) < 1e-3  # the sequence does step down


def test_constant_is_the_default():
    assert learning_rate_at(TrainConfig(learning_rate=3e-4), 17) == 3e-4


@pytest.mark.parametrize("field, value", [("schedule", "cosine"), ("optimizer", "sgd"),
                                          ("lr_milestones", (0.5, 1.2)), ("lr_factor", 0.0)])
def test_bad_schedule_settings_are_errors(field, value):
    with pytest.raises(PrlkitError, match=field.split("_")[0]):
        TrainConfig(**{field: value})
