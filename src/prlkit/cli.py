"""The `prlkit` command line: one sub-command per job; each lives in `prlkit.commands.<name>`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from prlkit import __version__
from prlkit.errors import PrlkitError

# Sub-command modules, in the order `prlkit --help` lists them. Each module defines
# `register(subparsers)` (adds its parser, sets `func`) and its own `run(args) -> int`.
COMMANDS = ["simulate", "prepare", "validate", "train", "cv", "compare", "predict", "segment", "report",
            "convert_checkpoint", "demo"]


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="prlkit",
        description="Paramagnetic rim lesion (PRL) classification from QSM + FLAIR MRI.",
    )
    parser.add_argument("--version", action="version", version=f"prlkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debug messages")
    parser.add_argument("--threads", type=positive_int, metavar="N",
                        help="CPU threads for PyTorch (default: its own choice; on a busy machine 1 is often "
                             "faster: benchmarks/README.md)")  # fmt: skip
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"prlkit.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `prlkit` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="prlkit: %(levelname)s: %(message)s",
    )
    logging.captureWarnings(True)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.threads:
        import torch  # only here: most commands never need it

        torch.set_num_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except PrlkitError as error:
        print(f"prlkit: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
