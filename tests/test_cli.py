"""The command line wiring: help, version, and one-line errors with a non-zero exit."""

import argparse
import errno
import logging
import os
import socket
import warnings

import pytest

from prlkit import __version__
from prlkit.cli import bids_app_argv, build_parser, default_threads, main, set_threads
from prlkit.commands import report as report_command


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"prlkit {__version__}\n"


@pytest.fixture
def prlkit_log_level():
    """Restores the `prlkit` logger's level, which main() sets from -v/-q."""
    logger = logging.getLogger("prlkit")
    before = logger.level
    yield logger
    logger.setLevel(before)


@pytest.mark.parametrize(("options", "level"), [
    ([], logging.INFO),
    (["-v"], logging.DEBUG),
    (["--verbose"], logging.DEBUG),
    (["-q"], logging.WARNING),
    (["--quiet"], logging.WARNING),
])
def test_verbose_and_quiet_before_or_after_the_command(monkeypatch, prlkit_log_level, options, level):
    seen = []
    monkeypatch.setattr(report_command, "run", lambda args: seen.append(prlkit_log_level.getEffectiveLevel()))
    assert main([*options, "report", "folder"]) == 0
    assert main(["report", "folder", *options]) == 0
    assert seen == [level, level]


def test_verbose_and_quiet_after_a_nested_command_and_not_together(monkeypatch, prlkit_log_level, capsys):
    from prlkit.commands import segment

    monkeypatch.setattr(segment, "run", lambda args: prlkit_log_level.getEffectiveLevel())
    assert main(["segment", "predict", "data", "--model", "m", "--out", "o", "-q"]) == logging.WARNING
    with pytest.raises(SystemExit):
        main(["report", "folder", "-v", "-q"])
    assert "not allowed with argument" in capsys.readouterr().err


DEVICE_COMMANDS = [
    ["train", "data", "--out", "o"],
    ["cv", "data", "--out", "o"],
    ["predict", "data", "--model", "m", "--out", "o"],
    ["segment", "train", "data", "--out", "o"],
    ["segment", "predict", "data", "--model", "m", "--out", "o"],
    ["demo", "--out", "o"],
]


@pytest.mark.parametrize("command", DEVICE_COMMANDS, ids=lambda command: " ".join(command[:2]))
def test_a_bad_device_is_one_line_before_any_work(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--device", "gpu"]) == 1
    assert capsys.readouterr().err == ("prlkit: error: --device gpu: not a device prlkit runs on; use auto, cpu, cuda "
                                       "or cuda:N\n")
    assert list(tmp_path.iterdir()) == []  # no output folder, no cache


@pytest.mark.parametrize(("gpus", "line"), [
    (0, "--device cuda:9: PyTorch finds no CUDA GPU on this machine; use cpu or auto"),
    (2, "--device cuda:9: this machine has 2 GPU(s), cuda:0 to cuda:1"),
])
def test_a_missing_gpu_is_one_line(monkeypatch, capsys, gpus, line):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert main(["predict", "data", "--model", "m", "--out", "o", "--device", "cuda:9"]) == 1
    assert capsys.readouterr().err == f"prlkit: error: {line}\n"


def test_simulate_synth_profile_and_its_deprecated_alias(capsys):
    parser = build_parser()
    assert parser.parse_args(["simulate", "out"]).synth_profile == "default"
    assert parser.parse_args(["simulate", "out", "--synth-profile", "noisy"]).synth_profile == "noisy"
    assert parser.parse_args(["demo", "--synth-profile", "tiny"]).synth_profile == "tiny"
    assert capsys.readouterr().err == ""
    assert parser.parse_args(["simulate", "out", "--profile", "randomised"]).synth_profile == "randomised"
    assert capsys.readouterr().err == ("prlkit: warning: --profile is deprecated and will be removed in the next "
                                       "release; use --synth-profile\n")
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", "out", "--synth-profile", "paper"])
    assert "invalid choice: 'paper'" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "translated"), [
    (["bids", "out", "participant", "--model", "m", "--participant-label", "01"],
     ["predict", "bids", "--out", "out", "--model", "m", "--participant-label", "01"]),
    (["bids", "out", "group", "--top", "3"], ["report", "out", "--dataset", "bids", "--top", "3"]),
    (["predict", "bids", "participant"], ["predict", "bids", "participant"]),  # a command stays a command
    (["trian", "bids", "--out", "o"], ["trian", "bids", "--out", "o"]),  # a typo is still an unknown command
    (["-v", "bids", "out", "participant"], ["-v", "bids", "out", "participant"]),
])
def test_bids_app_form_is_predict_or_report(argv, translated):
    assert bids_app_argv(argv) == translated


def test_bids_app_form_needs_a_known_level(capsys):
    with pytest.raises(SystemExit):
        main(["bids", "out", "session"])
    assert "invalid choice: 'bids'" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_threads_option_sets_torch_threads(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        main(["--threads", "1", "validate", str(tmp_path)])  # an empty folder: fails, after the option took effect
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit):
        main(["--threads", "0", "validate", str(tmp_path)])
    assert "must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["validate", "data"],
                                     ["segment", "predict", "data", "--model", "m", "--out", "o"]])
def test_threads_after_the_command_is_the_same_option(monkeypatch, command):
    import importlib

    from prlkit import cli

    seen = []
    monkeypatch.setattr(cli, "set_threads", seen.append)
    monkeypatch.setattr(importlib.import_module(f"prlkit.commands.{command[0]}"), "run", lambda args: 0)
    assert main([*command, "--threads", "3"]) == 0
    assert main(["--threads", "2", *command]) == 0
    assert main(command) == 0
    assert seen == [3, 2, None]


def test_quiet_hides_progress_bars(monkeypatch, prlkit_log_level):
    from prlkit.commands import simulate

    seen = []
    monkeypatch.setattr(simulate, "run", lambda args: seen.append(args.no_progress))
    for options in ([], ["-q"], ["--no-progress"], ["-v"]):
        main(["simulate", "out", *options])
    assert seen == [False, True, True, False]


def test_warnings_are_one_line_naming_the_file(bids, tmp_path, capsys):
    (bids / "participants.tsv").unlink()
    # predict warns while finding the sessions, then fails on the missing model
    assert main(["predict", str(bids), "--model", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    tsv = bids / "participants.tsv"
    assert lines[0] == f"prlkit: warning: {tsv}: missing; participants taken from the sub-* folders"
    assert len(lines) == 2 and lines[1].startswith("prlkit: error: ") and ".py" not in "".join(lines)


def _command_raising(monkeypatch, error):
    """`prlkit report` made to raise `error` (or warn, for a Warning) from inside the command."""

    def run(args):
        if isinstance(error, Warning):
            warnings.warn(error, stacklevel=1)
            return 0
        raise error

    monkeypatch.setattr(report_command, "run", run)
    return main(["report", "folder"])


def test_library_warnings_only_with_verbose(monkeypatch, capsys):
    assert _command_raising(monkeypatch, RuntimeWarning("overflow in exp")) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(logging.getLogger("prlkit"), "isEnabledFor", lambda level: True)  # as with -v
    assert _command_raising(monkeypatch, RuntimeWarning("overflow in exp")) == 0
    assert capsys.readouterr().err == "prlkit: warning: overflow in exp (RuntimeWarning)\n"


@pytest.mark.parametrize(("error", "line"), [
    (OSError(errno.EROFS, "Read-only file system", f"out/.prlkit-staging~prlkit-{socket.gethostname()}-7~"),
     "prlkit: error: out: Read-only file system"),
    (OSError(errno.ENOSPC, "No space left on device", "out/.a.tsv~prlkit-h-7~x.tmp.tsv"),
     "prlkit: error: out/a.tsv: No space left on device"),
    (PermissionError(errno.EACCES, "Permission denied", "/data/sub-01"),
     "prlkit: error: /data/sub-01: Permission denied"),
    (KeyboardInterrupt(), "prlkit: interrupted"),
])
def test_os_errors_and_ctrl_c_are_one_line(monkeypatch, capsys, error, line):
    assert _command_raising(monkeypatch, error) == (130 if isinstance(error, KeyboardInterrupt) else 1)
    assert capsys.readouterr().err == line + "\n"


def _options(parser):
    """Every option of `parser` and of its sub-command parsers, nested ones too."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _options(sub)
        elif action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            yield parser, action


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "(default quick)" in " ".join(capsys.readouterr().out.split())
    for parser, action in _options(build_parser()):  # every option with a default says it
        assert "default" in parser._get_formatter()._expand_help(action), (parser.prog, action.dest)


@pytest.mark.parametrize(("available", "load", "threads"), [
    (2, 1.8, 1),  # a busy 2-core machine: one thread
    (2, 0.1, 1),
    (2, 0.0, 2),
    (16, 0.5, 4),  # at most 4
    (16, 14.2, 1),
    (1, 3.0, 1),  # never 0
])
def test_default_threads_are_the_idle_cpus_capped(available, load, threads):
    assert default_threads(available, load) == threads


def test_threads_default_respects_omp_num_threads(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        set_threads(None)
        assert torch.get_num_threads() == before
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
        set_threads(None)
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
