"""The one atomic file writer: a reader sees the old file or the new one, never half."""

import os

import pytest

from streamface.atomic_write import atomic_write


def test_replaces_the_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write(path, b"old")
    assert atomic_write(path, b"new") == path
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write(path, b"old")
    with pytest.raises(TypeError):
        atomic_write(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


@pytest.mark.parametrize("fsync, flushes", [(True, 1), (False, 0)])
def test_fsync_flushes_the_data_before_the_rename_only_when_asked(tmp_path, monkeypatch, fsync, flushes):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    atomic_write(tmp_path / "a.bin", b"data", fsync=fsync)
    assert len(calls) == flushes
    assert (tmp_path / "a.bin").read_bytes() == b"data"
