"""Every registered CNN method trains through the one harness and round-trips through its model files."""

import numpy as np
import pytest
import torch
from conftest import tiny_config, write_toy_rim_cohort

from prlkit.config import config_from_dict
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set
from prlkit.eval.folds import labelled_lesions, split_development
from prlkit.methods.registry import METHODS, get_method
from prlkit.methods.splits import lesion_split
from prlkit.methods.trained import load_trained_model

TINY = tiny_config()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("harness")
    config = config_from_dict(TINY)
    dataset = write_toy_rim_cohort(root / "bids", n_participants=5)
    patch_set = build_patch_set(discover_cohort(dataset), config, cache_dir=root / "cache", progress=False)
    train, val = split_development(labelled_lesions(patch_set.lesions), val_fraction=0.3, seed=0)
    return patch_set, train, val, config


@pytest.mark.parametrize("method", ["resnet18", "rimnet", "deepprl", "frodo_contrastive"])
def test_method_trains_saves_and_loads(data, method, tmp_path):
    patch_set, train, val, config = data
    spec = get_method(method)
    model, fits = spec.train(patch_set, train, val, spec.config_for(config), tmp_path / "runs", torch.device("cpu"),
                             progress=False)  # fmt: skip
    assert all(fit.epochs_run == 1 for fit in fits.values())
    model.save(tmp_path / "model")
    loaded = load_trained_model(tmp_path / "model")
    assert loaded.method == spec.network and loaded.threshold == model.threshold
    x = lesion_split(patch_set, val).x
    probabilities = model.probabilities(x, torch.device("cpu"))
    np.testing.assert_array_equal(loaded.probabilities(x, torch.device("cpu")), probabilities)
    assert probabilities.shape == (len(val),) and ((probabilities >= 0) & (probabilities <= 1)).all()


def test_every_method_is_described():
    assert all(spec.description for spec in METHODS.values())
    assert {"frodo", "resnet18", "rimnet", "deepprl"} <= set(METHODS)
