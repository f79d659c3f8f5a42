"""Atomic writes: all or nothing, and finished files get the usual permissions."""

import os
import stat

import pytest

from napari_ultramn.atomic import atomic_path, atomic_write_text


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def _write_by_name(path):
    with atomic_path(path) as tmp:
        tmp.write_text("x")


@pytest.mark.parametrize("write", [lambda p: atomic_write_text(p, "x"), _write_by_name])
def test_finished_files_get_the_umask_mode_not_mkstemps_0600(tmp_path, write):
    umask = os.umask(0)
    os.umask(umask)
    target = tmp_path / "report.html"
    write(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(target.stat().st_mode) & stat.S_IRGRP  # readable by the team (umask 022)
