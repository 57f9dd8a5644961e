"""Errors that prlkit reports to the user as one line, naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class PrlkitError(Exception):
    """A problem with the user's input or request; the CLI prints it as one line and exits 1."""


class InputFileError(PrlkitError):
    """A specific input file is missing, unreadable or inconsistent."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
