"""StreamingUltraMN: frame-by-frame outputs equal the full-window forward."""

import numpy as np
import pytest
import torch

from napari_ultramn.model.blocks import fold_batchnorm
from napari_ultramn.model.network import build_model
from napari_ultramn.model.stream import StreamingUltraMN
from tests.model_helpers import trained_looking

P, T, S = 4, 5, 32
MODELS = [
    ("ultramn", {}),
    ("ultramn", {"factorised": False}),
    ("ultramn", {"norm": "group", "temporal_kernel": 2}),
    ("ultramn_notemporal", {}),
    ("unet2d", {}),
]


@pytest.fixture
def frames():
    return (np.random.default_rng(7).random((T, S, S)) * 255).astype(np.uint8)


@pytest.mark.parametrize("name, kwargs", MODELS)
def test_stream_equals_window_forward(name, kwargs, frames):
    torch.manual_seed(0)
    model = trained_looking(build_model(name, P, base_channels=4, **kwargs))
    with torch.no_grad():
        ref = model(torch.from_numpy(frames).float().div(255)[None, None])
    stream = StreamingUltraMN(model)
    for t in range(T):
        out = stream.step(frames[t])
        assert out["frame_index"] == t
        assert out["mask_prob"].shape == (S, S) and out["mask_prob"].dtype == np.float32
        np.testing.assert_allclose(out["mask_prob"], torch.sigmoid(ref["seg"][0, 0, t]).numpy(), atol=1e-5)
        assert out["presence"] == pytest.approx(float(torch.sigmoid(ref["presence"][0, t])), abs=1e-5)
        np.testing.assert_allclose(out["plane_probs"], torch.softmax(ref["plane_frame"][0, t], -1).numpy(), atol=1e-5)
        assert out["plane_probs"].sum() == pytest.approx(1.0, abs=1e-5)
    # the running clip plane after T frames is the window's clip plane
    np.testing.assert_allclose(out["clip_plane_probs"], torch.softmax(ref["plane_clip"][0], -1).numpy(), atol=1e-5)


def test_reset_starts_a_new_clip_and_tensor_frames_work(frames):
    torch.manual_seed(1)
    model = trained_looking(build_model("ultramn", P, base_channels=4))
    stream = StreamingUltraMN(model)
    first = stream.step(frames[0])["mask_prob"]
    second = stream.step(frames[0])["mask_prob"]
    assert not np.allclose(first, second)  # the same frame again, but now with a past
    stream.reset()
    again = stream.step(torch.from_numpy(frames[0]).float() / 255)
    assert isinstance(again["mask_prob"], torch.Tensor) and again["frame_index"] == 0
    np.testing.assert_allclose(again["mask_prob"].numpy(), first, atol=1e-6)


def test_stream_is_a_snapshot_of_the_model(frames):
    torch.manual_seed(2)
    model = trained_looking(build_model("ultramn", P, base_channels=4))
    stream = StreamingUltraMN(model)
    before = stream.step(frames[0])["mask_prob"]
    model.train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    stream.reset()
    np.testing.assert_allclose(stream.step(frames[0])["mask_prob"], before, atol=1e-6)


def test_fold_batchnorm_keeps_outputs():
    torch.manual_seed(3)
    model = trained_looking(build_model("unet2d", P, base_channels=4))
    x = torch.rand(1, 1, 2, S, S)
    with torch.no_grad():
        ref = model(x)
        folded = fold_batchnorm(model)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x)["seg"], ref["seg"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "frame, error, message",
    [
        (np.zeros((30, 32), np.uint8), ValueError, r"divisible by 2\*\*depth"),
        (np.zeros((2, 32, 32), np.uint8), ValueError, r"frame must be \(H, W\)"),
        (np.zeros((32, 32), np.int32), ValueError, "frame must be uint8 or float"),
        ([[0, 1]], TypeError, "numpy array or a torch tensor"),
    ],
)
def test_bad_frames_are_reported(frame, error, message):
    stream = StreamingUltraMN(build_model("ultramn", P, base_channels=4))
    with pytest.raises(error, match=message):
        stream.step(frame)


def test_half_precision_needs_cuda():
    with pytest.raises(ValueError, match="half=True needs a CUDA device"):
        StreamingUltraMN(build_model("ultramn", P, base_channels=4), half=True)


def test_chunks_through_the_cache_equal_the_window():
    """forward_frames with a cache also takes several frames at once (chunks of 2, 1, 2)."""
    torch.manual_seed(4)
    model = trained_looking(build_model("ultramn", P, base_channels=4))
    x = torch.rand(1, 1, T, S, S)
    with torch.no_grad():
        ref, _ = model.forward_frames(x[0].transpose(0, 1), T)
        cache, parts = {}, []
        for start, stop in [(0, 2), (2, 3), (3, 5)]:
            seg, _ = model.forward_frames(x[0, :, start:stop].transpose(0, 1), stop - start, cache)
            parts.append(seg)
    torch.testing.assert_close(torch.cat(parts), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["ultramn", "unet2d"])
def test_process_a_clip_in_chunks_equals_the_window(name, frames):
    torch.manual_seed(5)
    model = trained_looking(build_model(name, P, base_channels=4))
    with torch.no_grad():
        ref = model(torch.from_numpy(frames).float().div(255)[None, None])
    stream = StreamingUltraMN(model)
    out = stream.process(frames, chunk=2)  # chunks of 2, 2, 1
    np.testing.assert_allclose(out["mask_prob"], torch.sigmoid(ref["seg"][0, 0]).numpy(), atol=1e-5)
    np.testing.assert_allclose(out["presence"], torch.sigmoid(ref["presence"][0]).numpy(), atol=1e-5)
    np.testing.assert_allclose(out["plane_probs"], torch.softmax(ref["plane_frame"][0], -1).numpy(), atol=1e-5)
    np.testing.assert_allclose(out["clip_plane_probs"], torch.softmax(ref["plane_clip"][0], -1).numpy(), atol=1e-5)
    assert stream.frame_index == T - 1
    with pytest.raises(ValueError, match="chunk must be an int >= 1"):
        stream.process(frames, chunk=0)


@pytest.mark.parametrize("name", ["ultramn", "unet2d"])
def test_predict_clip_gives_every_frame_its_whole_past_like_a_stream(name):
    """predict_clip in chunks equals one causal pass: the whole clip as one window."""
    from napari_ultramn.model.checkpoint import predict_clip

    torch.manual_seed(3)
    model = trained_looking(build_model(name, P, base_channels=4))
    clip = (np.random.default_rng(8).random((11, S, S)) * 255).astype(np.uint8)
    pred = predict_clip(model, clip, window=3, chunk_frames=3)
    with torch.no_grad():
        ref = model(torch.from_numpy(clip).float().div(255)[None, None])
    np.testing.assert_allclose(pred["nerve_prob"], torch.sigmoid(ref["seg"][0, 0]).numpy(), atol=1e-5)
    np.testing.assert_allclose(pred["presence_prob"], torch.sigmoid(ref["presence"][0]).numpy(), atol=1e-5)
    np.testing.assert_allclose(pred["plane_prob"], torch.softmax(ref["plane_frame"][0], -1).numpy(), atol=1e-5)
    np.testing.assert_allclose(pred["clip_plane_prob"], torch.softmax(ref["plane_clip"][0], -1).numpy(), atol=1e-5)
    if name == "ultramn":  # a window restarted at frame 3 (no past) would differ there
        cold = predict_clip(model, clip[3:6], window=3)
        assert not np.allclose(cold["nerve_prob"][0], pred["nerve_prob"][3], atol=1e-4)
    with pytest.raises(ValueError, match="non-empty"):
        predict_clip(model, clip[:0], window=3)
