"""`prlkit demo`: the end-to-end demo on a synthetic cohort (lands with the training issues)."""

from __future__ import annotations

import argparse

from prlkit.errors import PrlkitError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the end-to-end demo on a synthetic cohort")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise PrlkitError("`prlkit demo` is not implemented yet: it needs the training issues")
