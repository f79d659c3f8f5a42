"""Smart keyframe core (issue 14): proposals from clicks on phantom frames, edge cases, bad input,
and the 'assisted' provenance in the model, session and JSON round trip (plain Python)."""

import numpy as np
import pytest

from napari_ultramn.annotation import ClipAnnotation
from napari_ultramn.annotation.clip_annotation import HUMAN_PROVENANCES, PROVENANCES
from napari_ultramn.annotation.session import AnnotationSession
from napari_ultramn.annotation.smart_keyframe import corrective_click, propose_mask
from napari_ultramn.annotation.store import AnnotationStore
from napari_ultramn.metrics import dice
from napari_ultramn.phantom import generate_clip
from napari_ultramn.schema import validate
from tests.project_factory import make_clip_project

#: Floors well under what the phantom gives (median 0.83 transverse wrist, 0.93 forearm, see
#: benchmarks/bench_smart_keyframe.py), so a broken search fails and noise does not.
DICE_FLOOR = {"transverse_wrist": 0.7, "transverse_forearm": 0.75}


@pytest.fixture(scope="module", params=sorted(DICE_FLOOR))
def phantom_frame(request):
    clip = generate_clip(request.param, 1, n_frames=3, size=(192, 224))
    truth = clip.masks[1]
    centre = tuple(int(v) for v in np.argwhere(truth).mean(0).round())
    return request.param, clip.frames[1], truth, centre, clip.spacing_mm


def test_one_click_at_the_centre_finds_the_nerve(phantom_frame):
    plane, frame, truth, centre, spacing = phantom_frame
    mask = propose_mask(frame, [centre], spacing_mm=spacing)
    assert mask.dtype == bool and mask.shape == frame.shape
    assert dice(mask, truth) > DICE_FLOOR[plane]
    # a bigger frame does not change the answer near the nerve (the window is in mm)
    padded = np.pad(frame, ((0, 300), (0, 400)), mode="reflect")
    assert dice(propose_mask(padded, [centre], spacing_mm=spacing)[:192, :224], mask) > 0.95


def test_clicks_constrain_the_contour(phantom_frame):
    _, frame, truth, centre, spacing = phantom_frame
    far = (centre[0] + 40 if centre[0] < 100 else centre[0] - 40, centre[1])
    grown = propose_mask(frame, [centre, far], spacing_mm=spacing)
    assert grown[far] and grown[centre]  # every positive click ends up inside
    first = propose_mask(frame, [centre], spacing_mm=spacing)
    inside = np.argwhere(first)
    edge = tuple(inside[np.argmax(np.abs(inside[:, 1] - centre[1]))])  # the proposal's lateral tip
    cut = propose_mask(frame, [centre], [edge], spacing_mm=spacing)
    assert not cut[edge] and cut[centre] and cut.sum() < first.sum()


def test_a_corrective_click_and_a_prior_help(phantom_frame):
    _, frame, truth, centre, spacing = phantom_frame
    first = propose_mask(frame, [centre], spacing_mm=spacing)
    point, positive = corrective_click(first, truth)
    assert (truth if positive else first)[point] and not (first if positive else truth)[point]
    assert corrective_click(truth, truth) is None
    # a model that knows the nerve pulls the contour onto it
    with_prior = propose_mask(frame, [centre], spacing_mm=spacing, prior=truth.astype(float))
    assert dice(with_prior, truth) >= dice(first, truth) - 0.02 and dice(with_prior, truth) > 0.8


def test_uncalibrated_and_float_frames_work(phantom_frame):
    _, frame, truth, centre, _ = phantom_frame
    mask = propose_mask(frame.astype(np.float32) / 255.0, [centre])
    assert mask[centre] and 0 < mask.sum() < frame.size / 4


@pytest.mark.parametrize("point", [(0, 50), (50, 0), (63, 30), (20, 79)])
def test_a_click_on_the_frame_border_gives_an_empty_mask(point):
    frame = np.random.default_rng(0).integers(0, 255, (64, 80), dtype=np.uint8)
    assert not propose_mask(frame, [point]).any()


@pytest.mark.parametrize("value", [0, 128, 255])
def test_a_click_in_a_flat_region_gives_an_empty_mask(value):
    frame = np.full((64, 80), value, np.uint8)
    assert not propose_mask(frame, [(30, 40)], [(10, 10)], spacing_mm=(0.1, 0.1)).any()


def test_no_rim_around_the_click_gives_an_empty_mask_not_the_window():
    ramp = np.tile(np.linspace(0, 255, 200), (150, 1)).astype(np.uint8)  # shading, no boundary
    assert not propose_mask(ramp, [(75, 100)], spacing_mm=(0.1, 0.1)).any()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"frame": np.zeros((4, 5, 3))}, "frame must be a 2D (H, W) image, got shape (4, 5, 3)"),
        ({"positive": []}, "needs at least one positive click"),
        ({"positive": [(70, 5)]}, "positive click (70.0, 5.0) is outside the frame of 64x80 pixels"),
        ({"negative": [(5, -1)]}, "negative click (5.0, -1.0) is outside the frame"),
        ({"positive": [(np.nan, 3)]}, "positive clicks must be finite"),
        ({"prior": np.zeros((10, 10))}, "prior of shape (10, 10) does not match the frame's (64, 80)"),
        ({"spacing_mm": (0.1, 0)}, "spacing_mm must be two positive (row_mm, col_mm) values"),
        ({"frame": np.zeros((64, 80), bool).astype(object)}, "frame must hold numbers"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(kwargs, message):
    args = {"frame": np.zeros((64, 80), np.uint8), "positive": [(30, 40)], **kwargs}
    frame, positive = args.pop("frame"), args.pop("positive")
    with pytest.raises(ValueError) as exc:
        propose_mask(frame, positive, **args)
    assert message in str(exc.value)


def test_assisted_is_a_human_keyframe_that_round_trips(tmp_path):
    assert PROVENANCES[:5] == ("drawn", "interpolated", "propagated", "model", "model_edited")  # old codes kept
    assert "assisted" in HUMAN_PROVENANCES
    ann = ClipAnnotation("c0", "r1", 6, (8, 10))
    mask = np.zeros((8, 10), bool)
    mask[2:5, 3:7] = True
    ann.set_mask(2, mask, "assisted", edited_fraction=0.0)
    ann.set_mask(3, mask, "interpolated")
    obj = ann.to_json()
    validate(obj, "annotation")
    back = ClipAnnotation.from_json(obj)
    assert back.frames[2].provenance == "assisted" and back.keyframes() == [2]
    assert back.provenance_codes()[2] == PROVENANCES.index("assisted")
    old = dict(obj, frames={"3": obj["frames"]["3"]})  # a file from before 'assisted' still loads
    validate(old, "annotation")
    assert ClipAnnotation.from_json(old).frames[3].provenance == "interpolated"


def test_session_records_and_refines_an_assisted_frame(tmp_path):
    project = make_clip_project(tmp_path / "p", n_clips=1)
    with AnnotationSession.open(project, "c0", "r1") as s:
        rows, cols = np.mgrid[:32, :40]
        proposal = (rows - 16) ** 2 + (cols - 12) ** 2 <= 36  # what the clicks proposed
        fm = s.set_assisted_mask(2, proposal)
        assert fm.provenance == "assisted" and fm.edited_fraction == 0.0
        brushed = proposal.copy()
        brushed[14:19, 10:15] = False  # the rater erases a patch
        fm = s.set_mask(2, brushed)  # the brush refines it: still assisted, the change measured
        assert fm.provenance == "assisted" and 0 < fm.edited_fraction < 1
        s.undo()
        assert s.annotation.frames[2].edited_fraction == 0.0
        s.set_mask(5, proposal)  # a drawn keyframe: the assisted one anchors interpolation like it
        assert s.annotation.keyframes() == [2, 5] and s.interpolate() == [3, 4]
        assert s.annotation.frames[2].provenance == "assisted"
    saved = AnnotationStore(project.root).load("c0", "r1")
    assert saved.frames[2].provenance == "assisted"


def test_model_prior_is_the_models_causal_probability_cached_per_frame():
    import torch

    from napari_ultramn.annotation.smart_keyframe import model_prior
    from napari_ultramn.model.checkpoint import predict_clip
    from napari_ultramn.model.network import UltraMNet

    torch.manual_seed(0)
    model = UltraMNet(5, base_channels=4, depth=2).eval()
    ckpt = {"window": 3, "input_size": (32, 32)}
    frames = np.random.default_rng(1).integers(0, 255, (6, 40, 48), dtype=np.uint8)
    prob = model_prior((model, ckpt), frames, 4)
    assert prob.shape == (40, 48) and prob.dtype == np.float32 and 0 <= prob.min() <= prob.max() <= 1
    assert model_prior((model, ckpt), frames, 4) is prob  # cached
    expected = predict_clip(model, frames[2:5], window=3, input_size=(32, 32))["nerve_prob"][-1]
    np.testing.assert_allclose(prob, expected, atol=1e-6)  # frames t-window+1 .. t, as the stream sees them
    assert propose_mask(frames[4], [(20, 24)], prior=prob).shape == (40, 48)
    with pytest.raises(ValueError, match="frame 6 out of range for a clip of 6 frames"):
        model_prior((model, ckpt), frames, 6)
