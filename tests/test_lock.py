"""Lock files: one opener per rater and clip; stale locks of dead processes are taken over."""

import json
import socket
import subprocess
import sys

import pytest

from napari_ultramn.annotation.lock import AnnotationLock, read_lock
from napari_ultramn.errors import ConflictError


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_records_holder_and_blocks_a_second_opener(tmp_path):
    path = tmp_path / "c0" / "r1.lock"
    with AnnotationLock.acquire(path, who="clip 'c0' of rater 'r1'") as lock:
        info = read_lock(path)
        assert info["hostname"] == socket.gethostname() and info["pid"] == lock.info["pid"]
        with pytest.raises(
            ConflictError,
            match=rf"clip 'c0' of rater 'r1' is already open in another window \(process {info['pid']} on {socket.gethostname()}, since .*Lock file: .*r1\.lock",
        ):
            AnnotationLock.acquire(path, who="clip 'c0' of rater 'r1'")
    assert not path.exists()
    assert not list(path.parent.glob(".*partial"))


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    path = tmp_path / "r1.lock"
    path.write_text(json.dumps({"pid": _dead_pid(), "hostname": socket.gethostname(), "token": "old"}))
    lock = AnnotationLock.acquire(path)
    assert read_lock(path)["token"] == lock.info["token"]
    lock.release()


@pytest.mark.parametrize("content", ["", "{not json", json.dumps([1, 2])])
def test_unreadable_lock_is_treated_as_stale(tmp_path, content):
    path = tmp_path / "r1.lock"
    path.write_text(content)
    AnnotationLock.acquire(path).release()
    assert not path.exists()


def test_lock_of_another_host_is_respected(tmp_path):
    path = tmp_path / "r1.lock"
    path.write_text(json.dumps({"pid": _dead_pid(), "hostname": "radiology-ws-7", "acquired": "t0"}))
    with pytest.raises(ConflictError, match="on radiology-ws-7, since t0"):
        AnnotationLock.acquire(path)


def test_release_never_removes_a_lock_taken_over_by_someone_else(tmp_path):
    path = tmp_path / "r1.lock"
    lock = AnnotationLock.acquire(path)
    path.write_text(json.dumps({"pid": 1, "hostname": "elsewhere", "token": "theirs"}))
    lock.release()
    assert read_lock(path)["token"] == "theirs"
