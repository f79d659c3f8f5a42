"""Active time per clip (idle excluded), saved in the annotation; the queue's median and time left;
rater counts in review; truthful texts (pre-annotation plane, empty model masks). No display."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from napari_ultramn.annotation.clip_annotation import ClipAnnotation
from napari_ultramn.annotation.controller import IDLE_SECONDS, ActivityClock, AnnotatorController
from napari_ultramn.annotation.queue import ClipQueue, duration
from napari_ultramn.annotation.session import AnnotationSession
from napari_ultramn.annotation.store import load_annotation_file, validate_annotation
from napari_ultramn.errors import SchemaError
from tests.fakes import FakeClock
from tests.project_factory import disk, make_clip_project

SHAPE = (16, 20)


@pytest.fixture
def project(tmp_path):
    return make_clip_project(tmp_path / "proj", n_clips=5, n_frames=4, shape=SHAPE)


def test_the_clock_counts_pauses_up_to_the_idle_threshold():
    clock = FakeClock()
    c = ActivityClock(idle_seconds=60, clock=clock)
    assert c.tick() == 0.0  # stopped until a clip opens
    c.restart()
    clock.wait(12.5)
    assert c.tick() == 12.5
    clock.wait(600)  # away for ten minutes: only the first minute counts
    assert c.tick() == 60.0
    clock.wait(3)
    assert c.tick() == 3.0
    c.stop()
    clock.wait(5)
    assert c.tick() == 0.0
    assert IDLE_SECONDS == 60.0
    with pytest.raises(ValueError, match="idle_seconds must be positive, got 0"):
        ActivityClock(idle_seconds=0)


def test_active_time_is_saved_with_the_work_and_summed_over_sessions(project):
    clock = FakeClock()
    ctl = AnnotatorController(clock=clock)
    ctl.attach(AnnotationSession.open(project, "c0", "r1"))
    clock.wait(20)
    assert ctl.active() == 20  # looking before the first stroke counts too
    assert project.annotations.load("c0", "r1") is None  # ...but writes nothing by itself
    clock.wait(5)
    ctl.active()
    ctl.session.set_mask(0, disk(SHAPE, (8, 8), 4))  # the first change writes the time so far
    assert project.annotations.load("c0", "r1").active_seconds == 25
    clock.wait(900)  # a long pause, then one more action: 60 s, not 900
    ctl.active()
    ctl.session.undo()  # undo never takes time back
    assert ctl.session.annotation.active_seconds == 85
    clock.wait(7)
    ctl.active()  # after the last change: written on close
    ctl.detach().close()
    saved = project.annotations.load("c0", "r1")
    assert (saved.active_seconds, saved.work_sessions) == (92, 1)

    ctl.attach(AnnotationSession.open(project, "c0", "r1"))
    clock.wait(8)
    ctl.active()
    ctl.detach().close()
    saved = project.annotations.load("c0", "r1")
    assert (saved.active_seconds, saved.work_sessions) == (100, 2)
    ctl.attach(AnnotationSession.open(project, "c0", "r1"))  # opened and left without an action
    ctl.detach().close()
    assert project.annotations.load("c0", "r1").work_sessions == 2


def test_looking_at_a_clip_without_changing_it_creates_no_file(project):
    clock = FakeClock()
    ctl = AnnotatorController(clock=clock)
    ctl.attach(AnnotationSession.open(project, "c1", "r1"))
    clock.wait(30)
    ctl.active()
    ctl.detach().close()
    # a file would make r1 a rater of c1 for agreement and consensus
    assert not project.annotations.exists("c1", "r1") and project.annotations.raters("c1") == []


def test_background_autosave_carries_the_time(project):
    clock = FakeClock()
    ctl = AnnotatorController(clock=clock)
    ctl.attach(AnnotationSession.open(project, "c2", "r1", background_save=True))
    clock.wait(4)
    ctl.active()
    ctl.session.set_flag("poor", "shadow")
    ctl.session.flush()
    assert project.annotations.load("c2", "r1").active_seconds == 4
    clock.wait(6)
    ctl.active()
    ctl.detach().close()
    assert project.annotations.load("c2", "r1").active_seconds == 10


def test_older_files_without_active_time_still_load_and_the_schema_checks_it(project):
    ann = ClipAnnotation("c0", "r1", 4, SHAPE, clip_plane="transverse_wrist", active_seconds=42.254, work_sessions=3)
    obj = ann.to_json()
    assert (obj["active_seconds"], obj["work_sessions"]) == (42.25, 3)
    back = ClipAnnotation.from_json(obj)
    assert (back.active_seconds, back.work_sessions) == (42.25, 3)
    old = {k: v for k, v in obj.items() if k not in ("active_seconds", "work_sessions")}
    validate_annotation(old)
    path = project.annotations.path("c0", "r1")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old))
    loaded = load_annotation_file(path)
    assert (loaded.active_seconds, loaded.work_sessions) == (0.0, 0)  # unknown, not an error
    with pytest.raises(SchemaError, match="active_seconds"):
        validate_annotation({**obj, "active_seconds": -1})


def _finish(project, clip_id, seconds, rater="r1", status="done", quality=None):
    clock = FakeClock()
    ctl = AnnotatorController(clock=clock)
    ctl.attach(AnnotationSession.open(project, clip_id, rater))
    clock.wait(seconds)
    ctl.active()
    ctl.session.set_mask(0, np.zeros(SHAPE, bool))
    if quality:
        ctl.set_quality(quality)  # through the controller, as the dock does
    if status:
        ctl.session.set_status(status)
    ctl.detach().close()


def test_the_queue_gives_the_median_time_per_done_clip_and_the_time_left(project):
    q = ClipQueue(project, "r1")
    assert q.median_seconds() is None and q.progress_text() == "0 / 5 clips done"  # no estimate yet
    _finish(project, "c0", 40)
    _finish(project, "c1", 60)
    _finish(project, "c2", 50, status=None)  # in progress: not in the median, still to do
    _finish(project, "c3", 10, status=None, quality="unusable")  # needs no more work
    _finish(project, "c4", 500, rater="r2")  # another rater's clip and time
    q.refresh()
    assert q.median_seconds() == 50
    assert q.seconds_left() == 2 * 50  # c2 and c4 still need r1's work
    assert q.progress_text() == "2 / 5 clips done · median 50 s per clip · about 1.7 min left"
    assert q.progress_text(participant="p0") == ("1 / 3 clips done · median 40 s per clip · about 80 s left")
    # each rater's own time: r2's one clip took 500 s of which 60 were active
    assert ClipQueue(project, "r2").progress_text() == "1 / 5 clips done · median 60 s per clip · about 4.0 min left"


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (0, 42.4, 89, 150, 3599, 3600, 11 * 3600 + 20 * 60 + 10)] == [
        "0 s",
        "42 s",
        "89 s",
        "2.5 min",
        "60.0 min",
        "1 h 00 min",
        "11 h 20 min",
    ]


def test_review_counts_human_raters_and_marks_clips_with_two_or_more(project):
    for rater in ("r1", "r2", "model"):
        _finish(project, "c0", 5, rater=rater, status=None)
    _finish(project, "c1", 5, rater="r1", status=None)
    review = ClipQueue(project, "adjudicated", review=True)
    e0, e1, e2 = (review.entry(c) for c in ("c0", "c1", "c2"))
    assert (e0.n_raters, e1.n_raters, e2.n_raters) == (2, 1, 0)  # 'model' is not a rater
    assert e0.multi_rater and not e1.multi_rater
    assert review.line(e0) == "◆ c0   p0   [not started]   2 raters   transverse_wrist"
    assert review.line(e1) == "c1   p1   [not started]   1 rater   transverse_forearm"
    blind = ClipQueue(project, "r1", blind=True)  # blind: other raters are never looked at
    assert blind.entry("c0").n_raters is None and not blind.entry("c0").multi_rater
    assert {(e.plane, e.side) for e in blind.entries()} == {(None, None)}  # nothing from the header
    assert blind.line(blind.entry("c0")) == "c0   p0   [in progress]"
    with pytest.raises(ValueError, match="a queue is either blind or for review, not both"):
        ClipQueue(project, "r1", blind=True, review=True)


def test_blind_sessions_start_without_the_header_plane_at_the_source(project):
    with AnnotationSession.open(project, "c0", "r1") as s:
        assert s.annotation.clip_plane is None
    with AnnotationSession.open(project, "c0", "chief", review=True) as s:
        assert s.annotation.clip_plane == "transverse_wrist"


def _proposal(n, planes, clip_plane, empty=()):
    masks = np.stack([np.zeros(SHAPE, bool) if t in empty else disk(SHAPE, (8, 8), 4) for t in range(n)])
    return SimpleNamespace(masks=masks, confidence=np.full(n, 0.8), frame_planes=planes, clip_plane=clip_plane)


def test_the_pre_annotation_message_names_the_clips_plane(project):
    ctl = AnnotatorController()
    ctl.attach(AnnotationSession.open(project, "c0", "r1"))
    ctl.session.set_mask(3, disk(SHAPE, (8, 8), 3))
    # the frames mostly say forearm, the model's clip-level answer is wrist: the clip gets the
    # model's answer (as 'ultramn preannotate' gives it) and the message names what the clip has
    said = ctl.apply_proposal(
        _proposal(4, ["transverse_forearm"] * 3 + ["transverse_wrist"], "transverse_wrist", empty={1, 2})
    )
    assert ctl.session.annotation.clip_plane == "transverse_wrist"
    assert said == (
        "Model proposal applied to 3 untouched frames, 2 of them with no nerve found "
        "(plane transverse_wrist from the model); your own frames were kept."
    )
    assert ctl.empty_frames().tolist() == [False, True, True, False]
    ctl.session.set_clip_plane("longitudinal_wrist")
    said = ctl.apply_proposal(_proposal(4, ["transverse_forearm"] * 4, "transverse_forearm"))
    assert ctl.session.annotation.clip_plane == "longitudinal_wrist"
    assert said.endswith("(your plane longitudinal_wrist kept); your own frames were kept.")
    assert ctl.empty_frames().tolist() == [False, False, False, False]
    ctl.detach().close()
