"""Atomic output files: all or nothing, with ordinary permissions."""

import os

import pytest

from cosim.files import StagedFiles, write_atomic


def test_staged_files_appear_together_with_umask_permissions(tmp_path):
    with StagedFiles(tmp_path / "run") as files:
        files.stage("a.json").write_text("1")
        files.stage("b.json").write_text("2")
        assert not (tmp_path / "run" / "a.json").exists()  # nothing visible before commit
    assert (tmp_path / "run" / "a.json").read_text() == "1"
    assert (tmp_path / "run" / "b.json").read_text() == "2"
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "run" / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["a.json", "b.json"]


def test_a_failed_write_leaves_nothing(tmp_path):
    (tmp_path / "old.json").write_text("keep")

    def fail(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "old.json", fail)
    assert (tmp_path / "old.json").read_text() == "keep"
    assert [p.name for p in tmp_path.iterdir()] == ["old.json"]
