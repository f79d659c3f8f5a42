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


def test_stale_temporaries_of_killed_writers_are_removed_fresh_ones_kept(tmp_path):
    import os
    import time

    from napari_ultramn.atomic import remove_stale_temporaries

    (tmp_path / "clips").mkdir()
    stale = [tmp_path / "clips" / ".P1-ab.h5.x1y2.partial", tmp_path / ".clips.json.k3.tmp"]
    fresh = tmp_path / ".r1.json.z9.tmp"  # an autosave being written right now
    keep = [tmp_path / "clips" / "P1-ab.h5", tmp_path / ".secret", fresh]
    for path in [*stale, *keep]:
        path.write_bytes(b"x" * 10)
    old = time.time() - 7200
    for path in stale + [tmp_path / "clips" / "P1-ab.h5"]:
        os.utime(path, (old, old))
    assert remove_stale_temporaries(tmp_path) == (2, 20)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)


def test_secret_mode_and_exclusive_write(tmp_path):
    import stat

    from napari_ultramn.atomic import atomic_write_bytes

    key = tmp_path / "pseudonym.key"
    assert atomic_write_bytes(key, b"first", mode=0o600, exclusive=True)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not atomic_write_bytes(key, b"second", mode=0o600, exclusive=True)  # never replaced
    assert key.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["pseudonym.key"]
