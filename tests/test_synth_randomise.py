"""The `randomised` generator profile: every subject draws its own settings, reproducibly."""

import numpy as np

from prlkit.synth.cohort import generate_subject
from prlkit.synth.profiles import get_profile
from prlkit.synth.randomise import randomised_profile


def test_each_draw_differs_and_stays_in_its_ranges():
    base = get_profile("randomised")
    draws = [randomised_profile(np.random.default_rng(seed), base) for seed in range(40)]
    volumes = np.array([d.lesions.volume_median for d in draws])
    ratio = np.array([d.lesions.rim_volume_median / d.lesions.volume_median for d in draws])
    noise = np.array([d.field_noise_scale for d in draws])
    assert len(set(volumes)) == 40 and volumes.min() >= 100 and volumes.max() <= 400
    assert ratio.min() < 1 < ratio.max()  # Rim+ lesions are sometimes smaller than Rim- ones
    assert noise.min() < 1 < 2 < noise.max() <= 3  # quieter than `default` and noisier than `noisy`
    assert all(d.lesions.ambiguous_flip_p == 0 and not d.randomise for d in draws)
    assert all(sum(d.lesions.confounder_p) < 1 for d in draws)
    for low, high in [(d.lesions.streak_chi) for d in draws] + [d.lesions.rim_coverage for d in draws]:
        assert 0 < low < high  # every range stays a range (numpy refuses uniform(high, low))


def test_subjects_are_reproducible_and_differ_from_each_other():
    profile = get_profile("randomised", shape=(64, 72, 64))
    a, b, other = (generate_subject(7, index, 3, profile) for index in (0, 0, 1))
    np.testing.assert_array_equal(a.qsm, b.qsm)
    assert a.truth.equals(b.truth)
    assert not np.array_equal(a.qsm, other.qsm)
