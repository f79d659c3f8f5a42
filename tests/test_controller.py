"""The annotator's Qt-free state: 1-based frames on screen, drafts saved as typed, asking before done."""

import numpy as np
import pytest

from napari_ultramn.annotation.controller import AnnotatorController, runs, span
from napari_ultramn.annotation.session import AnnotationSession
from napari_ultramn.errors import InputError
from tests.project_factory import disk, make_clip_project


@pytest.fixture
def project(tmp_path):
    return make_clip_project(tmp_path / "proj", n_clips=2, n_frames=8, shape=(32, 40))


@pytest.fixture
def ctl(project):
    c = AnnotatorController()
    c.attach(AnnotationSession.open(project, "c0", "r1"))
    yield c
    session = c.detach()
    if session is not None:
        session.close()


def test_spans_are_one_based_and_inclusive():
    assert span(0, 1) == "frame 1" and span(28, 32) == "frames 29–32"
    assert runs([5, 0, 1, 2, 7]) == [(0, 3), (5, 6), (7, 8)]


def test_a_range_typed_as_shown_is_stored_zero_based_half_open(ctl, project):
    assert ctl.label_range(5, 3, "non_standard") == "Frames 3–5 labelled non_standard."
    saved = project.annotations.load("c0", "r1")
    assert [(r.start, r.stop, r.plane) for r in saved.plane_ranges] == [(2, 5, "non_standard")]
    assert saved.frame_planes()[1:6] == [None, "non_standard", "non_standard", "non_standard", None]
    assert ctl.ranges_text() == "frames 3–5 non_standard"
    with pytest.raises(InputError, match="^frames 0–9 are outside this clip's frames 1–8$"):
        ctl.label_range(0, 9, "non_standard")


def test_the_range_key_marks_first_then_last_frame_in_one_based_words(ctl):
    events = []
    ctl.on(events.append)
    ctl.set_frame(4)
    assert ctl.mark_range("non_standard") == (
        "non_standard from frame 5: go to its last frame and press the key again."
    )
    assert ctl.range_start == 4 and "range" in events
    ctl.set_frame(2)
    assert ctl.mark_range("non_standard") == "Frames 3–5 labelled non_standard."
    assert ctl.range_start is None
    assert [(r.start, r.stop) for r in ctl.session.annotation.plane_ranges] == [(2, 5)]


def test_a_typed_comment_is_kept_until_written_and_written_on_detach(project):
    c = AnnotatorController()
    c.attach(AnnotationSession.open(project, "c1", "r1"))
    c.set_comment("shadow over the nerve")
    assert c.draft_dirty and project.annotations.load("c1", "r1") is None  # nothing written yet
    c.detach().close()  # switching clip or closing writes it
    assert project.annotations.load("c1", "r1").comment == "shadow over the nerve"
    c.attach(AnnotationSession.open(project, "c1", "r1"))
    assert c.draft_comment == "shadow over the nerve"
    assert c.cycle_quality() == "poor"  # the quality is written at once, with the comment
    assert project.annotations.load("c1", "r1").quality == "poor"
    c.detach().close()


def test_done_asks_when_the_plane_or_frames_are_missing(ctl, project):
    asked = []
    ctl.session.set_mask(0, disk((32, 40), (16, 12), 4))
    assert not ctl.mark_done(lambda q: asked.append(q) or False)
    assert asked == ["c0: no plane is set; 7 of 8 frames are not traced (frames 2–8). Mark it done anyway?"]
    assert project.annotations.load("c0", "r1").status != "done"
    ctl.session.set_clip_plane("transverse_wrist")
    ctl.set_comment("probe slipped")
    assert ctl.mark_done(lambda q: asked.append(q) or True)
    saved = project.annotations.load("c0", "r1")
    assert (saved.status, saved.comment) == ("done", "probe slipped")
    assert asked[-1] == "c0: 7 of 8 frames are not traced (frames 2–8). Mark it done anyway?"


def test_an_unusable_clip_with_a_plane_is_done_without_a_question(ctl):
    ctl.session.set_clip_plane("transverse_wrist")
    ctl.set_quality("unusable")
    assert ctl.done_questions() == []
    assert ctl.mark_done(lambda q: pytest.fail(f"asked {q!r}"))


def test_propagation_refused_in_one_based_words(ctl):
    ctl.set_frame(3)
    with pytest.raises(InputError, match="^frame 4 has no mask to propagate; trace it first$"):
        ctl.check_propagation(1)
    ctl.session.set_mask(7, disk((32, 40), (16, 12), 4))
    ctl.set_frame(7)
    with pytest.raises(InputError, match="^frame 8: nothing to propagate into in that direction$"):
        ctl.check_propagation(1)
    ctl.check_propagation(-1)  # backwards there is room
    ctl.session.set_mask(7, np.zeros((32, 40), bool))
    with pytest.raises(InputError, match="^frame 8 is traced as 'no nerve': there is nothing to propagate$"):
        ctl.check_propagation(-1)


def test_blind_mode_starts_without_the_header_plane_review_keeps_it(project):
    assert project.clip_record("c0")["plane"] == "transverse_wrist"
    blind = AnnotatorController()
    blind.attach(AnnotationSession.open(project, "c0", "r1"))
    assert blind.blind and blind.session.annotation.clip_plane is None
    assert "plane not set" in blind.frame_text()
    blind.session.set_clip_plane("longitudinal_wrist")  # the rater's own choice is kept
    blind.detach().close()
    again = AnnotatorController()
    again.attach(AnnotationSession.open(project, "c0", "r1"))
    assert again.session.annotation.clip_plane == "longitudinal_wrist"
    again.detach().close()
    review = AnnotatorController(review=True)
    review.attach(AnnotationSession.open(project, "c1", "chief", review=True))
    assert not review.blind and review.session.annotation.clip_plane == project.clip_record("c1")["plane"]
    review.detach().close()


def test_texts_are_about_the_open_clip(ctl):
    assert ctl.save_text() == "c0: no changes yet (saved as you work)"
    ctl.session.set_mask(1, disk((32, 40), (16, 12), 4))
    assert ctl.save_text().startswith("c0: autosaved ") and "(1 saves)" in ctl.save_text()
    ctl.set_frame(1)
    assert ctl.frame_text() == "Frame 2 / 8 · drawn · plane not set · 1 keyframes"
    with pytest.raises(InputError, match="Open a clip first"):
        AnnotatorController().frame_text()


def test_a_blind_queue_never_carries_the_header_plane(project):
    from napari_ultramn.annotation.queue import ClipQueue

    blind, review = ClipQueue(project, "r1", blind=True), ClipQueue(project, "r1")
    assert [e.plane for e in blind.entries()] == [None, None] and blind.planes() == []
    assert [e.plane for e in review.entries()] == ["transverse_wrist", "transverse_forearm"]
    assert blind.next_unlabelled() == "c0"


def test_a_propagation_is_accepted_up_to_the_current_frame(ctl):
    from napari_ultramn.progress import run_to_end

    ctl.session.set_mask(1, disk((32, 40), (16, 12), 5))
    ctl.set_frame(1)
    ctl.check_propagation(1)
    said = ctl.propagated(run_to_end(ctl.session.propagation(1, 1)))
    assert said.startswith("Propagated into frames 3–8 (") and "Alt-A" in said
    ctl.set_frame(4)  # the last good frame, 0-based 4: shown as frame 5
    assert ctl.accept_pending() == "Accepted the propagation into frames 3–5."
    assert ctl.pending is None and sorted(ctl.session.annotation.frames) == [1, 2, 3, 4]
    with pytest.raises(InputError, match="^Nothing to accept: propagate first.$"):
        ctl.accept_pending()


def _empty_truth(ann) -> list[bool]:
    """What the strip's 'no nerve' flags must say, computed from scratch."""
    return [t in ann.frames and not ann.frames[t].mask.any() for t in range(ann.n_frames)]


def test_empty_frame_flags_follow_every_change_of_the_annotation(ctl):
    from napari_ultramn.progress import run_to_end

    s, shape = ctl.session, (32, 40)
    seen = []

    def check():
        seen.append(ctl.empty_frames().tolist())
        assert seen[-1] == _empty_truth(s.annotation)

    check()
    s.set_mask(0, np.zeros(shape, bool))  # traced as 'no nerve'
    check()
    s.set_mask(0, disk(shape, (16, 12), 5))  # the same frame, now with a nerve
    s.set_mask(7, np.zeros(shape, bool))
    check()
    s.set_mask(3, np.zeros(shape, bool))
    s.interpolate()  # frames 1-2 filled from 0; 4-6 from an empty keyframe
    check()
    ctl.empty_frames()[:] = True  # the caller's copy: the cache is not changed through it
    check()
    s.undo()  # back before the interpolation
    check()
    s.redo()
    check()
    for _ in range(5):  # back to the first, untraced state: flags of cleared frames go too
        s.undo()
    check()
    assert seen[-1] == [False] * 8 and seen[1][0] and not seen[2][0]
    s.set_mask(2, disk(shape, (16, 12), 5))
    s.set_mask(6, np.zeros(shape, bool))
    ctl.set_frame(2)
    ctl.propagated(run_to_end(s.propagation(2, 1)))
    ctl.set_frame(5)
    ctl.accept_pending()
    check()
    s.clear_frame(6)
    check()
    assert any(seen[-2]) and not seen[-1][6]


def test_empty_frame_flags_start_again_for_the_next_clip(project):
    c = AnnotatorController()
    a = AnnotationSession.open(project, "c0", "r1")
    a.set_mask(1, np.zeros((32, 40), bool))
    c.attach(a)
    assert c.empty_frames().tolist()[:3] == [False, True, False]
    c.detach().close()
    c.attach(AnnotationSession.open(project, "c1", "r1"))  # nothing of the first clip stays
    assert not c.empty_frames().any()
    c.detach().close()


def test_mask_is_empty_agrees_with_any():
    from napari_ultramn.annotation.controller import mask_is_empty

    rng = np.random.default_rng(0)
    for m in (np.zeros((5, 7), bool), np.zeros(0, bool), np.ones((2, 2), bool), rng.random((9, 11)) > 0.97):
        assert mask_is_empty(m) == (not m.any())
    last = np.zeros((4, 6), bool)
    last[-1, -1] = True
    assert not mask_is_empty(last) and not mask_is_empty(last.T) and mask_is_empty(np.zeros(3, np.uint8))
