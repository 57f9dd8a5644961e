"""Segmentation building blocks: targets, patch sampling, sliding windows, lesion read-out, metrics, config."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from prlkit.config import SegmentConfig, config_from_dict, get_profile
from prlkit.errors import PrlkitError
from prlkit.eval.folds import split_development
from prlkit.segment.inference import class_probabilities, lesion_region
from prlkit.segment.network import build_segmentation_network
from prlkit.segment.readout import (
    confusion_matrix,
    detection_f1,
    dice_per_class,
    lesion_scores,
    soft_dice,
    soft_dice_terms,
)
from prlkit.segment.sampling import PatchSampler
from prlkit.segment.stage import SegmentationTraining
from prlkit.segment.train import participant_split
from prlkit.segment.volumes import SegmentVolume, class_targets

from conftest import ball

SMALL = SegmentConfig(patch_size=8, channels=(4, 8), strides=(2,), res_units=0, lesion_patches=3, background_patches=2,
                      rounds_per_epoch=2, sw_batch_size=2)


def toy_instances(shape=(20, 18, 16)) -> np.ndarray:
    instances = np.zeros(shape, np.int32)
    instances[ball(shape, (5, 5, 5), 3)] = 3
    instances[ball(shape, (14, 12, 10), 2)] = 7
    instances[ball(shape, (5, 13, 11), 2)] = 4
    return instances


def toy_volume(instances: np.ndarray, rims=(1, 0, 1)) -> SegmentVolume:
    lesions = pd.DataFrame({"index": [3, 4, 7], "rim": pd.array(rims, dtype="Int64"), "excluded": ""})
    rng = np.random.default_rng(0)
    flair = rng.uniform(0.5, 1.0, instances.shape).astype(np.float32)
    flair[:2] = 0  # outside the brain
    session = type("Session", (), {"flair": flair, "instances": instances, "lesions": lesions})()
    image = np.stack([rng.standard_normal(instances.shape), flair, instances > 0]).astype(np.float32)
    return SegmentVolume(session=session, image=image, target=class_targets(instances, lesions))


def test_class_targets_follow_rim_labels_and_unlabelled_lesions_are_non_prl():
    instances = toy_instances()
    lesions = pd.DataFrame({"index": [3, 4, 7], "rim": pd.array([1, pd.NA, 0], dtype="Int64")})
    target = class_targets(instances, lesions)
    assert target.dtype == np.uint8
    assert (target[instances == 3] == 2).all() and (target[instances == 4] == 1).all()
    assert (target[instances == 7] == 1).all() and (target[instances == 0] == 0).all()


def test_sampler_centres_lesion_patches_on_lesion_voxels_and_is_seeded():
    volume = toy_volume(toy_instances())
    sampler = PatchSampler([volume, volume], SMALL.__class__(**{**SMALL.__dict__, "flips": False}))
    rows = sampler.draw(torch.Generator().manual_seed(1))
    assert len(rows) == 2 * 2 * (3 + 2)  # rounds x volumes x (lesion + background)
    assert torch.equal(rows, sampler.draw(torch.Generator().manual_seed(1)))
    assert not torch.equal(rows, sampler.draw(torch.Generator().manual_seed(2)))
    centre = SMALL.patch_size // 2
    targets = sampler.y[rows]
    assert targets.shape == (20, 8, 8, 8) and targets.dtype == torch.long
    on_lesion = targets[:, centre, centre, centre] > 0
    assert int(on_lesion.sum()) >= 2 * 2 * 3  # every lesion-centred patch (background ones may hit lesions too)
    i, j, k = rows[:, 1], rows[:, 2], rows[:, 3]
    assert (volume.session.flair[i, j, k] > 0).all()  # background centres lie in the brain
    np.testing.assert_array_equal(on_lesion.numpy(), volume.target[i, j, k] > 0)


def test_prl_patches_add_centres_on_prl_voxels_of_volumes_with_rim_lesions_only():
    with_rim, without = toy_volume(toy_instances()), toy_volume(toy_instances(), rims=(0, 0, 0))
    config = SegmentConfig(**{**SMALL.__dict__, "flips": False, "prl_patches": 4})
    rows = PatchSampler([with_rim, without], config).draw(torch.Generator().manual_seed(0))
    assert len(rows) == 2 * (2 * (3 + 2) + 4)  # rounds x (volumes x (lesion + background) + PRL on the Rim+ volume)
    centres = with_rim.target[tuple(rows[rows[:, 0] == 0, 1:4].T.numpy())]
    assert (centres == 2).sum() >= 2 * 4
    assert not (without.target[tuple(rows[rows[:, 0] == 1, 1:4].T.numpy())] == 2).any()


def test_flips_cut_image_and_target_alike():
    volume = toy_volume(toy_instances())
    sampler = PatchSampler([volume], SMALL)
    rows = sampler.draw(torch.Generator().manual_seed(0))
    assert rows[:, 4].unique().numel() > 1
    x, y = sampler.x[rows], sampler.y[rows]
    assert x.shape == (len(rows), 3, 8, 8, 8) and x.dtype == torch.float32
    assert torch.equal(x[:, 2], (y > 0).float())  # the mask channel moves with the target


def test_sliding_window_output_is_on_the_input_grid():
    torch.manual_seed(0)
    net = build_segmentation_network(SMALL)
    image = np.random.default_rng(0).standard_normal((2, 19, 23, 13)).astype(np.float32)
    probabilities = class_probabilities(net, image, SMALL, torch.device("cpu"))
    assert probabilities.shape == (3, 19, 23, 13) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(0), 1.0, rtol=1e-5)
    region = (slice(2, 12), slice(0, 23), slice(3, 9))
    cropped = class_probabilities(net, image, SMALL, torch.device("cpu"), region)
    outside = np.ones(image.shape[1:], bool)
    outside[region] = False
    assert (cropped[0][outside] == 1).all() and (cropped[1:, outside] == 0).all()
    np.testing.assert_allclose(cropped[(slice(None), *region)].sum(0), 1.0, rtol=1e-5)


def test_unetr_maps_patches_to_class_logits_and_slides_over_any_grid():
    config = SegmentConfig(network="unetr", patch_size=16, hidden_size=32, num_heads=2, mlp_dim=64, feature_size=4,
                           sw_batch_size=2)
    torch.manual_seed(0)
    net = build_segmentation_network(config)
    assert net(torch.zeros(2, 2, 16, 16, 16)).shape == (2, 3, 16, 16, 16)
    image = np.random.default_rng(0).standard_normal((2, 21, 17, 9)).astype(np.float32)
    assert class_probabilities(net, image, config, torch.device("cpu")).shape == (3, 21, 17, 9)


def test_class_weights_reach_both_loss_terms():
    volume = toy_volume(toy_instances())
    sampler = PatchSampler([volume], SMALL)
    rows = sampler.draw(torch.Generator().manual_seed(0))
    x, y = sampler.x[rows][:, :2], sampler.y[rows]  # QSM and FLAIR
    torch.manual_seed(0)
    net = build_segmentation_network(SMALL)
    losses = {}
    for weights in ((1.0, 1.0, 1.0), (1.0, 1.0, 5.0)):
        config = SegmentConfig(**{**SMALL.__dict__, "class_weights": weights})
        stage = SegmentationTraining(net, sampler, [], config)
        assert torch.equal(stage.criterion.cross_entropy.weight, torch.tensor(weights))
        assert torch.equal(stage.criterion.dice.class_weight, torch.tensor(weights))
        losses[weights] = stage.loss(x, y).item()
    assert losses[(1.0, 1.0, 1.0)] != pytest.approx(losses[(1.0, 1.0, 5.0)])


def test_lesion_region_is_the_grown_bounding_box():
    instances = toy_instances()
    region = lesion_region(instances, margin=2)
    assert region == (slice(0, 19), slice(0, 18), slice(0, 16))
    assert lesion_region(np.zeros((4, 4, 4), int), 2) is None


def test_lesion_scores_map_voxels_to_their_lesion_ids():
    instances = toy_instances()
    probability = np.random.default_rng(3).random(instances.shape)
    table = lesion_scores(probability, instances, np.array([7, 3, 4, 9]))
    assert table["index"].tolist() == [7, 3, 4, 9]
    for row in table.iloc[:3].itertuples():
        voxels = probability[instances == row.index]
        assert row.prl_mean == pytest.approx(voxels.mean()) and row.prl_max == pytest.approx(voxels.max())
    assert np.isnan(table.iloc[3]["prl_mean"])  # a label without voxels


def test_dice_per_class_equals_sklearn_f1_per_class():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, (10, 9, 8))
    predicted = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, 3, target.shape))
    dice = dice_per_class(confusion_matrix(target, predicted))
    reference = f1_score(target.ravel(), predicted.ravel(), labels=[1, 2], average=None)
    assert dice["dice_nonPRL"] == pytest.approx(reference[0]) and dice["dice_PRL"] == pytest.approx(reference[1])
    assert np.isnan(dice_per_class(confusion_matrix(np.zeros(5, int), np.zeros(5, int)))["dice_PRL"])


def test_detection_f1_equals_sklearn():
    labels, decisions = np.array([1, 1, 0, 0, 1, 0]), np.array([1, 0, 0, 1, 1, 0])
    assert detection_f1(labels, decisions) == pytest.approx(f1_score(labels, decisions))


def test_segment_config_profiles_round_trip_and_checks():
    paper, quick = get_profile("paper").segment, get_profile("quick").segment
    assert paper.patch_size == 32 and paper.lesion_patches == 3 and paper.prl_patches == 0
    # the paper; quick: measured
    assert (paper.norm, paper.class_weights, quick.norm) == ("instance", (1, 1, 1), "batch")
    quick = get_profile("quick")
    assert config_from_dict({"profile": "quick", "segment": {"train": {"max_epochs": 3}}}).segment.train.max_epochs == 3
    assert config_from_dict({"profile": "quick"}) == quick
    for bad in ({"network": "vnet"}, {"network": "unetr", "patch_size": 24}, {"network": "unetr", "num_heads": 5},
                {"class_weights": [1, 1]}, {"class_weights": [1, 0, 2]}, {"prl_patches": -1},
                {"channels": [8, 16], "strides": [2, 2]}, {"blend": "max"}, {"patch_size": 12}, {"norm": "group"}):
        with pytest.raises(PrlkitError, match="segment"):
            config_from_dict({"segment": bad})


def test_soft_dice_equals_hard_dice_for_one_hot_probabilities_and_pools_volumes():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 3, (2, 9, 8, 7))
    predicted = np.where(rng.random(target.shape) < 0.6, target, rng.integers(0, 3, target.shape))
    one_hot = [np.eye(3, dtype=np.float32)[p].transpose(3, 0, 1, 2) for p in predicted]
    pooled = soft_dice_terms(target[0], one_hot[0]) + soft_dice_terms(target[1], one_hot[1])
    hard = dice_per_class(confusion_matrix(target, predicted))
    assert soft_dice(pooled) == pytest.approx(np.mean(list(hard.values())))
    uniform = np.full((3, 9, 8, 7), 1 / 3, np.float32)
    assert 0 < soft_dice(soft_dice_terms(target[0], uniform)) < 1


@pytest.mark.parametrize("norm", ["instance", "batch"])
@pytest.mark.parametrize(("network", "channels"),
                         [("unet", (4, 8)), ("basicunet", (4, 4, 8, 8, 8, 4)), ("unetr", (4, 8))])
def test_segment_norm_switch_reaches_every_normalisation_layer(norm, network, channels):
    config = config_from_dict({"profile": "quick", "segment": {
        "norm": norm, "network": network, "channels": channels, "strides": [2], "patch_size": 16, "hidden_size": 16,
        "num_heads": 2, "mlp_dim": 16, "feature_size": 4}}).segment
    expected = {"instance": torch.nn.InstanceNorm3d, "batch": torch.nn.BatchNorm3d}[norm]
    norms = [type(m) for m in build_segmentation_network(config).modules() if "Norm3d" in type(m).__name__]
    assert norms and set(norms) == {expected}


@pytest.mark.parametrize("by", ["participant", "participant_stratified", "lesion"])
def test_segmentation_keeps_participant_splits_and_redraws_a_lesion_split_by_participant(by):
    """The network sees whole volumes: a participant-level split (either kind) is used as given; a
    lesion-level one is redrawn by participant with the same fraction and seed."""
    rows = [{"participant_id": f"sub-{p:02d}", "rim": float(k < p % 3)} for p in range(10) for k in range(4)]
    lesions = pd.DataFrame(rows)
    train_index, val_index = lesions.index[lesions["participant_id"] >= "sub-02"], lesions.index[:8]
    config = config_from_dict({"split": {"by": by}})
    train, val = participant_split(lesions, train_index.to_numpy(), val_index.to_numpy(), config)
    assert not set(train) & set(val) and set(train) | set(val) == set(lesions["participant_id"])
    if by == "lesion":
        _, redrawn = split_development(lesions, by="participant", seed=0)
        assert val == sorted(lesions.loc[redrawn, "participant_id"].unique()) != ["sub-00", "sub-01"]
    else:
        assert val == ["sub-00", "sub-01"]
