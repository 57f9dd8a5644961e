"""Atomic writes leave either the whole file or nothing."""

import pytest

from prlkit.atomic import atomic_directory, atomic_path, replace_directory, write_text_atomic


def test_atomic_path_keeps_suffix_and_renames(tmp_path):
    target = tmp_path / "sub" / "image.nii.gz"
    with atomic_path(target) as tmp:
        assert tmp.name.endswith(".nii.gz")
        tmp.write_bytes(b"data")
    assert target.read_bytes() == b"data"
    assert list(target.parent.iterdir()) == [target]


def test_atomic_path_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
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
    with pytest.raises(ValueError):
        with atomic_directory(final) as tmp:
            (tmp / "x").write_text("x")
            raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(final) as tmp:
        (tmp / "x").write_text("x")
    assert (final / "x").read_text() == "x"
    with pytest.raises(FileExistsError):
        with atomic_directory(final):
            pass


def test_outputs_get_umask_permissions(tmp_path):
    import os

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
