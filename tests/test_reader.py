"""napari reader: which paths it claims, and that dropping a clip opens a lazy, calibrated layer."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from PIL import Image
from pydicom import uid

from napari_ultramn._reader import napari_get_reader, read_clips
from napari_ultramn.io import dicom as dicom_io
from napari_ultramn.io.hdf5clip import write_hdf5_clip
from tests.dicom_factory import gray_frames, write_dicom


@pytest.fixture
def cine(tmp_path):
    path = tmp_path / "cine.dcm"
    write_dicom(
        path,
        gray_frames(20, 32, 48),
        "YBR_FULL_422",
        uid.JPEGBaseline8Bit,
        region=(4, 2, 30, 46),
        delta_cm=(0.02, 0.015),
    )
    return path


def test_claims_clips_only(tmp_path, cine):
    assert napari_get_reader(str(cine)) is read_clips
    no_suffix = tmp_path / "IM0001"
    no_suffix.write_bytes(cine.read_bytes())  # DICOM recognised by its magic, not its name
    assert napari_get_reader(str(no_suffix)) is read_clips
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(frames / "f1.png")
    assert napari_get_reader(str(frames)) is read_clips
    write_hdf5_clip(tmp_path / "ours.h5", gray_frames(2, 8, 8), {})
    assert napari_get_reader([str(cine), str(tmp_path / "ours.h5")]) is read_clips

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as fh:
        fh["x"] = np.zeros(3)
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    assert napari_get_reader(str(frames / "f1.png")) is read_clips  # a one-frame clip
    for path in (text, other, empty, tmp_path / "missing.dcm"):
        assert napari_get_reader(str(path)) is None, path
    assert napari_get_reader([str(cine), str(text)]) is None


def test_layer_data_without_viewer(cine):
    [(data, kwargs, kind)] = read_clips(str(cine))
    assert kind == "image" and data.shape == (20, 32, 48)
    assert kwargs["scale"] == pytest.approx((1.0, 0.2, 0.15))
    assert kwargs["metadata"]["spacing_source"] == "us_region"
    assert kwargs["metadata"]["clip"].frames is data
    assert kwargs["contrast_limits"] == (0, 255)


@pytest.mark.gui
def test_viewer_open_is_lazy_and_calibrated(make_napari_viewer, cine, monkeypatch):
    decoded = []
    real = dicom_io._decode_frame
    monkeypatch.setattr(dicom_io, "_decode_frame", lambda ds, dec, i, n: decoded.append(i) or real(ds, dec, i, n))
    viewer = make_napari_viewer()
    layers = viewer.open(str(cine), plugin="napari-ultramn")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.__class__.__name__ == "Image"
    assert tuple(layer.scale) == pytest.approx((1.0, 0.2, 0.15))
    assert [str(u) for u in layer.units][1:] == ["millimeter", "millimeter"]
    assert layer.metadata["spacing_mm"] == pytest.approx([0.2, 0.15])
    assert layer.metadata["frame_time_ms"] == 40.0
    assert layer.metadata["clip"].n_frames == 20
    assert layer.data.shape == (20, 32, 48)
    assert len(decoded) <= 2, decoded  # frame 0 at open (+ one more at most), never all 20
    viewer.dims.set_point(0, 7)
    assert 7 in decoded and len(decoded) <= 3
