"""Reading the next clips ahead (plain Python, no display): bounded, cancellable, lock-free, errors
kept until the clip is opened."""

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from napari_ultramn.annotation.prefetch import ClipPrefetcher
from napari_ultramn.annotation.session import AnnotationSession
from napari_ultramn.errors import InputError
from napari_ultramn.io.clip import Clip, LazyFrames
from tests.project_factory import make_clip_project

CLIP_BYTES = 6 * 32 * 40  # make_project's clips: 6 frames of 32x40 uint8


def annotation_locks(project) -> list:
    return sorted(project.annotations.path("c0", "r1").parent.parent.rglob("*.lock"))


@pytest.fixture
def project(tmp_path):
    return make_clip_project(tmp_path / "proj", n_clips=3)


@pytest.fixture
def prefetch(project):
    p = ClipPrefetcher(project)
    yield p
    p.close()


def test_a_prefetched_clip_has_the_files_frames_and_metadata_and_takes_no_lock(project, prefetch):
    prefetch.want(["c1"])
    assert prefetch.wait(timeout_s=10) and prefetch.ready("c1")
    assert annotation_locks(project) == []  # reading ahead never locks an annotation
    assert prefetch.held_bytes == CLIP_BYTES
    clip = prefetch.take("c1")
    on_disk = project.open_clip("c1")
    np.testing.assert_array_equal(clip.to_array(), on_disk.to_array())
    assert (clip.spacing_mm, clip.participant, clip.plane) == (on_disk.spacing_mm, on_disk.participant, on_disk.plane)
    assert clip.extra["clip_id"] == "c1" and "_h5" not in clip.extra  # the file was closed after reading
    assert not prefetch.ready("c1") and prefetch.held_bytes == 0  # handed over, not held twice
    assert prefetch.take("c1") is None
    with AnnotationSession.open(project, "c1", "r1", clip=clip) as s:  # the session uses it as is
        assert s.clip is clip
        assert len(annotation_locks(project)) == 1  # the lock comes with opening


def test_at_most_capacity_clips_and_max_bytes_are_held(project):
    p = ClipPrefetcher(project, capacity=2)
    try:
        p.want(["c0", "c1", "c2"])
        assert p.wait(timeout_s=10)
        assert [cid for cid in ("c0", "c1", "c2") if p.ready(cid)] == ["c0", "c1"]
        assert p.held_bytes == 2 * CLIP_BYTES
    finally:
        p.close()
    small = ClipPrefetcher(project, max_bytes=CLIP_BYTES + 1)
    try:
        small.want(["c0", "c1"])
        assert small.wait(timeout_s=10)
        assert small.held_bytes == CLIP_BYTES  # the second would not fit: it is opened lazily
        assert small.take("c1") is None and small.take("c0") is not None
    finally:
        small.close()
    with pytest.raises(ValueError, match="capacity and max_bytes must be positive"):
        ClipPrefetcher(project, capacity=0)


def test_a_clip_no_longer_wanted_is_dropped(project, prefetch):
    prefetch.want(["c0"])
    assert prefetch.wait(timeout_s=10)
    prefetch.want(["c2"])  # the rater filtered the queue: c0 is no longer next
    assert prefetch.wait(timeout_s=10)
    assert not prefetch.ready("c0") and prefetch.ready("c2") and prefetch.held_bytes == CLIP_BYTES
    assert prefetch.take("c0") is None


class SlowProject:
    """Frames that take their time, so a test can cancel in the middle of a clip."""

    def __init__(self, n_frames=50):
        self.n_frames, self.read = n_frames, []
        self.started = threading.Event()

    def open_clip(self, clip_id):
        frames = np.zeros((self.n_frames, 8, 8), np.uint8)

        def read(i):
            self.read.append(i)
            self.started.set()
            time.sleep(0.01)
            return frames[i]

        return Clip(frames=LazyFrames(read, self.n_frames, (8, 8)), source_path=Path("slow.h5"))

    def clip_path(self, clip_id):
        raise InputError(None, "not a file")


def test_decoding_stops_at_the_next_frame_when_cancelled_and_a_half_clip_is_never_taken():
    project = SlowProject()
    p = ClipPrefetcher(project)
    try:
        p.want(["slow"])
        assert project.started.wait(5)
        assert p.take("slow") is None  # still decoding: the caller opens it itself
        p.want([])
        time.sleep(0.1)
        n = len(project.read)
        time.sleep(0.1)
        assert n == len(project.read) < project.n_frames  # stopped, long before the end
    finally:
        p.close()


def test_a_decoding_error_is_raised_only_when_the_clip_is_opened(project, prefetch):
    (project.root / "clips" / "c1.h5").write_bytes(b"not an hdf5 file")
    prefetch.want(["c1"])
    assert prefetch.wait(timeout_s=10) and prefetch.ready("c1")  # kept, nothing raised yet
    with pytest.raises(InputError, match=r"c1\.h5.*is not a readable HDF5 file"):
        prefetch.take("c1")


def test_a_clip_file_replaced_after_reading_is_not_handed_over(project, prefetch):
    prefetch.want(["c1"])
    assert prefetch.wait(timeout_s=10)
    path = project.root / "clips" / "c1.h5"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # re-ingest replaced it
    assert prefetch.take("c1") is None


def test_close_stops_the_thread_and_later_wishes_are_ignored(project):
    p = ClipPrefetcher(project)
    p.want(["c0"])
    p.close()
    assert p._thread is None or not p._thread.is_alive()
    p.want(["c1"])
    assert p.take("c1") is None and p.held_bytes == 0
