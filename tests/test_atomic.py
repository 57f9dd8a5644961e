"""Atomic writes leave either the whole file or nothing."""

import errno
import os
import socket
import subprocess

import pytest

from prlkit.atomic import (
    atomic_directory,
    atomic_path,
    public_path,
    remove_stale,
    removed_on_failure,
    replace_directory,
    staged_output,
    write_text_atomic,
)


def test_atomic_path_keeps_suffix_and_renames(tmp_path):
    target = tmp_path / "sub" / "image.nii.gz"
    with atomic_path(target) as tmp:
        assert tmp.name.endswith(".nii.gz")
        tmp.write_bytes(b"data")
    assert target.read_bytes() == b"data"
    assert list(target.parent.iterdir()) == [target]


def test_atomic_path_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_write_text_atomic_overwrites(tmp_path):
    target = tmp_path / "a.json"
    write_text_atomic(target, "1")
    write_text_atomic(target, "2")
    assert target.read_text() == "2"


def test_atomic_directory_failure_and_success(tmp_path):
    final = tmp_path / "cohort"
    with pytest.raises(ValueError), atomic_directory(final) as tmp:
        (tmp / "x").write_text("x")
        raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(final) as tmp:
        (tmp / "x").write_text("x")
    assert (final / "x").read_text() == "x"
    with pytest.raises(FileExistsError), atomic_directory(final):
        pass


def test_outputs_get_umask_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        with atomic_directory(tmp_path / "d"):
            pass
    finally:
        os.umask(mask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_replace_directory_swaps_in_exactly_the_new_files(tmp_path):
    final = tmp_path / "images"
    replace_directory(final, {"a.png": b"1", "b.png": b"2"})
    replace_directory(final, {"c.png": b"3"})
    assert {p.name: p.read_bytes() for p in final.iterdir()} == {"c.png": b"3"}
    assert list(tmp_path.iterdir()) == [final]  # no temporary or old folder left
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        replace_directory(tmp_path / "file", {})


def test_a_writer_that_makes_the_file_anew_still_gets_umask_permissions(tmp_path):
    mask = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "w.bin") as tmp:
            tmp.unlink()  # like safetensors, which creates its file itself (0600 from mkstemp would survive)
            tmp.write_bytes(b"x")
            tmp.chmod(0o600)
    finally:
        os.umask(mask)
    assert (tmp_path / "w.bin").stat().st_mode & 0o777 == 0o640


def test_an_os_error_without_a_file_name_names_the_output(tmp_path):
    with pytest.raises(OSError) as error, atomic_path(tmp_path / "a.nii.gz"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert error.value.filename == str(tmp_path / "a.nii.gz") and error.value.errno == errno.ENOSPC


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_only_leftovers_of_ended_processes_on_this_machine_are_stale(tmp_path):
    host = socket.gethostname()
    dead = tmp_path / f".prlkit-staging~prlkit-{host}-{_dead_pid()}~"
    running = tmp_path / f".prlkit-staging~prlkit-{host}-{os.getpid()}~"
    elsewhere = tmp_path / f".prlkit-staging~prlkit-other-host-{_dead_pid()}~"
    nested = tmp_path / "sub-01" / "anat" / f".x.tsv~prlkit-{host}-{_dead_pid()}~abc.tmp.tsv"
    user_file = tmp_path / f"notes~prlkit-{host}-{_dead_pid()}~.txt"  # not hidden: never a prlkit temporary
    for folder in (dead, running, elsewhere):
        folder.mkdir()
    nested.parent.mkdir(parents=True)
    nested.write_text("half")
    user_file.write_text("mine")
    assert sorted(remove_stale(tmp_path)) == sorted([dead, nested])
    assert running.exists() and elsewhere.exists() and user_file.exists()


def test_public_path_gives_the_final_name(tmp_path):
    staging = tmp_path / f".prlkit-staging~prlkit-{socket.gethostname()}-12~"
    with atomic_path(staging / "derivatives" / "sub-01_lesions.tsv") as tmp:
        assert public_path(tmp) == str(tmp_path / "derivatives" / "sub-01_lesions.tsv")
    assert public_path(staging) == str(tmp_path)


def test_staged_output_moves_everything_or_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_output(out) as staging:
        (staging / "a").mkdir()
        (staging / "a" / "x.txt").write_text("x")
        raise RuntimeError("killed")
    assert not out.exists()
    with staged_output(out) as staging:
        (staging / "a").mkdir()
        (staging / "a" / "x.txt").write_text("x")
    assert [p.relative_to(out).as_posix() for p in sorted(out.rglob("*"))] == ["a", "a/x.txt"]
    with pytest.raises(RuntimeError), staged_output(out) as staging:
        (staging / "a").mkdir()
        (staging / "a" / "x.txt").write_text("new")
        raise RuntimeError("killed")
    assert (out / "a" / "x.txt").read_text() == "x" and len(list(out.rglob("*"))) == 2


def test_a_failed_first_run_keeps_only_what_a_rerun_continues_from(tmp_path):
    for keep in (False, True):
        out = tmp_path / f"run-{keep}"
        with pytest.raises(KeyboardInterrupt), removed_on_failure(out, keep_partial=lambda folder, keep=keep: keep):
            (out / "runs").mkdir(parents=True)
            (out / "runs" / "checkpoint.json").write_text("{}")
            raise KeyboardInterrupt
        assert out.exists() == keep
