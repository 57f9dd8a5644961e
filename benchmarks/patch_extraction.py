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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=Path(tempfile.gettempdir()) / "prlkit-bench-cohort-30")
    parser.add_argument("--subjects", type=int, default=30)
    parser.add_argument("--profile", default="paper")
    args = parser.parse_args()
    if not (args.cohort / "participants.tsv").is_file():
        write_cohort(args.cohort, args.subjects, 0, synth_profile("default"), jobs=2)
    cohort = discover_cohort(args.cohort)
    config = get_profile(args.profile)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        patch_set = build_patch_set(cohort, config, cache_dir=Path(cache), progress=False)
        uncached = time.perf_counter() - start
        start = time.perf_counter()
        build_patch_set(cohort, config, cache_dir=Path(cache), progress=False)
        cached = time.perf_counter() - start
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads")
    print(f"{len(cohort.sessions)} sessions, {len(patch_set.lesions)} lesions, {patch_set.patches.shape[0]} patches "
          f"of {config.patches.size}^3 ({args.profile})")
    print(f"uncached: {uncached:.2f} s ({uncached / len(cohort.sessions):.3f} s/session); cached: {cached:.3f} s")


if __name__ == "__main__":
    main()
