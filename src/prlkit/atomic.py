"""Atomic writes: every output appears whole under its final name or not at all.

Temporaries and staging folders carry their owner (`~prlkit-<host>-<pid>~` in the name), so a later
run can tell the leftovers of a killed run on this machine from the work of a run still going.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

STAGING = ".prlkit-staging"
_OWNER = re.compile(r"~prlkit-(?P<host>[^~]+)-(?P<pid>\d+)~")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _owner_tag() -> str:
    return f"~prlkit-{socket.gethostname()}-{os.getpid()}~"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _is_stale(name: str) -> bool:
    """Whether `name` is a temporary or staging folder of a prlkit process on this machine that no longer runs."""
    match = _OWNER.search(name)
    return bool(name.startswith(".") and match and match["host"] == socket.gethostname()
                and not _alive(int(match["pid"])))


def remove_stale(folder: Path | str, recursive: bool = True) -> list[Path]:
    """Remove the temporaries and staging folders that killed prlkit runs left in `folder`; returns them."""
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            if _is_stale(name):
                path = Path(root, name)
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
                removed.append(path)
        dirs[:] = [d for d in dirs if Path(root, d).is_dir()] if recursive else []
    return removed


def public_path(path: Path | str) -> str:
    """The final name of a path inside a staging folder or of a temporary (for messages to the user)."""
    parts = []
    for part in Path(path).parts:
        match = _OWNER.search(part)
        if match and part.startswith("."):
            if part.startswith(STAGING):
                continue
            parts.append(part[1 : match.start()])
        else:
            parts.append(part)
    return str(Path(*parts)) if parts else str(path)


@contextlib.contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only if the block succeeds.

    The temporary name keeps the final suffixes (e.g. `.nii.gz`) so writers that infer the
    format from the name (nibabel, numpy) behave as they would on the final path. An OSError
    without a file name (a full disk during a write) is raised again naming `final`.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(final.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}{_owner_tag()}", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # After writing: mkstemp creates 0600, and some writers (safetensors) create the file anew.
        tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, final)
    except OSError as error:
        if error.filename is None:
            raise OSError(error.errno, error.strerror or str(error), str(final)) from error
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(final: Path | str, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _temporary_folder(final: Path) -> Path:
    """A new folder beside `final`, named for its owner, with the umask's permissions (mkdtemp gives 0700)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}{_owner_tag()}", suffix=".tmp", dir=final.parent))
    tmp.chmod(0o777 & ~_umask())
    return tmp


@contextlib.contextmanager
def atomic_directory(final: Path | str) -> Iterator[Path]:
    """Yield a temporary directory beside `final`; it becomes `final` only if the block succeeds.

    `final` must not exist yet (refusing to merge into an existing folder keeps runs separable).
    """
    final = Path(final)
    if final.exists():
        raise FileExistsError(f"{final}: already exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_folder(final)
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
    fresh = _temporary_folder(final)
    old = fresh.with_name(fresh.name + ".old")
    try:
        for name, data in files.items():
            (fresh / name).write_bytes(data)
        if final.exists():
            os.replace(final, old)
        os.replace(fresh, final)
    finally:
        for leftover in (fresh, old):
            if leftover.exists():
                shutil.rmtree(leftover)


@contextlib.contextmanager
def removed_on_failure(out: Path | str, keep_partial: Callable[[Path], bool] = lambda out: False) -> Iterator[None]:
    """If the block fails and `out` was empty or absent before, remove what it left there unless `keep_partial(out)`
    (checkpoints a rerun continues from): a failed first run leaves no half-written folder."""
    out = Path(out)
    created = not out.exists()
    fresh = created or not any(out.iterdir())
    try:
        yield
    except BaseException:
        if fresh and out.exists() and not keep_partial(out):
            if created:
                shutil.rmtree(out)
            else:
                for child in out.iterdir():
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        raise


@contextlib.contextmanager
def staged_output(out: Path | str, keep_partial: Callable[[Path], bool] = lambda out: False,
                  last: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a staging folder inside `out` whose files move into `out` (same relative paths) if the block succeeds.

    Files named in `last` move last (a model folder is complete once its model.json is there). If the
    block fails the staging folder goes, and so does the rest as :func:`removed_on_failure` says. Killed
    runs' staging folders in `out` are removed first; one left behind marks a run killed while moving files.
    """
    out = Path(out)
    remove_stale(out, recursive=False)
    staging = out / f"{STAGING}{_owner_tag()}"
    with removed_on_failure(out, keep_partial):
        try:
            staging.mkdir(parents=True)
            yield staging
            files = sorted((p for p in staging.rglob("*") if not p.is_dir()), key=lambda p: (p.name in last, str(p)))
            for path in files:
                target = out / path.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
