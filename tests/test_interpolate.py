"""Shape-based keyframe interpolation and filling an annotation between human keyframes."""

import numpy as np
import pytest

from napari_ultramn.annotation import ClipAnnotation
from napari_ultramn.annotation.interpolate import fill_between_keyframes, interpolate_masks

SHAPE = (64, 80)


def disc(cy, cx, r, shape=SHAPE):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def ellipse(cy, cx, ry, rx, shape=SHAPE):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def centroid(mask):
    rr, cc = np.nonzero(mask)
    return np.array([rr.mean(), cc.mean()])


def test_default_targets_are_the_frames_strictly_between_keyframes():
    out = interpolate_masks({2: disc(30, 30, 8), 6: disc(30, 30, 8), 9: disc(30, 30, 8)})
    assert sorted(out) == [3, 4, 5, 7, 8]
    for m in out.values():
        assert m.shape == SHAPE and m.dtype == bool


def test_same_shape_on_both_sides_is_reproduced_exactly():
    m = ellipse(30, 40, 7, 15)
    out = interpolate_masks({0: m, 4: m})
    for t in (1, 2, 3):
        np.testing.assert_array_equal(out[t], m)


def test_radius_grows_linearly_not_by_snapping():
    """Pixel blending snaps from one disc to the other halfway; distance fields grow the radius."""
    out = interpolate_masks({0: disc(32, 40, 6), 10: disc(32, 40, 16)})
    areas = np.array([out[t].sum() for t in range(1, 10)])
    assert np.all(np.diff(areas) > 0)
    for t in range(1, 10):
        expected_r = 6 + t
        assert out[t].sum() == pytest.approx(np.pi * expected_r**2, rel=0.1)


def test_a_moving_nerve_glides_along_the_line_between_keyframes():
    # the two discs do not overlap: plain SDF blending would make the nerve vanish in between
    a, b = disc(20, 15, 6), disc(40, 60, 6)
    out = interpolate_masks({0: a, 4: b})
    for t in (1, 2, 3):
        w = t / 4
        np.testing.assert_allclose(centroid(out[t]), (1 - w) * centroid(a) + w * centroid(b), atol=0.6)
        assert out[t].sum() == pytest.approx(a.sum(), rel=0.1)


def test_without_centroid_alignment_disjoint_shapes_vanish_in_between():
    out = interpolate_masks({0: disc(20, 15, 6), 4: disc(40, 60, 6)}, align_centroids=False)
    assert not out[2].any()


def test_shape_changes_from_circle_to_flat_ellipse():
    a, b = disc(32, 40, 10), ellipse(32, 40, 5, 20)
    mid = interpolate_masks({0: a, 2: b})[1]
    rr, cc = np.nonzero(mid)
    height, width = np.ptp(rr) + 1, np.ptp(cc) + 1
    assert 11 <= height <= 19 and 21 <= width <= 39  # between 10/5 half-heights, 10/20 half-widths


@pytest.mark.parametrize("empty_first", [False, True])
def test_an_empty_keyframe_shrinks_the_nerve_to_nothing_halfway(empty_first):
    nerve, empty = disc(32, 40, 10), np.zeros(SHAPE, bool)
    keys = {0: empty, 10: nerve} if empty_first else {0: nerve, 10: empty}
    out = interpolate_masks(keys)
    areas = [out[t].sum() for t in range(1, 10)]
    if empty_first:
        areas = areas[::-1]  # now read from the nerve's side
    # shrinks monotonically from the visible side, gone from the midpoint on
    assert all(a0 > a1 for a0, a1 in zip(areas[:4], areas[1:5]))
    assert areas[0] < nerve.sum()
    assert all(a == 0 for a in areas[4:])
    # it shrinks in place: what remains is inside the visible nerve
    for m in out.values():
        assert not (m & ~nerve).any()


def test_two_empty_keyframes_give_empty_frames():
    out = interpolate_masks({0: np.zeros(SHAPE, bool), 3: np.zeros(SHAPE, bool)})
    assert all(not m.any() for m in out.values()) and sorted(out) == [1, 2]


def test_nerve_cut_by_the_image_edge_stays_inside_the_frame():
    out = interpolate_masks({0: disc(2, 40, 8), 4: disc(60, 75, 8)})
    for m in out.values():
        assert m.shape == SHAPE and m.any()


@pytest.mark.parametrize(
    ("keyframes", "targets", "message"),
    [
        ({0: disc(30, 30, 5)}, None, "at least two keyframes, got 1"),
        ({0: disc(30, 30, 5), 4: np.zeros((10, 10), bool)}, None, r"keyframe 4 has shape \(10, 10\)"),
        ({0: disc(30, 30, 5), 4: disc(30, 30, 5)}, [6], "frame 6 is outside the keyframes' span 0..4"),
        ({0: disc(30, 30, 5), 4: disc(30, 30, 5)}, [4], "frame 4 is a keyframe"),
    ],
)
def test_bad_input_is_explained(keyframes, targets, message):
    with pytest.raises(ValueError, match=message):
        interpolate_masks(keyframes, targets)


def _annotation():
    ann = ClipAnnotation("clip1", "r1", n_frames=12, frame_shape=SHAPE)
    ann.set_mask(1, disc(30, 30, 6), "drawn")
    ann.set_mask(5, disc(30, 50, 6), "model_edited", edited_fraction=0.2)
    ann.set_mask(9, disc(30, 50, 12), "drawn")
    ann.set_mask(3, disc(10, 10, 3), "model", confidence=0.7)  # a machine frame: may be replaced
    ann.set_mask(0, disc(10, 10, 3), "propagated", confidence=0.9)  # outside the keyframes
    return ann


def test_fill_writes_every_frame_between_keyframes_and_keeps_human_frames():
    ann = _annotation()
    human = {t: ann.frames[t].mask.copy() for t in ann.keyframes()}
    written = fill_between_keyframes(ann)
    assert written == [2, 3, 4, 6, 7, 8]
    assert ann.keyframes() == [1, 5, 9]
    for t, m in human.items():
        np.testing.assert_array_equal(ann.frames[t].mask, m)
    for t in written:
        assert ann.frames[t].provenance == "interpolated"
        assert ann.frames[t].confidence is None
    assert ann.frames[0].provenance == "propagated"  # before the first keyframe: untouched
    assert 10 not in ann.frames and 11 not in ann.frames
    assert ann.status == "in_progress"
    # frame 3 now lies between the keyframes at 1 and 5, no longer the model's little disc
    np.testing.assert_allclose(centroid(ann.frames[3].mask), [30, 40], atol=0.6)


def test_fill_within_a_range_only_touches_that_range():
    ann = _annotation()
    assert fill_between_keyframes(ann, start=6, stop=8) == [6, 7]
    assert ann.frames[3].provenance == "model"
    assert 8 not in ann.frames


def test_fill_needs_two_keyframes():
    ann = ClipAnnotation("c", "r", n_frames=5, frame_shape=SHAPE)
    ann.set_mask(2, disc(30, 30, 5))
    assert fill_between_keyframes(ann) == []
    assert sorted(ann.frames) == [2]
