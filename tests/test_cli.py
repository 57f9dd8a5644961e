"""The command line wiring: help, version, and one-line errors with a non-zero exit."""

import pytest

from prlkit import __version__
from prlkit.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


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
