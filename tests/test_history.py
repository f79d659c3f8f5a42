"""Undo/redo across frames and clip-level fields, bounded depth."""

import numpy as np
import pytest

from napari_ultramn.annotation import ClipAnnotation
from napari_ultramn.annotation.history import History, diff, snapshot


def _ann():
    return ClipAnnotation("c", "r", n_frames=5, frame_shape=(4, 4))


def _change(history, ann, label, fn):
    before = snapshot(ann)
    fn(ann)
    history.push(diff(label, before, ann))


def test_one_group_spans_many_frames_and_fields():
    ann, h = _ann(), History()
    m = np.eye(4, dtype=bool)
    _change(h, ann, "draw", lambda a: a.set_mask(0, m))

    def fill(a):
        for t in (1, 2, 3):
            a.set_mask(t, m, "interpolated")
        a.clip_plane = "transverse_wrist"

    _change(h, ann, "fill", fill)
    assert h.undo_label() == "fill"
    group = h.undo(ann)
    assert sorted(group.frames) == [1, 2, 3] and set(group.fields) == {"clip_plane"}
    assert sorted(ann.frames) == [0] and ann.clip_plane is None
    assert h.redo_label() == "fill"
    h.redo(ann)
    assert sorted(ann.frames) == [0, 1, 2, 3] and ann.clip_plane == "transverse_wrist"


def test_new_change_clears_redo_and_empty_changes_are_ignored():
    ann, h = _ann(), History()
    _change(h, ann, "draw", lambda a: a.set_mask(0, np.ones((4, 4), bool)))
    h.undo(ann)
    assert h.can_redo
    _change(h, ann, "nothing", lambda a: None)
    assert h.can_redo and len(h) == 0
    _change(h, ann, "draw", lambda a: a.set_mask(1, np.ones((4, 4), bool)))
    assert not h.can_redo
    assert h.undo(_ann()) is not None and h.undo(ann) is None and h.redo(ann) is not None


def test_depth_is_bounded():
    ann, h = _ann(), History(depth=3)
    for q in ("poor", "unusable", "ok", "poor", "unusable"):
        _change(h, ann, q, lambda a, q=q: setattr(a, "quality", q))
    assert len(h) == 3
    while h.undo(ann):
        pass
    assert ann.quality == "unusable"  # the two oldest steps fell off the stack
    with pytest.raises(ValueError, match="history depth must be at least 1, got 0"):
        History(0)


def test_undo_of_list_fields_is_a_copy_not_an_alias():
    from napari_ultramn.annotation import PlaneRange

    ann, h = _ann(), History()
    _change(h, ann, "range", lambda a: a.plane_ranges.append(PlaneRange(1, 3, "non_standard")))
    h.undo(ann)
    assert ann.plane_ranges == []
    h.redo(ann)
    ann.plane_ranges.clear()  # mutating the live list must not corrupt the stored 'after'
    h.undo(ann)
    h.redo(ann)
    assert ann.plane_ranges == [PlaneRange(1, 3, "non_standard")]
