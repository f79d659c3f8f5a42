"""Doubt scores (annotation/doubt.py) and corrections that spread (annotation/repropagate.py,
AnnotationSession.correct): issue 14."""

import numpy as np
import pytest

from napari_ultramn.annotation import ClipAnnotation
from napari_ultramn.annotation.doubt import doubtful_frames, frame_doubts
from napari_ultramn.annotation.repropagate import spread_bounds
from napari_ultramn.annotation.session import AnnotationSession
from napari_ultramn.metrics import dice
from tests.project_factory import PHANTOM_FRAMES as N
from tests.project_factory import PHANTOM_SIZE as SIZE
from tests.project_factory import drifted, make_phantom, phantom_project


@pytest.fixture(scope="module")
def phantom():
    return make_phantom()


@pytest.fixture
def project(tmp_path, phantom):
    return phantom_project(tmp_path / "proj", phantom)


def test_corrupted_frame_is_checked_first(phantom):
    ann = ClipAnnotation("c0", "r1", N, SIZE)
    ann.set_mask(0, phantom.masks[0], "drawn")
    for t in range(1, N):
        ann.set_mask(t, phantom.masks[t], "propagated", confidence=0.9)
    ann.set_mask(13, np.roll(phantom.masks[13], 12, axis=0), "propagated", confidence=0.9)  # jumped off
    ranked = doubtful_frames(ann)
    assert ranked[0].frame == 13
    assert "differs from its neighbours" in ranked[0].reasons[0]
    assert 0 not in [d.frame for d in ranked]  # a human keyframe is never listed
    assert [d.frame for d in doubtful_frames(ann, exclude=[13], limit=3)][0] != 13


def test_doubt_terms_confidence_disagreement_and_unannotated(phantom):
    ann = ClipAnnotation("c0", "r1", N, SIZE)
    for t in range(N - 1):  # last frame left unannotated
        ann.set_mask(t, phantom.masks[t], "propagated", confidence=0.95)
    ann.frames[5].confidence = 0.2
    model = {t: phantom.masks[t] for t in range(N)}
    model[9] = np.roll(phantom.masks[9], 15, axis=1)  # the model saw frame 9 elsewhere
    doubts = frame_doubts(ann, model)
    assert doubts[N - 1].score == 1.0 and doubts[N - 1].reasons == ["no mask yet"]
    assert doubts[5].terms["confidence"] == pytest.approx(0.8)
    assert doubts[9].terms["disagreement"] > 0.9 and doubts[8].terms["disagreement"] == 0.0
    assert "model and propagated disagree" in " ".join(doubts[9].reasons)
    order = [d.frame for d in doubtful_frames(ann, model)]
    assert set(order[:2]) == {N - 1, 9} and order[2] == 5


def test_spread_bounds_stop_at_keyframes_and_unannotated_frames():
    ann = ClipAnnotation("c0", "r1", 20, (8, 8))
    m = np.ones((8, 8), bool)
    for t in range(2, 18):
        ann.set_mask(t, m, "propagated", confidence=1.0)
    ann.set_mask(4, m, "drawn")
    ann.set_mask(12, m, "model_edited")
    assert spread_bounds(ann, 8, 1) == (11, 12)
    assert spread_bounds(ann, 8, -1) == (5, 4)
    assert spread_bounds(ann, 14, 1) == (17, None)  # frames 18-19 unannotated: not filled
    assert spread_bounds(ann, 8, 1, reach_frames=2) == (10, None)
    assert spread_bounds(ann, 13, -1) == (13, 12)  # a keyframe right next to it: nothing to spread


def test_correction_spreads_between_keyframes_improves_and_undoes_in_one_step(project, phantom):
    with AnnotationSession.open(project, "c0", "r1") as s:
        s.set_mask(0, phantom.masks[0])
        s.set_mask(16, phantom.masks[16])
        with s.change("drifted propagation") as ann:
            for t in [*range(1, 16), *range(17, N)]:
                ann.set_mask(t, drifted(phantom, t), "propagated", confidence=0.7)
        before = {t: fm for t, fm in s.annotation.frames.items()}
        between = range(1, 16)
        dice_before = np.mean([dice(before[t].mask, phantom.masks[t]) for t in between])
        steps = len(s.history)

        changed = s.correct(9, phantom.masks[9])

        assert len(s.history) == steps + 1  # the correction and its spread: one undo step
        assert 9 in changed and set(changed) <= set(between)
        assert len(changed) >= 12  # most of the run between the keyframes was re-propagated
        ann = s.annotation
        assert ann.frames[9].provenance == "drawn"
        assert all(ann.frames[t] is before[t] for t in [0, 16, *range(17, N)])  # keyframes, beyond: untouched
        assert {ann.frames[t].provenance for t in changed if t != 9} == {"propagated"}
        dice_after = np.mean([dice(ann.frames[t].mask, phantom.masks[t]) for t in between])
        assert dice_after > dice_before + 0.05

        assert sorted(s.undo()) == sorted(changed)
        assert all(s.annotation.frames[t] is before[t] for t in before)
    back = project.annotations.load("c0", "r1")
    assert back.frames[9].provenance == "propagated"  # the undo was saved


def test_empty_correction_does_not_spread(project, phantom):
    with AnnotationSession.open(project, "c0", "r1") as s:
        s.set_mask(0, phantom.masks[0])
        with s.change("propagation") as ann:
            for t in range(1, N):
                ann.set_mask(t, phantom.masks[t], "propagated", confidence=0.9)
        assert s.correct(5, np.zeros(SIZE, bool)) == [5]
        assert s.annotation.frames[6].provenance == "propagated"
