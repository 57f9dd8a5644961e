"""The per-subject lesion model: how many lesions, which are Rim+, their sizes, rims,
confounders and expert labels. Pure sampling, no volumes, so its statistics test fast."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prlkit.synth.profiles import LesionModel

LOCATIONS = ("periventricular", "deep", "juxtacortical")
CONFOUNDERS = ("vein_cross", "vein_hug", "hyperintense", "streak")


@dataclass
class LesionSpec:
    """The generating parameters of one lesion (the truth behind its label)."""

    index: int
    location: str
    volume: int  # target volume in voxels; the rendered one may be a little smaller
    true_rim: bool
    rim_strength_ppm: float  # paramagnetic shell above the core, 0 for Rim- lesions
    rim_coverage: float  # fraction of the lesion edge the shell covers, 0 for Rim- lesions
    rim_thickness: int  # voxels of the shell inside the lesion edge
    confounder: str  # "none" or one of CONFOUNDERS
    core_delta_ppm: float  # susceptibility of the lesion core relative to white matter
    confluent_with: int  # index of the earlier lesion it touches, 0 for none
    expert_rim: bool
    consensus_needed: bool


def sample_rim_count(rng: np.random.Generator, model: LesionModel, n_lesions: int) -> int:
    """Rim+ lesions of one subject: gamma-Poisson, so most have none and a few have many."""
    rate = rng.gamma(model.rim_dispersion, model.rim_mean / model.rim_dispersion)
    return int(min(rng.poisson(rate), n_lesions // 2))


def _expert_label(rng: np.random.Generator, model: LesionModel, true_rim: bool, strength: float,
                  coverage: float, confounder: str) -> tuple[bool, bool]:
    """The expert label and consensus flag: ambiguous lesions are sometimes disputed or wrong."""
    ambiguous = (strength * coverage < model.weak_rim_ppm) if true_rim else confounder in ("vein_hug", "streak")
    flagged = ambiguous and rng.random() < model.ambiguous_flag_p
    flipped = flagged and rng.random() < model.ambiguous_flip_p
    return (not true_rim) if flipped else true_rim, bool(flagged)


def sample_lesions(rng: np.random.Generator, model: LesionModel) -> list[LesionSpec]:
    """Draw one subject's lesions (indices 1..n); confluent partners always have lower indices."""
    n = int(rng.integers(model.n_min, model.n_max + 1))
    rims = np.zeros(n, dtype=bool)
    rims[rng.choice(n, size=sample_rim_count(rng, model, n), replace=False)] = True
    specs = []
    for i in range(n):
        true_rim = bool(rims[i])
        median = model.rim_volume_median if true_rim else model.volume_median
        volume = int(np.clip(rng.lognormal(np.log(median), model.volume_sigma), model.volume_min, model.volume_max))
        location = LOCATIONS[rng.choice(3, p=model.location_p)]
        if volume > model.juxtacortical_max:  # large lesions lie deeper, along the ventricles
            location = "periventricular"
        confluent_with = int(rng.integers(1, i + 1)) if i > 0 and rng.random() < model.confluent_p else 0
        if true_rim:
            strength = float(np.clip(rng.lognormal(np.log(model.rim_strength_median), model.rim_strength_sigma),
                                     *model.rim_strength_range))
            coverage = float(rng.uniform(*model.rim_coverage))
            thickness = int(rng.choice([1, 2], p=[0.8, 0.2]))
            confounder = "vein_cross" if rng.random() < model.rim_vein_p else "none"
            core = float(rng.normal(*model.rim_core_ppm))
        else:
            strength, coverage, thickness = 0.0, 0.0, 0
            p = np.asarray(model.confounder_p)
            confounder = str(rng.choice(CONFOUNDERS + ("none",), p=np.append(p, 1.0 - p.sum())))
            hyperintense = confounder == "hyperintense"
            core = float(rng.uniform(0.035, 0.08)) if hyperintense else float(rng.normal(*model.plain_core_ppm))
        expert, flagged = _expert_label(rng, model, true_rim, strength, coverage, confounder)
        specs.append(LesionSpec(i + 1, location, volume, true_rim, strength, coverage, thickness, confounder,
                                core, confluent_with, expert, flagged))
    return specs
