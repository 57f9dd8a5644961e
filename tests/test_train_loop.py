"""The shared training loop: learns, stops early at the best epoch, resumes exactly, no pickles."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import average_precision_score

from prlkit.config import TrainConfig
from prlkit.errors import PrlkitError
from prlkit.train.loop import Split, fit, resolve_device
from prlkit.train.sampling import (
    balanced_batches,
    balanced_weights,
    sampling_weights,
    shuffled_batches,
    size_matched_weights,
)


class ToyStage:
    """Logistic regression on flattened patches with dropout (so the global RNG matters)."""

    monitor = "max"
    score_name = "val_pr_auc"

    def __init__(self, train_y, batch_size=8, fail_at_call=None):
        torch.manual_seed(0)
        self.module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.2), torch.nn.Linear(2 * 4**3, 1))
        self.train_y = train_y.numpy()
        self.batch_size = batch_size
        self.calls, self.fail_at_call = 0, fail_at_call

    def batches(self, generator):
        return balanced_batches(self.train_y, self.batch_size, generator)

    def loss(self, x, y):
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise KeyboardInterrupt
        return torch.nn.functional.binary_cross_entropy_with_logits(self.module(x).squeeze(1), y.float())

    def score(self, x, y):
        return average_precision_score(y.cpu().numpy(), self.module(x).squeeze(1).cpu().numpy())


def toy_data(n, seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.15).astype(np.int64)
    x = rng.normal(size=(n, 2, 4, 4, 4)).astype(np.float32)
    x[y == 1, 0, 1:3, 1:3, 1:3] += 1.5  # a learnable signal in channel 0
    return Split(torch.from_numpy(x).half(), torch.from_numpy(y))


def config(**kwargs):
    return TrainConfig(**({"max_epochs": 6, "batch_size": 8, "learning_rate": 0.05, "patience": 50} | kwargs))


def test_learns_and_writes_its_files(tmp_path):
    train, val = toy_data(200, 1), toy_data(100, 2)
    stage = ToyStage(train.y)
    result = fit(stage, train, val, config(), tmp_path, torch.device("cpu"), progress=False)
    assert result.epochs_run == 6 and result.best_score > 0.8
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(6))
    best = load_file(str(tmp_path / "best.safetensors"))
    torch.testing.assert_close(best["2.weight"], stage.module[2].weight.detach())


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    train, val = toy_data(200, 1), toy_data(100, 2)
    result = fit(ToyStage(train.y), train, val, config(max_epochs=40, patience=3), tmp_path, torch.device("cpu"),
                 progress=False)
    scores = [row["val_pr_auc"] for row in result.history]
    assert result.epochs_run < 40 and result.epochs_run == result.best_epoch + 4
    assert result.best_score == max(scores) == scores[result.best_epoch]


@pytest.mark.parametrize("recipe", [{}, {"optimizer": "adam", "schedule": "plateau", "lr_plateau_patience": 0},
                                    {"keep": "last", "average_fraction": 0.5}])
def test_resume_after_interruption_gives_identical_weights(tmp_path, recipe):
    train, val = toy_data(120, 3), toy_data(60, 4)
    whole = ToyStage(train.y)
    fit(whole, train, val, config(**recipe), tmp_path / "whole", torch.device("cpu"), progress=False)
    interrupted = ToyStage(train.y, fail_at_call=15 * 3 + 4)  # 15 batches per epoch: dies inside epoch 3
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, train, val, config(**recipe), tmp_path / "resumed", torch.device("cpu"), progress=False)
    assert len((tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()) == 3
    resumed = ToyStage(train.y)  # a fresh process: new module, state from the checkpoint
    result = fit(resumed, train, val, config(**recipe), tmp_path / "resumed", torch.device("cpu"), resume=True,
                 progress=False)
    assert result.epochs_run == 6
    for a, b in zip(whole.module.state_dict().values(), resumed.module.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_schedule_sets_and_records_the_rate(tmp_path):
    train, val = toy_data(60, 5), toy_data(30, 6)
    recipe = config(max_epochs=4, schedule="multistep", lr_milestones=(0.5,), lr_factor=0.5)
    result = fit(ToyStage(train.y), train, val, recipe, tmp_path, torch.device("cpu"), progress=False)
    assert [row["learning_rate"] for row in result.history] == [0.05, 0.05, 0.025, 0.025]


def test_same_seed_same_result_other_seed_differs(tmp_path):
    train, val = toy_data(120, 3), toy_data(60, 4)
    runs = []
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        stage = ToyStage(train.y)
        fit(stage, train, val, config(seed=seed, max_epochs=2), tmp_path / name, torch.device("cpu"), progress=False)
        runs.append(stage.module[2].weight.detach().clone())
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_checkpoint_files_hold_no_pickle(tmp_path):
    train, val = toy_data(60, 5), toy_data(30, 6)
    fit(ToyStage(train.y), train, val, config(max_epochs=1), tmp_path, torch.device("cpu"), progress=False)
    json.loads((tmp_path / "checkpoint.json").read_text())
    assert {key.split(".")[0] for key in load_file(str(tmp_path / "checkpoint.safetensors"))} == {"module", "optimizer"}


def test_balanced_sampler_on_a_rare_class():
    labels = np.array([1] * 7 + [0] * 93)
    weights = balanced_weights(labels)
    assert weights[labels == 1].sum() == pytest.approx(weights[labels == 0].sum())
    batches = balanced_batches(labels, 10, torch.Generator().manual_seed(0))
    drawn = labels[torch.cat(batches).numpy()]
    assert len(drawn) == 100 and 0.4 < drawn.mean() < 0.6  # 7 % positives become about half


def test_size_matched_sampler_gives_both_classes_the_rim_positive_size_distribution():
    rng = np.random.default_rng(0)
    labels = np.array([1] * 30 + [0] * 300)
    voxels = np.where(labels == 1, rng.lognormal(6.2, 0.6, labels.size), rng.lognormal(5.9, 0.6, labels.size))
    weights = size_matched_weights(labels, voxels).numpy()
    assert weights[labels == 1].sum() == pytest.approx(0.5) and weights[labels == 0].sum() == pytest.approx(0.5)
    edges = np.quantile(voxels[labels == 1], [0.25, 0.5, 0.75])
    bins = np.searchsorted(edges, voxels, side="right")
    for b in range(4):  # the same mass in every Rim+ volume quartile, for both classes
        assert weights[(bins == b) & (labels == 1)].sum() == pytest.approx(0.125)
        assert weights[(bins == b) & (labels == 0)].sum() == pytest.approx(0.125)
    plain = balanced_weights(labels).numpy()
    weighted_mean = [np.average(np.log(voxels[labels == c]), weights=w[labels == c]) for w in (plain, weights)
                     for c in (1, 0)]
    assert weighted_mean[0] - weighted_mean[1] > 0.2 and abs(weighted_mean[2] - weighted_mean[3]) < 0.1


def test_size_matched_sampler_drops_a_bin_without_rim_negatives_and_falls_back_on_one_class():
    labels = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
    voxels = np.array([100, 110, 200, 210, 300, 310, 900, 950, 105, 205, 305.0])
    weights = size_matched_weights(labels, voxels).numpy()
    assert weights[-3:].sum() == pytest.approx(0.5) and weights[:8].sum() == pytest.approx(0.5)
    assert weights[6] == weights[7] == 0  # the largest Rim+ quartile has no Rim- lesion to match
    torch.testing.assert_close(size_matched_weights(np.zeros(5), np.arange(5.0)), balanced_weights(np.zeros(5)))
    torch.testing.assert_close(sampling_weights("balanced", labels, voxels), balanced_weights(labels))


class ScriptedStage(ToyStage):
    """The toy network with validation scores read from a script: a lucky spike, then a slow rise."""

    def __init__(self, train_y, scores):
        super().__init__(train_y)
        self.scores = iter(scores)

    def score(self, x, y):
        return next(self.scores)


@pytest.mark.parametrize("window, best_epoch, epochs_run", [(1, 1, 5), (3, 5, 9)])
def test_a_score_window_looks_past_one_lucky_validation_epoch(tmp_path, window, best_epoch, epochs_run):
    train, val = toy_data(40, 1), toy_data(20, 2)
    scores = [0.1, 0.9, 0.1, 0.6, 0.7, 0.8, 0.2, 0.2, 0.2, 0.2]
    result = fit(ScriptedStage(train.y, scores), train, val, config(max_epochs=10, patience=3, score_window=window),
                 tmp_path, torch.device("cpu"), progress=False)
    assert (result.best_epoch, result.epochs_run) == (best_epoch, epochs_run)
    assert result.best_score == pytest.approx(np.mean(scores[best_epoch - window + 1:best_epoch + 1]))
    assert [row["val_pr_auc"] for row in result.history] == scores[:epochs_run]  # the log keeps each epoch's own


def test_score_window_must_be_positive():
    with pytest.raises(PrlkitError, match="score_window"):
        TrainConfig(score_window=0)


@pytest.mark.parametrize("n", [17, 33, 16, 1])
def test_no_batch_holds_a_single_lesion_so_batchnorm_can_train(n):
    labels = np.array([1, 0] * (n // 2) + [0] * (n % 2))
    for batches in (balanced_batches(labels, 16, torch.Generator().manual_seed(0)),
                    shuffled_batches(n, 16, torch.Generator().manual_seed(0))):
        assert sum(len(b) for b in batches) == n  # every draw of the epoch is kept
        assert n == 1 or min(len(b) for b in batches) > 1


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_keep_last_returns_the_final_epoch_not_the_best(tmp_path):
    train, val = toy_data(200, 1), toy_data(100, 2)
    val = Split(val.x, 1 - val.y)  # flipped labels: learning makes the validation score worse, the best epoch is early
    best_stage, last_stage = ToyStage(train.y), ToyStage(train.y)
    best = fit(best_stage, train, val, config(max_epochs=5), tmp_path / "best", torch.device("cpu"), progress=False)
    last = fit(last_stage, train, val, config(max_epochs=5, keep="last"), tmp_path / "last", torch.device("cpu"),
               progress=False)
    assert best.history == last.history and last.best_epoch == best.best_epoch < 4  # same run; the best is not last
    best_weights = load_file(str(tmp_path / "best" / "best.safetensors"))
    assert all(torch.equal(v, best_weights[k]) for k, v in best_stage.module.state_dict().items())
    assert not all(torch.equal(v, best_weights[k]) for k, v in last_stage.module.state_dict().items())
    with pytest.raises(Exception, match="keep"):
        TrainConfig(keep="median")


def test_average_fraction_keeps_the_mean_of_the_last_epochs_weights(tmp_path):
    train, val = toy_data(120, 3), toy_data(60, 4)
    per_epoch = []  # epochs are seeded by (seed, epoch): a shorter run is the same run cut short
    for epochs in (4, 5, 6):
        stage = ToyStage(train.y)
        fit(stage, train, val, config(max_epochs=epochs, keep="last"), tmp_path / f"plain{epochs}",
            torch.device("cpu"), progress=False)
        per_epoch.append(stage.module.state_dict())
    averaged = ToyStage(train.y)
    recipe = config(max_epochs=6, keep="last", average_fraction=0.5)  # the last 3 of 6 epochs
    result = fit(averaged, train, val, recipe, tmp_path / "averaged", torch.device("cpu"), progress=False)
    assert result.epochs_run == 6 and recipe.averaged_epochs == 3
    for name, value in averaged.module.state_dict().items():
        torch.testing.assert_close(value, torch.stack([weights[name] for weights in per_epoch]).mean(0))
    assert not torch.equal(averaged.module[2].weight, per_epoch[-1]["2.weight"])


@pytest.mark.parametrize("epochs, fraction, averaged", [(40, 0.25, 10), (12, 0.25, 3), (8, 0.25, 2), (1, 0.25, 1),
                                                        (6, 1.0, 6), (6, 0.0, 0), (30, 0.1, 3)])
def test_average_fraction_counts_whole_epochs_and_at_least_the_last(epochs, fraction, averaged):
    assert config(max_epochs=epochs, keep="last", average_fraction=fraction).averaged_epochs == averaged


@pytest.mark.parametrize("settings", [{"average_fraction": 0.25},
                                      {"average_fraction": 0.25, "keep": "last", "patience": 2},
                                      {"average_fraction": -0.1, "keep": "last"},
                                      {"average_fraction": 2, "keep": "last"}])
def test_average_fraction_needs_a_fixed_budget_kept_last(settings):
    with pytest.raises(PrlkitError, match="average_fraction"):
        config(**settings)
