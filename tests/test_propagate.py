"""Mask propagation through a synthetic speckled clip with known motion."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_ultramn.annotation import ClipAnnotation
from napari_ultramn.annotation.propagate import PropagationResult, propagate_mask
from napari_ultramn.progress import Progress, run_collecting, run_to_end

SHAPE = (72, 96)


def moving_nerve_clip(n=16, velocity=(0.3, 0.7), shape=SHAPE, seed=0, center=(36.0, 30.0)):
    """Speckle texture and a dark oval nerve with a bright rim, translating together.

    Returns ``frames (T, H, W) uint8`` and ``masks (T, H, W) bool`` (the exact ellipse).
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    pad = 40
    texture = ndi.gaussian_filter(rng.normal(size=(h + 2 * pad, w + 2 * pad)), 1.0)
    texture = (texture - texture.mean()) / texture.std()
    yy, xx = np.mgrid[:h, :w].astype(float)
    frames = np.empty((n, h, w), np.uint8)
    masks = np.empty((n, h, w), bool)
    for t in range(n):
        dy, dx = velocity[0] * t, velocity[1] * t
        tex = ndi.map_coordinates(texture, [yy - dy + pad, xx - dx + pad], order=3)
        rho = np.sqrt(((yy - center[0] - dy) / 9.0) ** 2 + ((xx - center[1] - dx) / 14.0) ** 2)
        nerve = 1 / (1 + np.exp((rho - 1) * 12))  # soft-edged oval
        rim = np.exp(-(((rho - 1.05) / 0.12) ** 2))
        img = 120 + 30 * tex - 50 * nerve + 70 * rim + rng.normal(0, 4, shape)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
        masks[t] = rho <= 1
    return frames, masks


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def clip():
    return moving_nerve_clip()


def test_forward_propagation_follows_the_nerve(clip):
    frames, masks = clip
    steps, result = run_collecting(propagate_mask(frames, 0, masks[0], 15))
    assert all(isinstance(p, Progress) for p in steps)
    assert [p.done for p in steps] == list(range(1, 16)) and steps[-1].total == 15
    assert isinstance(result, PropagationResult)
    assert result.frames() == list(range(1, 16))
    for t in range(1, 16):
        assert result.masks[t].dtype == bool and result.masks[t].shape == SHAPE
        assert dice(result.masks[t], masks[t]) > 0.9, t
        assert 0.0 <= result.confidence[t] <= 1.0
    assert min(result.confidence.values()) > 0.5
    assert result.warnings == {}


def test_sub_pixel_motion_accumulates_instead_of_stalling():
    # 0.25 px per frame: warping a binary mask frame to frame would never move it
    frames, masks = moving_nerve_clip(n=16, velocity=(0.0, 0.25), seed=3)
    result = run_to_end(propagate_mask(frames, 0, masks[0], 15))
    moved = ndi.center_of_mass(result.masks[15])[1] - ndi.center_of_mass(masks[0])[1]
    assert moved == pytest.approx(15 * 0.25, abs=0.75)
    assert result.masks[15].sum() == pytest.approx(masks[15].sum(), rel=0.08)  # no erosion


def test_noisy_frames_still_track():
    frames, masks = moving_nerve_clip(n=12, seed=4)
    noisy = np.clip(frames + np.random.default_rng(5).normal(0, 30, frames.shape), 0, 255).astype(np.uint8)
    result = run_to_end(propagate_mask(noisy, 0, masks[0], 11))
    assert dice(result.masks[11], masks[11]) > 0.9
    assert result.warnings == {}


def test_backward_propagation(clip):
    frames, masks = clip
    result = run_to_end(propagate_mask(frames, 12, masks[12], 3))
    assert result.frames() == list(range(11, 2, -1))
    assert dice(result.masks[3], masks[3]) > 0.9


def test_two_anchors_blend_both_directions(clip):
    frames, masks = clip
    # the second anchor is deliberately 1 px off: the blend must move toward it near its end
    end_mask = np.roll(masks[15], 1, axis=0)
    steps, result = run_collecting(propagate_mask(frames, 0, masks[0], 15, end_mask))
    assert steps[-1].total == 28 and steps[-1].done == 28
    assert result.frames() == list(range(1, 15))  # both anchors excluded
    for t in range(1, 15):
        assert dice(result.masks[t], masks[t]) > 0.9
    near_end = ndi.center_of_mass(result.masks[14])[0] - ndi.center_of_mass(masks[14])[0]
    assert 0.3 < near_end < 1.2


def test_two_anchors_then_continue_beyond_the_second(clip):
    frames, masks = clip
    result = run_to_end(propagate_mask(frames, 2, masks[2], 12, masks[8], end=8))
    assert result.frames() == [3, 4, 5, 6, 7, 9, 10, 11, 12]
    assert dice(result.masks[12], masks[12]) > 0.9


def test_an_empty_second_anchor_stops_propagation_just_before_it(clip):
    frames, masks = clip
    result = run_to_end(propagate_mask(frames, 2, masks[2], 12, np.zeros(SHAPE, bool), end=8))
    assert result.stop == 7 and result.frames() == [3, 4, 5, 6, 7]
    assert run_to_end(propagate_mask(frames, 2, masks[2], 3, np.zeros(SHAPE, bool))).masks == {}


def test_low_confidence_is_flagged_where_the_image_is_lost():
    frames, masks = moving_nerve_clip(n=10)
    frames = frames.copy()
    frames[7:] = np.random.default_rng(1).integers(0, 255, frames[7:].shape, dtype=np.uint8)
    result = run_to_end(propagate_mask(frames, 0, masks[0], 9))
    assert all(result.confidence[t] > 0.5 for t in range(1, 7))
    for t in (7, 8, 9):
        assert result.confidence[t] < 0.5
        assert "low confidence" in result.warnings[t]
    # the lost frames keep the last trusted mask instead of following noise
    np.testing.assert_array_equal(result.masks[8], result.masks[6])


def test_accept_up_to_and_apply_never_touch_human_frames(clip):
    frames, masks = clip
    result = run_to_end(propagate_mask(frames, 0, masks[0], 8))
    assert sorted(result.accept_up_to(4)) == [1, 2, 3, 4]
    assert sorted(result.accept_up_to(None)) == list(range(1, 9))
    ann = ClipAnnotation("c", "r", n_frames=16, frame_shape=SHAPE)
    ann.set_mask(0, masks[0], "drawn")
    ann.set_mask(3, masks[3], "model_edited", edited_fraction=0.1)
    ann.set_mask(5, masks[0], "interpolated")
    written = result.apply(ann, up_to=6)
    assert written == [1, 2, 4, 5, 6]
    assert ann.frames[3].provenance == "model_edited"
    np.testing.assert_array_equal(ann.frames[3].mask, masks[3])
    for t in written:
        assert ann.frames[t].provenance == "propagated"
        assert ann.frames[t].confidence == pytest.approx(result.confidence[t])
        np.testing.assert_array_equal(ann.frames[t].mask, result.masks[t])
    assert 7 not in ann.frames


def test_backward_accept_up_to_counts_from_the_anchor(clip):
    frames, masks = clip
    result = run_to_end(propagate_mask(frames, 10, masks[10], 5))
    assert sorted(result.accept_up_to(8)) == [8, 9]


def test_area_jump_and_vanishing_are_warned():
    result = PropagationResult(anchor=0, stop=3)
    big = np.zeros(SHAPE, bool)
    big[10:30, 10:30] = True
    small = np.zeros(SHAPE, bool)
    small[10:20, 10:20] = True
    result.masks = {1: big, 2: small, 3: np.zeros(SHAPE, bool)}
    result.confidence = {1: 0.9, 2: 0.9, 3: 0.9}
    from napari_ultramn.annotation.propagate import _flag

    _flag(result, big, None, None, False, 0.2, 0.5)
    assert 1 not in result.warnings
    assert result.warnings[2] == "area changed -75% from the previous frame"
    assert result.warnings[3] == "mask vanished"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"anchor": 20}, "anchor frame 20 is outside the clip's 16 frames"),
        ({"stop": -1}, "stop frame -1 is outside the clip's 16 frames"),
        ({"anchor_mask": np.zeros(SHAPE, bool)}, "the anchor mask on frame 0 is empty"),
        ({"anchor_mask": np.ones((5, 5), bool)}, r"anchor mask of shape \(5, 5\) does not fit"),
        ({"end": 4}, "end was given without end_mask"),
        ({"end_mask": "same", "end": 0}, r"second anchor \(frame 0\) must lie after the first"),
        ({"end_mask": "same", "end": 15, "stop": 10}, r"not beyond stop \(frame 10\)"),
    ],
)
def test_bad_input_is_explained(clip, kwargs, message):
    frames, masks = clip
    args = {"anchor": 0, "anchor_mask": masks[0], "stop": 12, **kwargs}
    if args.get("end_mask") == "same":
        args["end_mask"] = masks[0]
    with pytest.raises(ValueError, match=message):
        run_to_end(propagate_mask(frames, **args))


def test_propagates_through_a_lazy_clip(clip):
    from napari_ultramn.io import clip_from_array

    frames, masks = clip
    lazy = clip_from_array(frames).frames
    result = run_to_end(propagate_mask(lazy, 0, masks[0], 5))
    direct = run_to_end(propagate_mask(frames, 0, masks[0], 5))
    for t in range(1, 6):
        np.testing.assert_array_equal(result.masks[t], direct.masks[t])


@pytest.mark.slow
@pytest.mark.parametrize(
    "plane", ["transverse_wrist", "transverse_forearm", "longitudinal_wrist", "longitudinal_forearm"]
)
def test_phantom_dice_after_30_frames(plane):
    from napari_ultramn.phantom import generate_clip

    ph = generate_clip(plane, seed=0, n_frames=31, size=(256, 256))
    result = run_to_end(propagate_mask(ph.frames, 0, ph.masks[0], 30))
    assert dice(result.masks[30], ph.masks[30]) >= 0.85
