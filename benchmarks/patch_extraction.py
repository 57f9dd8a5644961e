"""Patch extraction speed: a 30-subject synthetic cohort (112×128×112), uncached and cached.

Usage: python benchmarks/patch_extraction.py [--cohort DIR] [--subjects 30] [--profile paper|quick]
Generates the cohort with `prlkit simulate` settings when --cohort does not exist yet.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from prlkit.config import get_profile
from prlkit.data.bids import discover_cohort
from prlkit.data.cache import build_patch_set
from prlkit.synth.cohort import write_cohort
from prlkit.synth.profiles import get_profile as synth_profile


def measure(cohort_dir: Path, subjects: int = 30, profile: str = "paper") -> dict:
    """Uncached and cached `build_patch_set` seconds on `cohort_dir` (simulated first when it does not exist)."""
    if not (cohort_dir / "participants.tsv").is_file():
        write_cohort(cohort_dir, subjects, 0, synth_profile("default"), jobs=2, preview=False, progress=False)
    cohort = discover_cohort(cohort_dir)
    config = get_profile(profile)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        patch_set = build_patch_set(cohort, config, cache_dir=Path(cache), progress=False)
        uncached = time.perf_counter() - start
        start = time.perf_counter()
        build_patch_set(cohort, config, cache_dir=Path(cache), progress=False)
        cached = time.perf_counter() - start
    return {"sessions": len(cohort.sessions), "lesions": len(patch_set.lesions), "patches": patch_set.patches.shape[0],
            "patch": config.patches.size, "profile": profile, "uncached_s": uncached, "cached_s": cached}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=Path(tempfile.gettempdir()) / "prlkit-bench-cohort-30")
    parser.add_argument("--subjects", type=int, default=30)
    parser.add_argument("--profile", default="paper")
    args = parser.parse_args()
    r = measure(args.cohort, args.subjects, args.profile)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads")
    print(f"{r['sessions']} sessions, {r['lesions']} lesions, {r['patches']} patches of {r['patch']}^3 "
          f"({args.profile})")
    print(f"uncached: {r['uncached_s']:.2f} s ({r['uncached_s'] / r['sessions']:.3f} s/session); "
          f"cached: {r['cached_s']:.3f} s")


if __name__ == "__main__":
    main()
