"""DICOM clips: every photometric interpretation x transfer syntax decodes to the expected gray,
calibration, timing, cropping, laziness, and one clear message for each kind of bad file."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.encaps import encapsulate

from napari_ultramn.errors import InputError
from napari_ultramn.io import dicom as dicom_io
from napari_ultramn.io import open_clip
from napari_ultramn.io.dicom import frame_time_ms, read_dicom_clip
from tests.dicom_factory import (
    LOSSY,
    NATIVE,
    PHOTOMETRICS,
    gray_frames,
    have_jpeg_lossless_encoder,
    write_dicom,
    write_sr,
)

_NEEDS_GDCM = pytest.mark.skipif(
    not have_jpeg_lossless_encoder(), reason="python-gdcm (JPEG lossless encoder) not installed"
)
_ALL_PI = [(pi, ts) for ts in NATIVE for pi in PHOTOMETRICS]
_COMPRESSED = [
    *[(pi, uid.RLELossless) for pi in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL")],
    ("MONOCHROME2", uid.JPEGBaseline8Bit),
    ("YBR_FULL_422", uid.JPEGBaseline8Bit),
    ("YBR_FULL", uid.JPEGBaseline8Bit),
    *[pytest.param((pi, uid.JPEGLosslessSV1), marks=_NEEDS_GDCM) for pi in ("MONOCHROME2", "MONOCHROME1", "RGB")],
    ("MONOCHROME2", uid.JPEGLSLossless),
    ("PALETTE COLOR", uid.JPEGLSLossless),
    ("RGB", uid.JPEGLSLossless),
    ("MONOCHROME2", uid.JPEGLSNearLossless),
    ("RGB", uid.JPEGLSNearLossless),
    ("MONOCHROME2", uid.JPEG2000Lossless),
    ("RGB", uid.JPEG2000Lossless),
    ("YBR_RCT", uid.JPEG2000Lossless),
    ("MONOCHROME2", uid.JPEG2000),
    ("YBR_ICT", uid.JPEG2000),
]


def _id(case):
    pi, ts = case[:2]
    return f"{pi.replace(' ', '_')}-{uid.UID(ts).keyword or ts}"


@pytest.mark.parametrize("case", _ALL_PI + _COMPRESSED, ids=_id)
def test_decodes_expected_gray(tmp_path, case):
    pi, ts = case
    path = tmp_path / "clip.dcm"
    expected = write_dicom(path, gray_frames(3, 32, 48), pi, ts)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == ts
    clip = read_dicom_clip(path)
    got = clip.to_array()
    assert got.shape == expected.shape == (3, 32, 48)
    assert got.dtype == np.uint8
    tolerance = LOSSY.get(ts, 0)
    assert np.abs(got.astype(int) - expected).max() <= tolerance


@pytest.mark.parametrize(
    ("ts", "kwargs"),
    [
        (uid.ExplicitVRLittleEndian, {"bits": 16}),
        (uid.ExplicitVRBigEndian, {"bits": 16}),
        (uid.ExplicitVRLittleEndian, {"palette_bits": 16}),
        (uid.RLELossless, {"palette_bits": 16}),
    ],
    ids=["mono12-LE", "mono12-BE", "palette16-LE", "palette16-RLE"],
)
def test_wide_samples_and_tables(tmp_path, ts, kwargs):
    pi = "PALETTE COLOR" if "palette_bits" in kwargs else "MONOCHROME2"
    expected = write_dicom(tmp_path / "c.dcm", gray_frames(2, 16, 24), pi, ts, **kwargs)
    np.testing.assert_array_equal(read_dicom_clip(tmp_path / "c.dcm").to_array(), expected)


@pytest.mark.parametrize(
    "case",
    [("MONOCHROME2", uid.ExplicitVRLittleEndian), ("YBR_FULL_422", uid.JPEGBaseline8Bit), ("RGB", uid.RLELossless)],
    ids=_id,
)
def test_single_frame_image(tmp_path, case):
    pi, ts = case
    g = gray_frames(1, 20, 30)
    expected = write_dicom(tmp_path / "one.dcm", g, pi, ts, sop_class=uid.UltrasoundImageStorage)
    assert "NumberOfFrames" not in pydicom.dcmread(tmp_path / "one.dcm")
    clip = open_clip(tmp_path / "one.dcm")
    assert clip.shape == (1, 20, 30)
    assert np.abs(clip.frame(0).astype(int) - expected[0]).max() <= LOSSY.get(ts, 0)


def test_region_calibration_and_crop_drop_text_band(tmp_path):
    g = gray_frames(4, 40, 48)
    g[:, :6, :] = 255  # burned-in text band above the imaging region
    region = (8, 4, 36, 44)
    write_dicom(tmp_path / "us.dcm", g, region=region, delta_cm=(0.012, 0.01), pixel_spacing=(0.5, 0.5))
    clip = open_clip(tmp_path / "us.dcm")
    assert clip.spacing_source == "us_region"  # region beats PixelSpacing
    assert clip.spacing_mm == pytest.approx((0.12, 0.1))
    assert clip.imaging_region.as_list() == list(region)
    assert (clip.frame(0)[:6] == 255).all()
    cropped = open_clip(tmp_path / "us.dcm", crop_to_region=True)
    assert cropped.shape == (4, 28, 40)
    assert cropped.to_array().max() < 255
    np.testing.assert_array_equal(cropped.to_array(), g[:, 8:36, 4:44])
    assert cropped.spacing_mm == clip.spacing_mm
    assert cropped.metadata()["crop_region"] == list(region)


def test_pixel_spacing_fallback_and_metadata(tmp_path):
    write_dicom(tmp_path / "ps.dcm", gray_frames(2), pixel_spacing=(0.2, 0.25))
    clip = read_dicom_clip(tmp_path / "ps.dcm")
    assert clip.spacing_mm == (0.2, 0.25) and clip.spacing_source == "pixel_spacing"
    assert (clip.manufacturer, clip.device_model, clip.side) == ("PhantomCo", "Model X", "left")
    assert clip.frame_time_ms == 40.0
    write_dicom(tmp_path / "none.dcm", gray_frames(2))
    plain = read_dicom_clip(tmp_path / "none.dcm")
    assert plain.spacing_mm is None and plain.spacing_unit == "px"


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"FrameTime": 33.3}, 33.3),
        ({"FrameTimeVector": [0, 20, 20, 22]}, 20.0),
        ({"CineRate": 25}, 40.0),
        ({"RecommendedDisplayFrameRate": 50}, 20.0),
        ({}, None),
    ],
)
def test_frame_time(tags, expected):
    ds = pydicom.Dataset()
    for key, value in tags.items():
        setattr(ds, key, value)
    assert frame_time_ms(ds) == (None if expected is None else pytest.approx(expected))


def test_open_decodes_only_first_frame(tmp_path, monkeypatch):
    write_dicom(tmp_path / "jpg.dcm", gray_frames(12, 16, 24), "YBR_FULL_422", uid.JPEGBaseline8Bit)
    decoded = []
    real = dicom_io._decode_frame
    monkeypatch.setattr(dicom_io, "_decode_frame", lambda ds, dec, i, n: decoded.append(i) or real(ds, dec, i, n))
    clip = open_clip(tmp_path / "jpg.dcm")
    assert decoded == [0]
    clip.frame(0)
    clip.frames[(0, slice(None), slice(None))]
    assert decoded == [0]  # cached
    clip.frame(7)
    assert decoded == [0, 7]


# -- bad input: one clear message naming the file and the problem -------------------------


def _message(path):
    with pytest.raises(InputError) as info:
        open_clip(path).to_array()
    assert str(info.value).startswith(str(path))
    return str(info.value)


def test_no_pixel_data(tmp_path):
    path = tmp_path / "nopix.dcm"
    write_dicom(path, gray_frames(2))
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    assert "has no pixel data" in _message(path)


def test_non_image_sop_class(tmp_path):
    path = tmp_path / "report.dcm"
    write_sr(path)
    assert "non-image DICOM object (Basic Text SR Storage)" in _message(path)


@pytest.mark.parametrize(
    "case",
    [
        ("MONOCHROME2", uid.ExplicitVRLittleEndian, 300),
        ("YBR_FULL_422", uid.JPEGBaseline8Bit, 300),
        ("RGB", uid.RLELossless, 300),
        ("MONOCHROME2", uid.JPEG2000Lossless, 200),
    ],
    ids=_id,
)
def test_truncated_inside_pixel_data(tmp_path, case):
    pi, ts, cut = case
    path = tmp_path / "cut.dcm"
    write_dicom(path, gray_frames(5, 32, 40), pi, ts)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - cut])
    assert "truncated" in _message(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "head.dcm"
    write_dicom(path, gray_frames(2))
    path.write_bytes(path.read_bytes()[:200])
    msg = _message(path)
    assert "truncated" in msg or "corrupt" in msg or "no pixel data" in msg


@pytest.mark.parametrize(
    ("tsuid", "name"),
    [(uid.MPEG2MPML, "MPEG2"), (uid.HEVCMP51, "HEVC"), ("1.2.3.4.5.6.7", "unknown")],
)
def test_unsupported_transfer_syntax(tmp_path, tsuid, name):
    path = tmp_path / "video.dcm"
    write_dicom(path, gray_frames(2))
    ds = pydicom.dcmread(path)
    # relabel, with an encapsulated stand-in for the video stream: only the decoder check rejects it
    ds.file_meta.TransferSyntaxUID = tsuid
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(200)])
    ds.save_as(path, enforce_file_format=False, implicit_vr=False, little_endian=True)
    msg = _message(path)
    assert f"({tsuid}) is not supported: no decoder is installed" in msg
    assert name in msg


def test_not_dicom(tmp_path):
    path = tmp_path / "junk.dcm"
    path.write_bytes(b"not a dicom file at all" * 10)
    assert "not a DICOM file" in _message(path)


def _wide_mono(tmp_path, photometric="MONOCHROME2", **attrs):
    """A 12-bit cine (stored = 16 * gray + 8) with extra header attributes; returns (path, stored)."""
    gray = gray_frames(2, 16, 24)
    path = tmp_path / "wide.dcm"
    write_dicom(path, gray, photometric, uid.ExplicitVRLittleEndian, bits=16)
    ds = pydicom.dcmread(path)
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.save_as(path)
    stored = (255 - gray if photometric == "MONOCHROME1" else gray).astype(np.float64) * 16 + 8
    return path, stored


def _linear_window(x, center, width):  # PS3.3 C.11.2.1.2.1, onto 0..255
    y = (x - (center - 0.5)) / (width - 1) + 0.5
    return np.clip(np.round(y * 255), 0, 255).astype(np.uint8)


def test_wide_monochrome_is_shown_through_its_window(tmp_path):
    path, stored = _wide_mono(tmp_path, WindowCenter=[1024, 2048], WindowWidth=[1024, 4096])
    got = read_dicom_clip(path).to_array()
    want = _linear_window(stored, 1024, 1024)  # the first window is the default
    np.testing.assert_array_equal(got, want)
    assert (got == 255).any() and not np.array_equal(got, (stored.astype(int) >> 4))  # not top bits


def test_window_after_rescale_linear_exact_and_monochrome1(tmp_path):
    path, stored = _wide_mono(
        tmp_path,
        "MONOCHROME1",
        RescaleSlope=2,
        RescaleIntercept=-100,
        WindowCenter=3000,
        WindowWidth=5000,
        VOILUTFunction="LINEAR_EXACT",
    )
    x = stored * 2 - 100
    want = np.clip(np.round(((x - 3000) / 5000 + 0.5) * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(read_dicom_clip(path).to_array(), 255 - want)


def test_voi_lut_sequence_and_no_voi_fall_back_to_top_bits(tmp_path):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.add_new(0x00283006, "US", [min(65535, v * 32) for v in range(4096)])  # LUT Data: 2x contrast
    path, stored = _wide_mono(tmp_path, VOILUTSequence=[item])
    want = np.round(np.minimum(65535, stored * 32) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(read_dicom_clip(path).to_array(), want)
    (tmp_path / "b").mkdir()
    plain, stored = _wide_mono(tmp_path / "b", WindowWidth=0, WindowCenter=10)  # malformed: ignored
    np.testing.assert_array_equal(read_dicom_clip(plain).to_array(), (stored.astype(int) >> 4).astype(np.uint8))
