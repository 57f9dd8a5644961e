"""The `prlkit` command line: one sub-command per job; each lives in `prlkit.commands.<name>`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from prlkit import __version__
from prlkit.errors import PrlkitError

# Sub-command modules, in the order `prlkit --help` lists them. Each module defines
# `register(subparsers)` (adds its parser, sets `func`) and its own `run(args) -> int`.
COMMANDS = ["simulate", "prepare", "validate", "train", "cv", "compare", "predict", "segment", "report",
            "convert_checkpoint", "demo"]
MAX_DEFAULT_THREADS = 4  # small 3D networks gain little from more CPU threads
BIDS_APP_LEVELS = ("participant", "group")  # the analysis levels of a BIDS App (bids-apps.neuroimaging.io)
INTERRUPTED = 130  # the shell's exit code for a process ended by Ctrl-C (128 + SIGINT)

log = logging.getLogger("prlkit")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def default_threads(available: int, load: float, cap: int = MAX_DEFAULT_THREADS) -> int:
    """PyTorch CPU threads when --threads is not given: the idle CPUs of this process, 1 to `cap`.

    Idle = the CPUs the process may run on minus the 1-minute load average: on a busy machine more
    threads than idle cores make PyTorch slower, not faster (benchmarks/README.md).
    """
    return max(1, min(cap, int(available - load)))


def set_threads(requested: int | None) -> None:
    """Apply --threads, or the default rule unless OMP_NUM_THREADS already says; torch is only imported if loaded."""
    if requested is None and "OMP_NUM_THREADS" in os.environ:
        return
    threads = requested
    if threads is None:  # sched_getaffinity (the CPUs this process may use) and getloadavg are not on every OS
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = default_threads(available, os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:  # read by PyTorch (and the BLAS libraries) when they load: commands that never need torch stay fast
        os.environ["OMP_NUM_THREADS"] = str(threads)


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to every option's help that has a default and does not mention it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser with prlkit's help formatter, -v/-q and --threads; its sub-command parsers (nested ones
    too) get them as well, so `prlkit -v --threads 2 train ...` and `prlkit train ... -v --threads 2` are the same."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        # SUPPRESS: a sub-command parser sets log_level only when its own -v/-q is given, never resetting the top's
        verbosity = self.add_mutually_exclusive_group()
        verbosity.add_argument("-v", "--verbose", dest="log_level", action="store_const", const=logging.DEBUG,
                               default=argparse.SUPPRESS, help="also print debug messages and the libraries' warnings")
        verbosity.add_argument("-q", "--quiet", dest="log_level", action="store_const", const=logging.WARNING,
                               default=argparse.SUPPRESS, help="print warnings and errors only, no progress bars")
        self.add_argument("--threads", type=positive_int, metavar="N", default=argparse.SUPPRESS,
                          help=f"CPU threads for PyTorch (default: $OMP_NUM_THREADS when set, else the CPUs this "
                               f"process may use minus the 1-minute load average, at least 1 and at most "
                               f"{MAX_DEFAULT_THREADS}: on a busy machine more threads are slower, "
                               "benchmarks/README.md)")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = Parser(
        prog="prlkit",
        description="Paramagnetic rim lesion (PRL) classification from QSM + FLAIR MRI.",
        epilog="As a BIDS App: `prlkit BIDS_DIR OUTPUT_DIR participant --model DIR [--participant-label L ...] "
        "[predict options]` is `prlkit predict BIDS_DIR --out OUTPUT_DIR ...`; `prlkit BIDS_DIR OUTPUT_DIR group "
        "[report options]` is `prlkit report OUTPUT_DIR --dataset BIDS_DIR ...` (one HTML page of every "
        "participant's predictions).",
    )
    parser.add_argument("--version", action="version", version=f"prlkit {__version__}", help="print "
                        "`prlkit <version>` and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"prlkit.commands.{name}").register(subparsers)
    return parser


def bids_app_argv(argv: list[str]) -> list[str]:
    """The BIDS-Apps call `BIDS_DIR OUTPUT_DIR participant|group [options]` as the prlkit command doing that level's
    work (see the parser's epilog); any other command line unchanged."""
    commands = {name.replace("_", "-") for name in COMMANDS}
    if len(argv) < 3 or argv[0] in commands or argv[0].startswith("-") or argv[2] not in BIDS_APP_LEVELS:
        return argv
    bids_dir, output_dir, level, *options = argv
    if level == "participant":
        return ["predict", bids_dir, "--out", output_dir, *options]
    return ["report", output_dir, "--dataset", bids_dir, *options]


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """warnings.showwarning for the CLI: `prlkit: warning: <file>: <problem>`, no source location.

    prlkit's own warnings start with the file they are about. The libraries' warnings name no input
    file and seldom anything the user can act on: they are shown with --verbose, with their category.
    """
    from prlkit.data.bids import PrlkitWarning

    text = str(message).strip()
    if issubclass(category, PrlkitWarning):
        print(f"prlkit: warning: {text}", file=file or sys.stderr)
    elif log.isEnabledFor(logging.DEBUG):
        print(f"prlkit: warning: {text} ({category.__name__})", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `prlkit` console script; returns the process exit code."""
    from prlkit.atomic import public_path

    parser = build_parser()
    args = parser.parse_args(bids_app_argv(sys.argv[1:] if argv is None else argv))
    level = getattr(args, "log_level", logging.INFO)
    logging.basicConfig(level=level, format="prlkit: %(levelname)s: %(message)s")
    log.setLevel(level)  # also where logging was configured before (tests, embedding programs)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if level >= logging.WARNING and hasattr(args, "no_progress"):  # -q: quiet includes the progress bars
        args.no_progress = True
    set_threads(getattr(args, "threads", None))
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            if getattr(args, "device", None) is not None:  # a bad --device fails here, before any data is read
                from prlkit.train.loop import resolve_device

                resolve_device(args.device)
            return int(args.func(args) or 0)
        except PrlkitError as error:
            print(f"prlkit: error: {error}", file=sys.stderr)
            return 1
        except OSError as error:  # a read-only folder, a full disk: the file and the system's reason
            log.debug("traceback", exc_info=True)
            where = f"{public_path(str(error.filename))}: " if error.filename is not None else ""
            print(f"prlkit: error: {where}{error.strerror or error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt as interrupt:
            hint = f"; {interrupt}" if str(interrupt) else ""
            print(f"prlkit: interrupted{hint}", file=sys.stderr)
            return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
