"""Atomic writes: every output appears whole under its final name or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only if the block succeeds.

    The temporary name keeps the final suffixes (e.g. `.nii.gz`) so writers that infer the
    format from the name (nibabel, numpy) behave as they would on the final path.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(final.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp creates 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(final: Path | str, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_directory(final: Path | str) -> Iterator[Path]:
    """Yield a temporary directory beside `final`; it becomes `final` only if the block succeeds.

    `final` must not exist yet (refusing to merge into an existing folder keeps runs separable).
    """
    final = Path(final)
    if final.exists():
        raise FileExistsError(f"{final}: already exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp creates 0700
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def replace_directory(final: Path | str, files: dict[str, bytes]) -> None:
    """Make `final` a folder holding exactly `files`: written beside it, then swapped in for an older one.

    Unlike `atomic_directory` an existing folder is replaced (a regenerated report's images).
    """
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise FileExistsError(f"{final}: exists and is not a folder")
    final.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    old = fresh.with_name(fresh.name + ".old")
    try:
        for name, data in files.items():
            (fresh / name).write_bytes(data)
        fresh.chmod(0o777 & ~_umask())
        if final.exists():
            os.replace(final, old)
        os.replace(fresh, final)
    finally:
        for leftover in (fresh, old):
            if leftover.exists():
                shutil.rmtree(leftover)
