"""Our HDF5 clip format: round trips (single-clip files and dataset groups), laziness, bad files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from napari_ultramn.errors import InputError
from napari_ultramn.io import Region, clip_from_array, open_clip
from napari_ultramn.io.hdf5clip import FORMAT, read_hdf5_clip, write_clip_group, write_hdf5_clip
from tests.dicom_factory import gray_frames

META = {
    "clip_id": "P001-abc",
    "participant": "P001",
    "side": "left",
    "plane": "transverse_wrist",
    "source_sha256": "ab" * 32,
    "spacing_mm": (0.1, 0.12),
    "spacing_source": "us_region",
    "frame_time_ms": 33.3,
    "manufacturer": "PhantomCo",
    "device_model": "X",
    "site": "A",
}


def test_single_clip_round_trip(tmp_path):
    frames = gray_frames(5, 24, 32)
    path = tmp_path / "clip.h5"
    write_hdf5_clip(path, frames, META)
    clip = open_clip(path)
    np.testing.assert_array_equal(clip.to_array(), frames)
    assert clip.spacing_mm == (0.1, 0.12) and clip.spacing_source == "us_region"
    assert clip.frame_time_ms == pytest.approx(33.3)
    assert (clip.participant, clip.side, clip.plane) == ("P001", "left", "transverse_wrist")
    assert clip.extra["source_sha256"] == "ab" * 32 and clip.extra["site"] == "A"
    meta = clip.metadata()
    json.dumps(meta)  # JSON-able: the open file handle is not metadata
    assert "_h5" not in meta and meta["clip_id"] == "P001-abc"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.h5"]  # no temporaries left


def test_lazy_clip_written_frame_by_frame(tmp_path):
    frames = gray_frames(4, 16, 20)
    clip = clip_from_array(frames)
    write_hdf5_clip(tmp_path / "lazy.h5", clip.frames, {"clip_id": "c"})
    back = read_hdf5_clip(tmp_path / "lazy.h5")
    np.testing.assert_array_equal(back.to_array(), frames)
    assert back.spacing_mm is None and back.spacing_source == "none"
    with h5py.File(tmp_path / "lazy.h5") as fh:
        assert fh["frames"].chunks == (1, 16, 20)


def test_dataset_groups(tmp_path):
    path = tmp_path / "ds.h5"
    a, b = gray_frames(3, 16, 20, seed=1), gray_frames(2, 16, 20, seed=2)
    with h5py.File(path, "w") as fh:
        write_clip_group(fh.create_group("clips/b"), b, {"clip_id": "b"}, compression=None)
        write_clip_group(fh.create_group("clips/a"), a, {"clip_id": "a"})
    np.testing.assert_array_equal(read_hdf5_clip(path).to_array(), a)  # first by name
    np.testing.assert_array_equal(read_hdf5_clip(path, clip_id="b").to_array(), b)
    with pytest.raises(InputError, match="has no clip 'zz'"):
        read_hdf5_clip(path, clip_id="zz")


def test_cropped_hdf5_clip_stays_lazy(tmp_path):
    write_hdf5_clip(tmp_path / "c.h5", gray_frames(3, 20, 30), {})
    clip = open_clip(tmp_path / "c.h5")
    part = clip.cropped(Region(2, 3, 12, 23))
    assert part.shape == (3, 10, 20)
    np.testing.assert_array_equal(part.frame(1), clip.frame(1)[2:12, 3:23])
    with pytest.raises(InputError, match="imaging region .* lies outside the frame"):
        clip.cropped(Region(100, 100, 120, 130))


def _message(path, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        open_clip(path, **kwargs)
    assert str(info.value).startswith(str(path))
    return str(info.value)


def test_hdf5_not_ours(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as fh:
        fh["images"] = np.zeros((2, 4, 4), np.uint8)
    assert _message(path).endswith("HDF5 file holds no UltraMN clip (no 'frames' or '/clips/<id>/frames')")
    with h5py.File(path, "w") as fh:
        fh["frames"] = np.zeros((2, 4, 4), np.uint8)  # right name, no format attribute
    assert f"HDF5 file is not an UltraMN clip (no format='{FORMAT}' attribute)" in _message(path)


def test_hdf5_wrong_frames(tmp_path):
    path = tmp_path / "float.h5"
    with h5py.File(path, "w") as fh:
        fh["frames"] = np.zeros((2, 4, 4), np.float32)
        fh.attrs["format"] = FORMAT
    assert "'frames' must be non-empty (T, H, W) uint8, got (2, 4, 4) float32" in _message(path)


def test_not_hdf5(tmp_path):
    path = tmp_path / "fake.h5"
    path.write_bytes(b"definitely not hdf5")
    assert "is not a readable HDF5 file" in _message(path)


def test_write_rejects_bad_shape(tmp_path):
    with pytest.raises(ValueError, match=r"non-empty \(T, H, W\) array, got shape \(4, 4\)"):
        write_hdf5_clip(tmp_path / "x.h5", np.zeros((4, 4), np.uint8), {})
    assert not list(tmp_path.iterdir())  # the failed write left nothing behind


@pytest.mark.parametrize("compression", ["zstd", "lz4", "gzip", "lzf", None])
def test_every_frame_compression_round_trips_exactly(tmp_path, compression):
    frames = gray_frames(3, 16, 24)
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as fh:
        write_clip_group(fh, frames, META, compression=compression)
    np.testing.assert_array_equal(open_clip(path).to_array(), frames)


def test_unknown_compression_is_refused(tmp_path):
    with h5py.File(tmp_path / "c.h5", "w") as fh, pytest.raises(ValueError, match="zstd"):
        write_clip_group(fh, gray_frames(2, 8, 8), META, compression="brotli")


def test_a_fresh_process_reads_blosc_frames_without_importing_hdf5plugin_itself(tmp_path):
    """Blosc is a plugin filter: our readers must register it, not rely on an earlier import."""
    import subprocess
    import sys

    frames = gray_frames(3, 16, 24)
    write_hdf5_clip(tmp_path / "c.h5", frames, META)  # the default: Blosc-Zstd
    np.save(tmp_path / "want.npy", frames)
    code = (
        "import sys, numpy as np\n"
        "from napari_ultramn.io import open_clip\n"
        "assert 'hdf5plugin' not in sys.modules\n"
        f"got = open_clip(r'{tmp_path / 'c.h5'}').to_array()\n"
        f"np.testing.assert_array_equal(got, np.load(r'{tmp_path / 'want.npy'}'))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
