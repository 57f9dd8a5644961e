"""Synthetic MS cohorts with physics-based QSM: the demo's data and the tests' fixture."""

from __future__ import annotations

from prlkit.synth.cohort import generate_subject, write_cohort
from prlkit.synth.profiles import PROFILES, Profile, get_profile

__all__ = ["PROFILES", "Profile", "generate_subject", "get_profile", "write_cohort"]
