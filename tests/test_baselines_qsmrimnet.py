"""QSMRim-Net and its DeepSMOTE layer: row counts, interpolation, gradients, eval identity, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prlkit.errors import PrlkitError
from prlkit.methods.qsmrimnet import smote_prior
from prlkit.models.baselines.qsmrimnet import (
    DeepSMOTE,
    QSMRimNet,
    QSMRimNetClassifier,
    QSMRimNetConfig,
    SeedVote,
)

# Positives on a line t * (1, 2): nearest others of t=0 are 1, 3; of 1: 0, 3; of 3: 1, 0; of 10: 3, 1.
T = torch.tensor([0.0, 1.0, 3.0, 10.0])
NEAREST = {0: (1, 3), 1: (0, 3), 3: (1, 0), 10: (3, 1)}


def line_batch():
    """Four positives on a line and two negatives off it; labels (6,)."""
    positives = T[:, None] * torch.tensor([1.0, 2.0])
    negatives = torch.tensor([[5.0, -1.0], [-4.0, 7.0]])
    features = torch.cat([positives[:2], negatives[:1], positives[2:], negatives[1:]])
    labels = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    return features, labels


def smote(mode: str) -> DeepSMOTE:
    layer = DeepSMOTE(neighbours=2, include_self=False) if mode == "paper" else DeepSMOTE(3, include_self=True)
    return layer.train()


@pytest.mark.parametrize("mode, per_positive", [("paper", 2), ("released", 3)])
def test_deepsmote_appends_k_synthetic_positives_per_positive(mode, per_positive):
    features, labels = line_batch()
    out, out_labels = smote(mode)(features, labels, torch.Generator().manual_seed(0))
    n, N = 4, 6
    assert out.shape == (N + per_positive * n, 2) and out_labels.shape == (N + per_positive * n,)
    assert torch.equal(out[:N], features) and torch.equal(out_labels[:N], labels)
    assert torch.all(out_labels[N:] == 1.0)
    synthetic = out[N:].reshape(n, per_positive, 2)
    assert torch.allclose(synthetic[..., 1], 2 * synthetic[..., 0])  # still on the positives' line
    for p, t in enumerate(T.tolist()):
        expected = NEAREST[t] if mode == "paper" else (t, *NEAREST[t])
        for j, neighbour in enumerate(expected):
            s = synthetic[p, j, 0].item()
            assert min(t, neighbour) <= s <= max(t, neighbour)  # alpha * t + (1 - alpha) * neighbour
        if mode == "released":
            assert torch.allclose(synthetic[p, 0], features[labels > 0.5][p])  # itself: an exact copy


def test_deepsmote_passes_gradients_through_synthetic_rows_to_positives_only():
    features, labels = line_batch()
    features.requires_grad_(True)
    out, _ = smote("paper")(features, labels, torch.Generator().manual_seed(1))
    out[6:].sum().backward()
    assert torch.all(features.grad[labels > 0.5].abs().sum(1) > 0)
    assert torch.all(features.grad[labels < 0.5] == 0)


def test_deepsmote_adds_nothing_in_eval_mode_without_labels_or_with_two_positives():
    features, labels = line_batch()
    layer = smote("released")
    assert layer(features, None)[0] is features
    few = labels.clone()
    few[3:5] = 0.0  # two positives left
    out, out_labels = layer(features, few)
    assert out is features and out_labels is few
    layer.eval()
    out, out_labels = layer(features, labels)
    assert out is features and out_labels is labels


def test_deepsmote_is_deterministic_given_a_generator():
    features, labels = line_batch()
    layer = smote("paper")
    first = layer(features, labels, torch.Generator().manual_seed(7))[0]
    again = layer(features, labels, torch.Generator().manual_seed(7))[0]
    other = layer(features, labels, torch.Generator().manual_seed(8))[0]
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return QSMRimNet(QSMRimNetConfig(radiomics_features=25))


@pytest.fixture(scope="module")
def paper_net():
    torch.manual_seed(0)
    return QSMRimNet(QSMRimNetConfig.paper(radiomics_features=25))


def test_qsmrimnet_parameter_count_matches_the_architecture(net, paper_net):
    # ResNet-18 (2 input channels, bias-free shortcuts): stem 2*64*7^3 + BN 128 = 44,032;
    # layer1 442,880; layer2 1,557,760; layer3 6,228,480; layer4 24,908,800 -> 33,181,952.
    # radiomics MLP: 25*1024+1024 + 2*1024 + 1024*512+512 + 2*512 = 554,496;
    # DeepSMOTE MLP (sum fusion): 2 * (512*512+512 + 2*512) = 527,360; head 512*128+128 + 129 = 65,793.
    assert sum(p.numel() for p in net.encoder.parameters()) == 33_181_952
    assert sum(p.numel() for p in net.parameters()) == 33_181_952 + 554_496 + 527_360 + 65_793
    # concat fusion: the first DeepSMOTE Linear takes 1024 inputs (+512*512 weights)
    assert sum(p.numel() for p in paper_net.parameters()) == 33_181_952 + 554_496 + 527_360 + 512 * 512 + 65_793


@pytest.mark.parametrize("size", [24, 28, 32])
def test_qsmrimnet_eval_forward_shapes(net, size):
    net.eval()
    with torch.no_grad():
        logits, labels = net(torch.randn(2, 3, size, size, size), torch.randn(2, 25))
    assert logits.shape == (2,) and labels is None and torch.isfinite(logits).all()


def test_last_stage_stride_switch_sets_the_final_feature_map(net, paper_net):
    x = torch.randn(2, 2, 32, 32, 32)
    paper = paper_net.eval()
    with torch.no_grad():
        stem = lambda n: n.layer3(n.layer2(n.layer1(n.maxpool(n.act(n.bn1(n.conv1(x)))))))  # noqa: E731
        assert net.eval().encoder.layer4(stem(net.encoder)).shape[-3:] == (2, 2, 2)  # 32 -> 16 -> 8 -> 4 -> 2 -> 2
        assert paper.encoder.layer4(stem(paper.encoder)).shape[-3:] == (1, 1, 1)


def test_qsmrimnet_training_oversamples_and_backpropagates(net):
    net.train()
    net.zero_grad()
    labels = torch.tensor([1.0, 0.0, 1.0, 1.0])
    generator = torch.Generator().manual_seed(0)
    logits, out_labels = net(torch.randn(4, 3, 24, 24, 24), torch.randn(4, 25), labels, generator)
    assert logits.shape == (4 + 3 * 3,) and torch.equal(out_labels[:4], labels) and out_labels[4:].eq(1).all()
    torch.nn.functional.binary_cross_entropy_with_logits(logits, out_labels).backward()
    for module in (net.encoder.conv1, net.radiomics[0], net.smote_mlp[0], net.head[-1]):
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0


def test_qsmrimnet_rejects_unknown_fusion():
    with pytest.raises(ValueError, match="fusion"):
        QSMRimNet(QSMRimNetConfig(fusion="mean"))


class FixedLogits(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x, features):
        return self.logits


def test_seed_vote_thresholded_is_the_majority_vote_at_every_threshold():
    logits = np.array([[2.0, -1.5, 0.4, -0.4], [1.4, 0.8, -0.4, -2.0], [-2.0, -0.8, 0.9, 0.1]])
    vote = SeedVote([FixedLogits(row) for row in logits])
    median = vote(torch.zeros(4, 2, 4, 4, 4), torch.zeros(4, 3)).numpy()
    np.testing.assert_allclose(median, [1.4, -0.8, 0.4, -0.4])
    for threshold in np.linspace(-2.5, 2.5, 51):
        majority = (logits >= threshold).sum(axis=0) >= 2
        np.testing.assert_array_equal(median >= threshold, majority)
    with pytest.raises(ValueError, match="odd"):
        SeedVote([FixedLogits(row) for row in logits[:2]])
    with pytest.raises(PrlkitError, match="odd"):
        QSMRimNetConfig(seeds=2)


def test_classifier_standardises_with_the_rows_it_is_given_and_saves_the_statistics():
    rng = np.random.default_rng(0)
    train = rng.normal(5.0, 3.0, size=(20, 4))
    train[:, 3] = 7.0  # a constant feature: scale 1, not a division by zero
    torch.manual_seed(0)
    classifier = QSMRimNetClassifier(QSMRimNetConfig(radiomics_features=4)).eval()
    classifier.standardise_from(train)
    expected = (train - train.mean(0)) / np.r_[train[:, :3].std(0), 1.0]
    standardised = classifier.standardise(torch.from_numpy(train))
    assert standardised.dtype == torch.float32
    np.testing.assert_allclose(standardised.numpy(), expected, rtol=1e-6, atol=1e-6)
    x = torch.randn(3, 3, 16, 16, 16)
    with torch.no_grad():
        logits = classifier(x, torch.from_numpy(train[:3]))
        assert torch.equal(logits, classifier.net(x, standardised[:3])[0])
    state = classifier.state_dict()
    assert {"feature_mean", "feature_scale"} <= set(state)
    copy = QSMRimNetClassifier(QSMRimNetConfig(radiomics_features=4)).eval()
    copy.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(copy(x, torch.from_numpy(train[:3])), logits)


def test_calibration_prior_counts_deepsmote_rows():
    # 6 positives of 40, 3 synthetic rows each: (6 + 18) / (40 + 18) of the rows the loss sees are rim+
    labels = np.r_[np.ones(6), np.zeros(34)]
    assert smote_prior(labels, 3) == pytest.approx(24 / 58)
    assert smote_prior(labels, 0) == pytest.approx(6 / 40)


def test_defaults_follow_the_paper_schedule_features_and_vote():
    from prlkit.config import get_profile
    from prlkit.methods.registry import method_config
    from prlkit.train.schedule import learning_rate_at

    assert (QSMRimNetConfig().features, QSMRimNetConfig().seeds, QSMRimNetConfig().radiomics_features) == \
        ("pyradiomics", 3, 527)
    for profile in ("paper", "quick"):
        finetune = method_config("qsmrimnet", get_profile(profile)).finetune
        # a fixed 40 epochs: early stopping can never end training before the milestones, the last epoch is kept
        assert (finetune.max_epochs, finetune.patience, finetune.keep) == (40, 40, "last")
        rates = [learning_rate_at(finetune, epoch) for epoch in range(40)]
        assert [i for i in range(1, 40) if rates[i] < rates[i - 1]] == [20, 28, 36]  # 50/70/90 % of 40
        assert rates[0] == 1e-4 and rates[-1] == pytest.approx(1e-7)


def test_missing_pyradiomics_is_one_clear_error_not_a_silent_switch(monkeypatch):
    from prlkit.config import get_profile
    from prlkit.methods import qsmrimnet
    from prlkit.methods.contract import TrainingJob
    from prlkit.methods.registry import method_config

    monkeypatch.setattr(qsmrimnet, "find_spec", lambda name: None)
    config = method_config("qsmrimnet", get_profile("quick"))
    with pytest.raises(PrlkitError) as error:  # before touching the data
        qsmrimnet.train_qsmrimnet(TrainingJob("qsmrimnet", None, np.arange(3), np.arange(3), config, None,
                                              torch.device("cpu")))
    message = str(error.value)
    assert "\n" not in message and "pip install --no-build-isolation pyradiomics==3.0.1" in message
    assert "features: first_order" in message
    qsmrimnet.require_feature_set("first_order")  # the explicit choice needs nothing


@pytest.mark.parametrize(("n", "sizes"), [(9, [4, 5]), (8, [4, 4]), (7, [4, 3]), (1, [1])])
def test_a_one_sample_remainder_joins_the_previous_batch(n, sizes):
    from prlkit.methods.qsmrimnet import QSMRimNetTraining

    batches = QSMRimNetTraining(None, n, 4).batches(torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == sizes
    assert sorted(torch.cat(batches).tolist()) == list(range(n))


def test_a_training_step_on_the_merged_remainder_runs_where_one_sample_crashes():
    from prlkit.methods.qsmrimnet import QSMRimNetTraining

    torch.manual_seed(0)
    classifier = QSMRimNetClassifier(QSMRimNetConfig(radiomics_features=4, seeds=1)).train()
    stage = QSMRimNetTraining(classifier, 5, 4)  # 4 + 1 -> one batch of 5
    x, features, y = torch.randn(5, 2, 16, 16, 16), torch.randn(5, 4), torch.tensor([1, 0, 1, 0, 0])
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        stage.loss(x[:1], y[:1], features[:1])  # what the unmerged remainder did
    for index in stage.batches(torch.Generator().manual_seed(0)):
        assert torch.isfinite(stage.loss(x[index], y[index], features[index]))


def test_model_files_from_before_the_paper_defaults_still_load(tmp_path):
    """A QSMRim-Net model.json written before `features` and `seeds` were recorded keeps its first-order
    features and its single network (today's defaults are 527 pyradiomics features and 3 seeds)."""
    import dataclasses
    import json

    from prlkit.config import get_profile
    from prlkit.data.features import feature_names
    from prlkit.eval.calibration import PriorShift
    from prlkit.methods.trained import TrainedModel, load_trained_model
    from prlkit.models.baselines.qsmrimnet import build_qsmrimnet

    settings = QSMRimNetConfig(features="first_order", seeds=1, radiomics_features=len(feature_names("first_order")))
    model = TrainedModel(network="qsmrimnet", method="qsmrimnet", module=build_qsmrimnet(settings),
                         model_config=dataclasses.asdict(settings),
                         config=get_profile("quick"), threshold=0.5, calibrator=PriorShift(0.5, 0.5),
                         training={"features": list(feature_names("first_order"))})
    model.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    del meta["model_config"]["features"], meta["model_config"]["seeds"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    loaded = load_trained_model(tmp_path)
    assert loaded.feature_set == "first_order" and loaded.model_config["seeds"] == 1
