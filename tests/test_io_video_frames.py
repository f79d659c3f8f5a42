"""Video files (PyAV) and PNG/TIFF frame folders as lazy gray clips, and their bad-input messages."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_ultramn.errors import InputError
from napari_ultramn.io import open_clip
from napari_ultramn.io import video as video_io
from napari_ultramn.io.frames import natural_key
from tests.dicom_factory import gray_frames, write_video


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    frames = gray_frames(24, 48, 64)
    write_video(path, frames)
    return path, frames


def test_mp4_frames_rate_and_random_access(mp4):
    path, frames = mp4
    clip = open_clip(path)
    assert clip.shape == (24, 48, 64)
    assert clip.frame_time_ms == pytest.approx(40.0)
    assert clip.spacing_mm is None and clip.spacing_unit == "px"
    sequential = clip.to_array()
    assert np.abs(sequential.astype(int) - frames).max() <= 10  # lossy codec
    fresh = open_clip(path)
    for i in (23, 2, 17, 16, 9, 0, 11):  # backwards, across GOPs, within a GOP
        np.testing.assert_array_equal(fresh.frame(i), sequential[i])


def test_open_decodes_one_frame(mp4, monkeypatch):
    calls = []
    real = video_io._VideoFrames.__call__
    monkeypatch.setattr(video_io._VideoFrames, "__call__", lambda self, i: calls.append(i) or real(self, i))
    clip = open_clip(mp4[0])
    clip.frame(0)
    assert calls == [0]
    clip.frame(1)
    clip.frame(2)
    assert calls == [0, 1, 2]


@pytest.mark.parametrize(("codec", "suffix", "fps"), [("mpeg4", ".avi", 30), ("libx264", ".mov", 50)])
def test_avi_and_mov(tmp_path, codec, suffix, fps):
    frames = gray_frames(6, 32, 48)
    path = tmp_path / f"clip{suffix}"
    write_video(path, frames, codec=codec, fps=fps)
    clip = open_clip(path)
    assert clip.shape == (6, 32, 48)
    assert clip.frame_time_ms == pytest.approx(1000 / fps)
    assert clip.to_array().dtype == np.uint8


def _message(path) -> str:
    with pytest.raises(InputError) as info:
        open_clip(path)
    assert str(info.value).startswith(str(path))
    return str(info.value)


@pytest.mark.parametrize(
    ("suffix", "codec", "problem"),
    [
        (".avi", "mpeg4", "video has no frames"),
        # an mp4 without samples keeps no track at all
        (".mp4", "libx264", "has no video stream (the file is empty or holds no video)"),
    ],
)
def test_empty_video(tmp_path, suffix, codec, problem):
    import av

    path = tmp_path / f"empty{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()  # header and trailer, zero frames
    assert _message(path).endswith(problem)


def test_corrupt_video(tmp_path, mp4):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    assert "cannot be read as a video" in _message(garbage)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(mp4[0].read_bytes()[:600])  # the index (moov) is lost
    msg = _message(cut)
    assert "cannot be read as a video" in msg or "video is corrupt" in msg or "no frames" in msg


# -- frame folders ------------------------------------------------------------------------


def test_natural_key():
    names = ["f10.png", "f2.png", "F1.png"]
    assert sorted(names, key=natural_key) == ["F1.png", "f2.png", "f10.png"]


def test_png_folder_natural_order_and_colour(tmp_path):
    frames = gray_frames(11, 20, 30)
    for i, f in enumerate(frames):
        img = Image.fromarray(f) if i % 2 else Image.fromarray(np.repeat(f[..., None], 3, -1))
        img.save(tmp_path / f"frame_{i}.png")  # no zero padding: frame_10 after frame_9
    Image.fromarray(frames[10]).convert("P").save(tmp_path / "frame_10.png")  # palette PNG
    (tmp_path / "notes.txt").write_text("ignored")
    clip = open_clip(tmp_path)
    assert clip.shape == (11, 20, 30)
    np.testing.assert_array_equal(clip.to_array(), frames)


def test_tiff_folder_16bit(tmp_path):
    frames = gray_frames(3, 16, 24)
    for i, f in enumerate(frames):
        tifffile.imwrite(tmp_path / f"t{i:03d}.tif", f.astype(np.uint16) * 256 + 7)
    np.testing.assert_array_equal(open_clip(tmp_path).to_array(), frames)


def test_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    assert _message(tmp_path).endswith("folder holds no PNG, JPEG, BMP or TIFF frames and no DICOM files")


def test_folder_mixed_shapes(tmp_path):
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "a1.png")
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "a2.png")
    Image.fromarray(np.zeros((10, 30), np.uint8)).save(tmp_path / "a3.png")
    msg = _message(tmp_path)
    assert "frames have different shapes (20x30: 2 file(s), e.g. a1.png; 10x30: 1 file(s)" in msg


def test_folder_with_damaged_image(tmp_path):
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "a1.png")
    (tmp_path / "a2.png").write_bytes(b"\x89PNG broken")
    assert "frame file a2.png cannot be read" in _message(tmp_path)


def test_missing_path(tmp_path):
    assert _message(tmp_path / "nope.mp4").endswith("file not found")
