"""Background autosave: the newest state is written, errors reach the caller, close() waits."""

import threading

import numpy as np
import pytest

from napari_ultramn.annotation.autosave import BackgroundSaver, frozen_copy
from napari_ultramn.annotation.session import AnnotationSession
from napari_ultramn.errors import InputError
from tests.project_factory import disk, make_clip_project

SHAPE = (32, 40)


class GatedWriter:
    """A write function that blocks on a gate, so tests decide when a write finishes."""

    def __init__(self):
        self.gate = threading.Event()
        self.started = threading.Event()
        self.written = []

    def __call__(self, item):
        self.started.set()
        assert self.gate.wait(10)
        if isinstance(item, Exception):
            raise item
        self.written.append(item)


def test_items_submitted_during_a_write_are_coalesced_to_the_newest():
    writer = GatedWriter()
    saver = BackgroundSaver(writer)
    saver.submit(1)
    assert writer.started.wait(10)  # the first write is running (and blocked)
    for item in (2, 3, 4):
        saver.submit(item)
    assert not saver.flush(timeout=0.05)  # still blocked
    writer.gate.set()
    assert saver.flush(timeout=10)
    assert writer.written == [1, 4] and saver.superseded == 2 and saver.writes == 2
    saver.close()
    with pytest.raises(RuntimeError, match="closed"):
        saver.submit(5)


def test_a_failed_write_is_raised_once_on_the_callers_thread_and_by_close():
    writer = GatedWriter()
    writer.gate.set()
    saver = BackgroundSaver(writer)
    saver.submit(OSError("disk full"))
    assert saver.flush(timeout=10)
    with pytest.raises(OSError, match="disk full"):
        saver.check()
    saver.check()  # reported once
    saver.submit(7)
    saver.submit(ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        saver.close(timeout=10)
    assert 7 in writer.written or saver.superseded == 1


def test_frozen_copy_is_not_reached_by_later_edits(project):
    with AnnotationSession.open(project, "c0", "r1") as s:
        s.set_mask(0, disk(SHAPE, (16, 10), 6))
        s.set_plane_range(1, 3, "non_standard")
        frozen = frozen_copy(s.annotation)
        s.set_mask(2, disk(SHAPE, (16, 12), 6))
        s.set_plane_range(3, 5, "non_standard")
        s.set_flag("poor", "later")
    assert sorted(frozen.frames) == [0] and len(frozen.plane_ranges) == 1
    assert frozen.quality == "ok" and frozen.frames[0] is not None


@pytest.fixture
def project(tmp_path):
    return make_clip_project(tmp_path / "proj")


def test_background_session_saves_the_state_at_each_change_and_close_waits(project, monkeypatch):
    store = project.annotations
    real_save = store.save
    gate, started = threading.Event(), threading.Event()

    def slow_save(annotation):
        started.set()
        assert gate.wait(10)
        return real_save(annotation)

    monkeypatch.setattr(store, "save", slow_save)
    s = AnnotationSession.open(project, "c0", "r1", background_save=True)
    s.set_mask(0, disk(SHAPE, (16, 10), 6))  # returns while the write waits at the gate
    assert started.wait(10) and store.path("c0", "r1").exists() is False
    s.set_mask(3, disk(SHAPE, (16, 13), 6))
    s.set_flag("poor", "probe slipped")
    lock = store.path("c0", "r1").with_suffix(".lock")
    assert lock.exists()
    gate.set()
    s.close()  # writes the newest state, then releases the lock
    assert not lock.exists()
    back = project.annotations.load("c0", "r1")
    assert back.keyframes() == [0, 3] and (back.quality, back.comment) == ("poor", "probe slipped")
    np.testing.assert_array_equal(back.frames[3].mask, disk(SHAPE, (16, 13), 6))


def test_background_save_failure_reaches_the_next_change_and_is_retried(project, monkeypatch):
    store = project.annotations
    real_save = store.save
    fail = {"on": True}

    def flaky_save(annotation):
        if fail["on"]:
            raise OSError("No space left on device")
        return real_save(annotation)

    monkeypatch.setattr(store, "save", flaky_save)
    with AnnotationSession.open(project, "c0", "r1", background_save=True) as s:
        s.set_mask(0, disk(SHAPE, (16, 10), 6))
        with pytest.raises(InputError, match="No space left") as err:
            s.flush()
        assert "r1.json" in str(err.value) and "still in memory" in str(err.value)
        fail["on"] = False
        s.set_mask(1, disk(SHAPE, (16, 11), 6))  # the whole annotation again: frame 0 too
        s.flush()
    assert project.annotations.load("c0", "r1").keyframes() == [0, 1]


def test_the_writer_waits_for_a_pause_in_the_edits_and_a_flush_writes_at_once():
    writer = GatedWriter()
    writer.gate.set()
    saver = BackgroundSaver(writer, quiet_s=30.0, max_wait_s=60.0)
    saver.submit(1)
    saver.submit(2)
    assert not writer.started.wait(0.3)  # no pause of 30 s yet: nothing written
    assert saver.flush(timeout=10)  # a flush does not wait for the pause
    assert writer.written == [2] and saver.superseded == 1
    saver.submit(3)
    saver.close(timeout=10)  # nor does close
    assert writer.written == [2, 3]


def test_edits_that_never_pause_are_still_written_within_max_wait():
    writer = GatedWriter()
    writer.gate.set()
    saver = BackgroundSaver(writer, quiet_s=30.0, max_wait_s=0.2)
    saver.submit(1)
    for item in range(2, 6):  # a new copy more often than the quiet time
        saver.submit(item)
    assert writer.started.wait(10)  # written after max_wait_s although no pause came
    saver.close(timeout=10)
    assert writer.written[-1] == 5


def test_a_copy_waiting_for_a_pause_is_written_when_python_exits(tmp_path):
    # the saver's thread is a daemon; without the exit hook the pending copy would be dropped
    import subprocess
    import sys
    import textwrap

    out = tmp_path / "written.txt"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from napari_ultramn.annotation.autosave import BackgroundSaver
        saver = BackgroundSaver(lambda item: Path({str(out)!r}).write_text(item), quiet_s=60.0)
        saver.submit("the last edit")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert out.read_text() == "the last edit"
