"""Stale, reused and foreign locks: a reused pid does not block, another host's lock names the
command that breaks it, and set-aside files never overwrite each other."""

import datetime as _dt
import json
import os
import re
import socket
import subprocess
import sys

import pytest

from napari_ultramn import holders
from napari_ultramn.annotation import store as store_mod
from napari_ultramn.annotation.lock import AnnotationLock, read_lock
from napari_ultramn.annotation.store import AnnotationStore
from napari_ultramn.cli import main
from napari_ultramn.errors import ConflictError


def _lock_file(path, **info):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"hostname": socket.gethostname(), "acquired": "t0", **info}))
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_process_start_time_is_field_22_of_proc_stat():
    mine = holders.process_start_time(os.getpid())
    assert isinstance(mine, int) and mine == holders.process_start_time(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert holders.process_start_time(child.pid) >= mine
    finally:
        child.kill()
        child.wait()
    assert holders.process_start_time(child.pid) is None


def test_holder_state():
    me = holders.holder_info(command="x")
    assert me["start_time"] == holders.process_start_time(os.getpid())
    assert holders.holder_state(me) == "live"
    assert holders.holder_state({**me, "hostname": "radiology-ws-7"}) == "foreign"
    assert holders.holder_state({**me, "pid": "abc"}) == "stale"
    assert holders.holder_state(None) == "stale"
    if me["start_time"] is not None:  # the pid now belongs to a process that started later
        assert holders.holder_state({**me, "start_time": me["start_time"] - 1}) == "stale"
    assert holders.holder_state({**me, "start_time": None}) == "live"  # unknown: trust the pid


def test_lock_whose_pid_was_reused_is_taken_over(tmp_path):
    start = holders.process_start_time(os.getpid())
    if start is None:
        pytest.skip("process start times are not available here")
    path = _lock_file(tmp_path / "r1.lock", pid=os.getpid(), start_time=start - 100, token="old")
    with AnnotationLock.acquire(path) as lock:
        assert read_lock(path)["token"] == lock.info["token"]
        assert read_lock(path)["start_time"] == start


def test_live_lock_says_close_it_without_an_unlock_command(tmp_path):
    path = tmp_path / "r1.lock"
    with AnnotationLock.acquire(path), pytest.raises(ConflictError) as err:
        AnnotationLock.acquire(path, who="clip 'c0' of rater 'r1'")
    assert str(err.value).endswith(f"close it there first. Lock file: {path}")


def test_foreign_lock_names_the_command_that_breaks_it(tmp_path, capsys):
    path = _lock_file(tmp_path / "c0" / "r1.lock", pid=os.getpid(), hostname="radiology-ws-7", command="napari")
    with pytest.raises(ConflictError) as err:
        AnnotationLock.acquire(path, who="clip 'c0' of rater 'r1'")
    assert str(err.value) == (
        f"clip 'c0' of rater 'r1' is already open in another window (process {os.getpid()} on "
        "radiology-ws-7, since t0); close it there first, or if it is no longer running, break the "
        f"lock with `ultramn unlock {path}`. Lock file: {path}"
    )
    assert main(["unlock", str(path)]) == 0
    assert capsys.readouterr().out == (
        f"{path}: removed (it was held by process {os.getpid()} on radiology-ws-7, since t0, running `napari`)\n"
    )
    AnnotationLock.acquire(path).release()


def test_unlock_refuses_a_live_holder_unless_forced(tmp_path, capsys):
    path = tmp_path / "r1.lock"
    with AnnotationLock.acquire(path) as lock:
        assert main(["unlock", str(path)]) == 2
        err = capsys.readouterr().err
        assert re.fullmatch(
            rf"ultramn unlock: error: {re.escape(str(path))}: held by process {os.getpid()} on "
            rf"{re.escape(socket.gethostname())}, since {re.escape(lock.info['acquired'])}, running `.*`, "
            r"which is still running; stop it first \(or add --force\)\n",
            err,
        )
        assert path.exists()
        assert main(["unlock", str(path), "--force"]) == 0
        assert not path.exists()
    assert main(["unlock", str(path)]) == 2
    assert f"{path}: no lock file here (nothing to unlock)" in capsys.readouterr().err


def _frozen_clock(monkeypatch):
    class Frozen(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 11, 30, 13, 0, 0, 0)

    monkeypatch.setattr(store_mod._dt, "datetime", Frozen)


def test_set_aside_in_the_same_instant_never_overwrites(tmp_path, monkeypatch):
    store = AnnotationStore(tmp_path)
    path = store.path("c0", "r1")
    path.parent.mkdir(parents=True)
    _frozen_clock(monkeypatch)
    ids = iter(["00000000", "00000000", "00000001"])  # the second call first draws the taken name
    monkeypatch.setattr(store_mod, "_random_suffix", lambda: next(ids))
    asides = []
    for content in ("{first", "{second"):
        path.write_text(content)
        asides.append(store.set_aside("c0", "r1"))
    assert [p.read_text() for p in asides] == ["{first", "{second"]
    assert asides[0].name == "r1.json.corrupt-20261130T130000.000000-00000000"
    assert asides[0] != asides[1] and not path.exists()


def test_set_aside_without_hard_links_copies_exclusively(tmp_path, monkeypatch):
    store = AnnotationStore(tmp_path)
    path = store.path("c0", "r1")
    path.parent.mkdir(parents=True)
    path.write_text("{bad")

    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(store_mod.os, "link", no_links)
    aside = store.set_aside("c0", "r1")
    assert aside.read_text() == "{bad" and not path.exists()
