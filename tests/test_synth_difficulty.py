"""No single trivial statistic gives the Rim+ label away (reduced-grid cohort, many Rim+ lesions)."""

from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from prlkit.synth.calibration import cohort_features, trivial_aucs
from prlkit.synth.cohort import write_cohort
from prlkit.synth.profiles import get_profile
from test_synth_cohort import assert_confluent_flags

pytestmark = pytest.mark.slow  # the module's cohort takes ~20 s to write


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    tiny = get_profile("tiny")
    # more Rim+ lesions per subject than the real prevalence, for statistical power; the
    # class-conditional distributions of the statistics do not depend on the prevalence
    profile = replace(tiny, lesions=replace(tiny.lesions, rim_mean=4.0))
    root = tmp_path_factory.mktemp("difficulty") / "cohort"
    truth = write_cohort(root, 24, seed=3, profile=profile, jobs=2, progress=False)
    return root, truth


@pytest.fixture(scope="module")
def features(cohort):
    return cohort_features(*cohort, min_voxels=50)


def test_confluent_neighbours_keep_separate_labels(cohort):
    root, truth = cohort
    assert truth["confluent"].sum() >= 4
    assert_confluent_flags(root, truth)


def test_enough_lesions_of_both_classes(features):
    assert features["rim"].sum() >= 20 and (features["rim"] == 0).sum() >= 40


def test_no_trivial_statistic_separates_the_classes(features):
    aucs = trivial_aucs(features)
    assert set(aucs) == {"voxels", "mean_qsm", "location"}
    for name, auc in aucs.items():
        assert auc < 0.75, f"{name} alone separates Rim+ from Rim- (ROC-AUC {auc:.3f})"


def test_trivial_aucs_match_scikit_learn(features):
    y = features["rim"].to_numpy()
    expected = roc_auc_score(y, features["voxels"])
    assert trivial_aucs(features)["voxels"] == pytest.approx(max(expected, 1 - expected))
    rate = features.groupby("location")["rim"].mean()
    assert trivial_aucs(features)["location"] == pytest.approx(roc_auc_score(y, features["location"].map(rate)))


def test_edge_contrast_carries_signal(features):
    """The rim is there to be found: Rim+ lesions have a higher shell-minus-core contrast."""
    rim = features["rim"] == 1
    assert np.median(features.loc[rim, "shell_minus_core"]) > np.median(features.loc[~rim, "shell_minus_core"])
