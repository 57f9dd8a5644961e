"""Options shared by several sub-commands: profile, config file, cache and device."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from prlkit.config import PROFILES, Config, get_profile, load_config


def add_config_options(parser: argparse.ArgumentParser, default_profile: str = "paper") -> None:
    """`--profile NAME` and `--config FILE` (a config file overrides its own profile's defaults)."""
    parser.add_argument("--profile", choices=sorted(PROFILES), default=default_profile,
                        help=f"named settings (default {default_profile}): paper = the authors' released network and "
                             "recipe (64^3 patches, 2.2 M parameters, 200+200 epochs: a GPU network); quick = a "
                             "smaller, faster CPU variant (BatchNorm, base width 8, stride-2 stem, 24^3 patches)")
    parser.add_argument("--config", metavar="FILE", help="YAML/JSON config file (overrides --profile)")


def config_from_args(args: argparse.Namespace) -> Config:
    """The config the options ask for."""
    return load_config(args.config) if args.config else get_profile(args.profile)


def with_split_overrides(config: Config, **overrides) -> Config:
    """Apply command-line split options (None = keep); `seed` seeds the split and both training stages."""
    overrides = {key: value for key, value in overrides.items() if value is not None}
    split = dataclasses.replace(config.split, **overrides)
    return dataclasses.replace(
        config,
        split=split,
        pretrain=dataclasses.replace(config.pretrain, seed=split.seed),
        finetune=dataclasses.replace(config.finetune, seed=split.seed),
        segment=dataclasses.replace(config.segment, train=dataclasses.replace(config.segment.train, seed=split.seed)),
    )


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """`--cache-dir` (patch cache), `--device` and `--no-progress`."""
    parser.add_argument("--cache-dir", type=Path, help="patch cache folder (default $PRLKIT_CACHE or ~/.cache/prlkit)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def checked_cohort(dataset: str | Path):
    """The cohort of a BIDS folder or manifest; its first cohort-level problem is the error."""
    from prlkit.data.bids import discover_cohort

    cohort = discover_cohort(dataset)
    if cohort.problems:
        raise cohort_error(cohort.problems)
    return cohort


def require_empty_output(out: Path, resume: bool) -> None:
    """Refuse to train into a folder that already holds something, unless the run is resumed there."""
    from prlkit.errors import PrlkitError

    if out.exists() and any(out.iterdir()) and not resume:
        raise PrlkitError(f"{out}: output folder is not empty; use --resume to continue a run or choose another --out")


def load_patch_set(args: argparse.Namespace, config: Config):
    """The cohort's patch set (from the cache when its settings and files are unchanged)."""
    from prlkit.data.cache import build_patch_set

    return build_patch_set(checked_cohort(args.dataset), config, cache_dir=args.cache_dir,
                           progress=not args.no_progress)  # fmt: skip


def cohort_error(problems: list[str]) -> Exception:
    """The first cohort-level problem as the error, with a pointer to `prlkit validate` for the rest."""
    from prlkit.errors import PrlkitError

    more = f" (and {len(problems) - 1} more problem(s): run `prlkit validate`)" if len(problems) > 1 else ""
    return PrlkitError(problems[0] + more)
