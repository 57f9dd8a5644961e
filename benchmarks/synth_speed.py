"""Wall-clock and CPU time of `prlkit simulate` (default profile), e.g. 30 subjects on 2 cores.

Usage: PYTHONPATH=src python benchmarks/synth_speed.py [--subjects 30] [--jobs 2]
CPU time (this process and its workers) is printed as well: on a shared machine the wall time
depends on the load, the CPU time much less.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from prlkit.synth.cohort import write_cohort
from prlkit.synth.profiles import get_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    profile = get_profile("default")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        load_before = os.getloadavg()[0]
        truth = write_cohort(Path(tmp) / "cohort", args.subjects, args.seed, profile, jobs=args.jobs, progress=False)
        wall = time.perf_counter() - start
    cpu = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for field in ("ru_utime", "ru_stime"))
    print(f"{args.subjects} subjects, grid {profile.shape}, {len(truth)} lesions, jobs={args.jobs}")
    print(f"wall {wall:.1f} s ({wall / args.subjects:.2f} s/subject); CPU {cpu:.1f} s "
          f"({cpu / args.subjects:.2f} CPU-s/subject); "
          f"load average at start {load_before:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
