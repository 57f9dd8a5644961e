"""Named generator profiles: grid size, lesion model and acquisition settings as plain data."""

from __future__ import annotations

from dataclasses import dataclass, replace

from prlkit.errors import PrlkitError
from prlkit.synth.phase import DEFAULT_PHASE_SIGN


@dataclass(frozen=True)
class LesionModel:
    """How lesions are drawn per subject (counts, volumes, rims, confounders, label noise)."""

    n_min: int = 8
    n_max: int = 30
    # Rim+ count per subject ~ negative binomial (gamma-Poisson): many subjects with 0, a few with 4+.
    rim_mean: float = 1.3
    rim_dispersion: float = 0.35
    # Volumes (voxels) log-normal; Rim+ lesions are somewhat larger, as in real cohorts.
    volume_median: float = 210.0
    rim_volume_median: float = 320.0
    volume_sigma: float = 1.0
    volume_min: int = 45
    volume_max: int = 4000
    location_p: tuple[float, float, float] = (0.45, 0.35, 0.20)  # periventricular, deep, juxtacortical
    juxtacortical_max: int = 1500  # larger lesions are placed periventricular
    confluent_p: float = 0.12
    # Rim strength (ppm above the lesion core) log-normal; coverage (fraction of the edge) uniform.
    rim_strength_median: float = 0.12
    rim_strength_sigma: float = 0.5
    rim_strength_range: tuple[float, float] = (0.015, 0.2)
    rim_coverage: tuple[float, float] = (0.35, 1.0)
    # Confounders of Rim- lesions: probabilities of vein_cross, vein_hug, hyperintense, streak.
    confounder_p: tuple[float, float, float, float] = (0.12, 0.10, 0.10, 0.06)
    streak_chi: tuple[float, float] = (0.5, 1.0)  # ppm of the microbleed-like source of a `streak`
    rim_vein_p: float = 0.2  # Rim+ lesions crossed by a central vein
    # Core susceptibility relative to white matter (ppm), normal (mean, SD): Rim+ cores darker than those of
    # Rim- lesions without a confounder (hyperintense ones draw 0.035-0.08), so the core alone is a class cue.
    rim_core_ppm: tuple[float, float] = (-0.006, 0.01)
    plain_core_ppm: tuple[float, float] = (0.012, 0.01)
    # Label noise: ambiguous lesions (weak rims, rim-like confounders) get consensus_needed=1 with
    # this probability, and of those a fraction carries the wrong expert label.
    ambiguous_flag_p: float = 0.3
    ambiguous_flip_p: float = 0.25
    weak_rim_ppm: float = 0.03


@dataclass(frozen=True)
class Profile:
    """A generator profile: voxel grid, vein count, lesion model and how the acquisition of every
    site (`cohort.SITES`) is degraded: QSM field noise times `field_noise_scale`, TKD threshold
    times `tkd_scale` (a lower threshold amplifies noise along the dipole cone: stronger streaking).
    `randomise`: every subject redraws these settings (`prlkit.synth.randomise`). `phase_sign`: the
    phase convention, "negative" (paramagnetic = negative phase) or "positive" (`prlkit.synth.phase`)."""

    name: str
    shape: tuple[int, int, int]
    lesions: LesionModel
    n_medullary_veins: int = 70
    field_noise_scale: float = 1.0
    tkd_scale: float = 1.0
    randomise: bool = False
    phase_sign: str = DEFAULT_PHASE_SIGN


CORE_BALANCED = LesionModel(rim_core_ppm=(0.003, 0.0135), plain_core_ppm=(0.003, 0.0135))

PROFILES: dict[str, Profile] = {
    "default": Profile("default", (112, 128, 112), LesionModel()),
    "tiny": Profile(
        "tiny",
        (64, 72, 64),
        LesionModel(n_min=4, n_max=9, rim_mean=1.0, volume_median=120.0, rim_volume_median=170.0,
                    volume_sigma=0.7, volume_min=40, volume_max=700),
        n_medullary_veins=25,
    ),
    # A noisier site than any of `default`'s: the same grid and lesion model, but twice the QSM
    # field noise, a lower TKD threshold, 1.6x the medullary veins, stronger streak sources and
    # more vein confounders on Rim- lesions (vein_cross, vein_hug, streak).
    "noisy": Profile(
        "noisy",
        (112, 128, 112),
        LesionModel(confounder_p=(0.20, 0.16, 0.10, 0.10), streak_chi=(0.8, 1.6)),
        n_medullary_veins=112,
        field_noise_scale=2.0,
        tkd_scale=0.8,
    ),
    # `default` with one core distribution for Rim+ and plain Rim- lesions (their pooled mean and spread): a
    # test cohort where only the rim tells the classes apart, which shows how much a method leans on the core.
    "core_balanced": Profile("core_balanced", (112, 128, 112), CORE_BALANCED),
    # Domain randomisation for pretraining: each subject draws its own lesion model, vein count and
    # noise (prlkit.synth.randomise); truth labels, no expert label noise.
    "randomised": Profile("randomised", (112, 128, 112), LesionModel(), randomise=True),
    # the same without the core cue, as pretraining data that cannot teach it
    "randomised_core_balanced": Profile("randomised_core_balanced", (112, 128, 112), CORE_BALANCED, randomise=True),
}


def get_profile(name: str, shape: tuple[int, int, int] | None = None) -> Profile:
    """The named profile, with its grid replaced by `shape` when given."""
    if name not in PROFILES:
        raise PrlkitError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}")
    profile = PROFILES[name]
    if shape is not None:
        if len(shape) != 3 or min(shape) < 48:
            raise PrlkitError(f"--shape {shape}: need three sizes of at least 48 voxels")
        profile = replace(profile, shape=tuple(int(n) for n in shape))
    return profile
