"""Domain randomisation: every subject of the `randomised` profile draws its own generator settings.

For supervised pretraining on simulated lesions (prlkit's `frodo_simpretrained` variant): a network
that has seen rims of every strength, coverage and thickness, every vein density and noise level,
and Rim+ lesions that are no larger than Rim- ones, has fewer shortcuts (lesion size, one site's
noise) to learn. Ranges go well past `default` and `noisy` on both sides; labels are the truth
(no expert label noise). Each draw uses the subject's own random stream, so cohorts stay
reproducible and independent of `--jobs`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from prlkit.synth.profiles import Profile


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A draw whose logarithm is uniform between log(low) and log(high)."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def randomised_profile(rng: np.random.Generator, base: Profile) -> Profile:
    """One subject's settings: `base` with its lesion model, vein count and acquisition degradation redrawn."""
    volume_median = log_uniform(rng, 100.0, 400.0)
    confounder_scale, streak_scale = rng.uniform(0.5, 2.5), rng.uniform(0.5, 2.0)
    lesions = replace(
        base.lesions,
        rim_mean=rng.uniform(1.5, 5.0),  # more Rim+ than a real cohort: pretraining needs positives
        volume_median=volume_median,
        rim_volume_median=volume_median * rng.uniform(0.6, 1.6),  # size says little about the rim
        rim_strength_median=log_uniform(rng, 0.03, 0.16),
        rim_strength_sigma=rng.uniform(0.3, 0.7),
        rim_coverage=(rng.uniform(0.2, 0.6), 1.0),
        confounder_p=tuple(min(p * confounder_scale, 0.22) for p in base.lesions.confounder_p),
        streak_chi=tuple(chi * streak_scale for chi in base.lesions.streak_chi),
        rim_vein_p=rng.uniform(0.0, 0.4),
        ambiguous_flip_p=0.0,
    )
    return replace(base, lesions=lesions, n_medullary_veins=int(rng.integers(30, 151)),
                   field_noise_scale=log_uniform(rng, 0.5, 3.0), tkd_scale=rng.uniform(0.7, 1.3), randomise=False)
