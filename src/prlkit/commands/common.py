"""Options shared by several sub-commands: profile and config file."""

from __future__ import annotations

import argparse

from prlkit.config import PROFILES, Config, get_profile, load_config


def add_config_options(parser: argparse.ArgumentParser, default_profile: str = "paper") -> None:
    """`--profile NAME` and `--config FILE` (a config file overrides its own profile's defaults)."""
    parser.add_argument("--profile", choices=sorted(PROFILES), default=default_profile, help="named settings profile")
    parser.add_argument("--config", metavar="FILE", help="YAML/JSON config file (overrides --profile)")


def config_from_args(args: argparse.Namespace) -> Config:
    """The config the options ask for."""
    return load_config(args.config) if args.config else get_profile(args.profile)
