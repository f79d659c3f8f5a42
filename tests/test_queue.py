"""The rater's clip queue: statuses from the store, filters, next unlabelled, progress text."""

import numpy as np
import pytest

from napari_ultramn.annotation.queue import ClipQueue
from napari_ultramn.annotation.session import AnnotationSession
from tests.project_factory import make_clip_project


@pytest.fixture
def project(tmp_path):
    return make_clip_project(tmp_path / "proj", n_clips=5, n_frames=3, shape=(8, 8))


def _work(project, clip_id, rater="r1", status=None, quality=None):
    with AnnotationSession.open(project, clip_id, rater) as s:
        s.set_mask(0, np.zeros((8, 8), bool))
        if quality:
            s.set_flag(quality, "bad")
        if status:
            s.set_status(status)


def test_statuses_counts_and_progress(project):
    _work(project, "c0", status="done")
    _work(project, "c1")
    _work(project, "c2", quality="unusable")
    _work(project, "c3", rater="r2", status="done")  # another rater's work does not count
    q = ClipQueue(project, "r1")
    assert [e.clip_id for e in q.entries()] == ["c0", "c2", "c4", "c1", "c3"]  # by participant
    statuses = {e.clip_id: e.display_status for e in q.entries()}
    assert statuses == {"c0": "done", "c1": "in_progress", "c2": "flagged", "c3": "not_started", "c4": "not_started"}
    assert q.progress_text() == "1 / 5 clips done"
    assert q.counts()["flagged"] == 1
    assert q.progress_text(participant="p0") == "1 / 3 clips done"


def test_filters(project):
    _work(project, "c1")
    q = ClipQueue(project, "r1")
    assert [e.clip_id for e in q.entries(participant="p1")] == ["c1", "c3"]
    assert [e.clip_id for e in q.entries(plane="transverse_forearm")] == ["c1", "c3"]
    assert [e.clip_id for e in q.entries(status="in_progress")] == ["c1"]
    with pytest.raises(ValueError, match="unknown status filter 'finished'"):
        q.entries(status="finished")


def test_next_and_previous_unlabelled_skip_done_and_unusable(project):
    _work(project, "c1", status="done")
    _work(project, "c2", quality="unusable")
    q = ClipQueue(project, "r1")
    # queue order: c0 c2 c4 c1 c3 (c1 done, c2 unusable)
    assert q.next_unlabelled("c0") == "c4"
    assert q.next_unlabelled("c4") == "c3"
    assert q.next_unlabelled("c3") == "c0"  # wraps round
    assert q.next_unlabelled("c3", wrap=False) is None
    assert q.next_unlabelled("c4", backwards=True) == "c0"
    assert q.next_unlabelled("c0", participant="p1") == "c3"
    assert q.neighbour("c0", -1) is None and q.neighbour("c0", 1) == "c2"


def test_refresh_sees_new_saves_and_corrupt_files(project):
    q = ClipQueue(project, "r1")
    assert q.entry("c0").status == "not_started"
    _work(project, "c0", status="done")
    path = project.annotations.path("c4", "r1")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{oops")
    q.refresh()
    assert q.entry("c0").status == "done"
    assert q.entry("c4").display_status == "corrupt" and not q.entry("c4").needs_work
    assert q.next_unlabelled("c2") == "c1"  # the corrupt c4 is skipped
