"""The `noisy` generator profile: a noisier site than `default` on the same grid and lesion sizes."""

import argparse

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from prlkit.commands import simulate
from prlkit.synth import cohort
from prlkit.synth.lesions import sample_lesions
from prlkit.synth.profiles import get_profile

SHAPE = (64, 72, 64)  # a reduced grid keeps a subject under a second


def _subjects(profile_name: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[cohort.Subject, np.ndarray]]:
    """Two subjects of seed 7 on the reduced grid, each with its rasterised vein susceptibility."""
    veins = []
    rasterize = cohort.rasterize_veins

    def keep_veins(*args, **kwargs):
        veins.append(rasterize(*args, **kwargs))
        return veins[-1]

    monkeypatch.setattr(cohort, "rasterize_veins", keep_veins)
    profile = get_profile(profile_name, SHAPE)
    return [(cohort.generate_subject(7, i, 2, profile), veins[i]) for i in range(2)]


def _background_noise(subject: cohort.Subject, veins: np.ndarray) -> float:
    """Std of QSM minus its 1-voxel Gaussian smoothing, inside the brain, away from its edge, lesions and veins."""
    keep = ndimage.binary_erosion(subject.qsm != 0, iterations=3)
    keep &= ~ndimage.binary_dilation(subject.labels > 0, iterations=3)
    keep &= ~ndimage.binary_dilation(veins > 0.02, iterations=2)
    residual = subject.qsm - ndimage.gaussian_filter(subject.qsm, 1.0)
    return float(residual[keep].std())


def test_noisy_site_has_more_qsm_noise_and_more_veins(monkeypatch):
    default = _subjects("default", monkeypatch)
    noisy = _subjects("noisy", monkeypatch)
    for (plain, plain_veins), (loud, loud_veins) in zip(default, noisy):
        assert plain.site == loud.site  # the same seed draws the same site: only the profile differs
        assert plain.qsm.shape == loud.qsm.shape == SHAPE
        assert _background_noise(loud, loud_veins) > 1.15 * _background_noise(plain, plain_veins)
        assert (loud_veins > 0.1).sum() > 1.3 * (plain_veins > 0.1).sum()


def test_noisy_lesion_model_has_more_vein_confounders_on_rim_negative_lesions():
    def vein_share(name: str) -> float:
        model = get_profile(name).lesions
        lesions = [lesion for i in range(200)
                   for lesion in sample_lesions(np.random.default_rng([3, i]), model) if not lesion.true_rim]
        return float(np.mean([lesion.confounder in ("vein_cross", "vein_hug") for lesion in lesions]))

    assert vein_share("noisy") > vein_share("default") + 0.08


def test_simulate_cli_selects_the_noisy_profile(tmp_path):
    parser = argparse.ArgumentParser()
    simulate.register(parser.add_subparsers())
    out = tmp_path / "noisy"
    args = parser.parse_args(["simulate", str(out), "--subjects", "1", "--seed", "1", "--synth-profile", "noisy",
                              "--shape", *map(str, SHAPE), "--jobs", "1"])
    assert args.func(args) == 0
    assert "profile noisy" in (out / "dataset_description.json").read_text()
    assert len(pd.read_csv(out / "sourcedata" / "truth.tsv", sep="\t")) >= 1
