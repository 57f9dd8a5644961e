"""`prlkit demo`: simulate a cohort, train, predict held-out participants and score them."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="end-to-end demo on a synthetic cohort (minutes on a laptop CPU)",
        description="Simulates a synthetic cohort (physics-based QSM), trains the main method with the quick "
        "profile on three quarters of the participants, predicts the held-out quarter as BIDS derivatives and "
        "scores those predictions against the expert labels. Everything goes to --out.",
    )
    parser.add_argument("--out", type=Path, default=Path("prlkit-demo"), help="output folder (default ./prlkit-demo)")
    parser.add_argument("--subjects", type=int, default=24, help="participants to simulate (default 24)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cohort, split and training")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    parser.add_argument("--synth-profile", default="default", help="synthetic cohort profile (default or tiny)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prlkit.demo import run_demo
    from prlkit.train.loop import resolve_device

    report = run_demo(args.out, args.subjects, args.seed, resolve_device(args.device), args.synth_profile,
                      not args.no_progress)  # fmt: skip
    print((args.out / "demo_results.md").read_text())
    print(f"outputs in {args.out}: data/ (cohort, sourcedata/preview.png), model/, predictions/, demo_results.md")
    return 0 if report["n_lesions"] else 1
