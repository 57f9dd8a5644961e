"""The per-subject lesion model: counts, Rim+ prevalence and concentration, volumes, labels."""

import numpy as np
import pytest

from prlkit.synth.lesions import sample_lesions
from prlkit.synth.profiles import get_profile


@pytest.fixture(scope="module")
def subjects():
    model = get_profile("default").lesions
    return [sample_lesions(np.random.default_rng(np.random.SeedSequence([7, i])), model) for i in range(250)]


def test_lesion_counts_in_range(subjects):
    counts = np.array([len(s) for s in subjects])
    assert counts.min() >= 8 and counts.max() <= 30
    assert counts.max() - counts.min() > 15  # the whole range is used
    for lesions in subjects:
        assert [lesion.index for lesion in lesions] == list(range(1, len(lesions) + 1))
        assert all(lesion.confluent_with < lesion.index for lesion in lesions)


def test_rim_prevalence_and_concentration(subjects):
    rims = np.array([sum(lesion.true_rim for lesion in s) for s in subjects])
    total = sum(len(s) for s in subjects)
    assert 0.05 <= rims.sum() / total <= 0.10
    assert (rims == 0).mean() >= 0.4  # many participants without any Rim+ lesion
    assert 0.03 <= (rims >= 4).mean() <= 0.3  # a few with four or more
    expert = sum(lesion.expert_rim for s in subjects for lesion in s)
    assert 0.05 <= expert / total <= 0.10


def test_volumes_lognormal_with_small_lesions(subjects):
    volumes = np.array([lesion.volume for s in subjects for lesion in s])
    assert volumes.min() >= 45 and volumes.max() <= 4000
    assert 0.1 < (volumes < 110).mean() < 0.5  # some fall under the 110-voxel exclusion
    assert (volumes > 1000).mean() > 0.02
    assert abs(np.log(volumes).mean() - np.log(np.median(volumes))) < 0.3  # roughly symmetric in log


def test_label_noise_only_on_ambiguous_lesions(subjects):
    lesions = [lesion for s in subjects for lesion in s]
    wrong = [lesion for lesion in lesions if lesion.expert_rim != lesion.true_rim]
    flagged = [lesion for lesion in lesions if lesion.consensus_needed]
    assert wrong and all(lesion.consensus_needed for lesion in wrong)
    assert 0.01 < len(flagged) / len(lesions) < 0.15
    for lesion in flagged:
        faint_rim = lesion.true_rim and lesion.rim_strength_ppm * lesion.rim_coverage < 0.03
        assert faint_rim or lesion.confounder in ("vein_hug", "streak")


def test_confounders_present_on_rim_negative_lesions(subjects):
    kinds = {lesion.confounder for s in subjects for lesion in s if not lesion.true_rim}
    assert {"vein_cross", "vein_hug", "hyperintense", "streak", "none"} <= kinds


def _cores(lesion_lists):
    """Core offsets (ppm) of Rim+ lesions and of Rim- lesions without a confounder."""
    lesions = [lesion for s in lesion_lists for lesion in s]
    rim = np.array([lesion.core_delta_ppm for lesion in lesions if lesion.true_rim])
    plain = np.array([lesion.core_delta_ppm for lesion in lesions
                      if not lesion.true_rim and lesion.confounder == "none"])
    return rim, plain


def test_default_cores_are_a_class_cue_and_core_balanced_removes_it(subjects):
    rim, plain = _cores(subjects)
    assert plain.mean() - rim.mean() == pytest.approx(0.018, abs=0.003)  # Rim+ cores darker by ~1.8 SD
    model = get_profile("core_balanced").lesions
    balanced = [sample_lesions(np.random.default_rng(np.random.SeedSequence([7, i])), model) for i in range(250)]
    rim, plain = _cores(balanced)
    assert abs(plain.mean() - rim.mean()) < 0.003 and rim.std() == pytest.approx(plain.std(), rel=0.15)
    assert 0.5 * (plain.mean() + rim.mean()) == pytest.approx(0.003, abs=0.002)
    assert [len(s) for s in balanced] == [len(s) for s in subjects]  # only the cores differ


def test_randomised_core_balanced_redraws_the_lesion_model_but_keeps_one_core_distribution():
    from prlkit.synth.randomise import randomised_profile

    base = get_profile("randomised_core_balanced")
    drawn = [randomised_profile(np.random.default_rng(i), base).lesions for i in range(5)]
    assert len({model.rim_strength_median for model in drawn}) == 5  # redrawn per subject
    assert {(model.rim_core_ppm, model.plain_core_ppm) for model in drawn} == {((0.003, 0.0135), (0.003, 0.0135))}
    assert get_profile("randomised").lesions.rim_core_ppm != get_profile("randomised").lesions.plain_core_ppm
