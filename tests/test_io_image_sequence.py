"""MetaImage (PLUS) and NRRD (3D Slicer, PLUS) image sequences as clips, and their bad input.

MetaImage files are written with SimpleITK, as PLUS's own writer lays them out (W x H x T,
per-frame ``Seq_FrameNNNN_Timestamp`` fields). Slicer's sequence NRRDs have a ``list`` axis that
SimpleITK cannot write, so those are written byte for byte as Slicer writes them (header text
from Slicer's sequence file-format documentation, then the raw pixels).
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from dataset_tools.ingest import find_sources
from napari_ultramn._reader import napari_get_reader, read_clips
from napari_ultramn.errors import InputError
from napari_ultramn.io import open_clip
from tests.dicom_factory import gray_frames, luminance, tinted_rgb


def _message(path) -> str:
    with pytest.raises(InputError) as info:
        open_clip(path)
    return str(info.value)


def write_plus_mha(path, frames, spacing_xy=(0.12, 0.1), times_s=None, compress=False):
    """A PLUS-style sequence: (T, H, W[, 3]) frames as a W x H x T image with per-frame stamps."""
    img = sitk.GetImageFromArray(frames, isVector=frames.ndim == 4)
    img.SetSpacing((*spacing_xy, 1.0))
    img.SetMetaData("UltrasoundImageOrientation", "MF")
    for k, t in enumerate(times_s if times_s is not None else []):
        img.SetMetaData(f"Seq_Frame{k:04d}_Timestamp", f"{t:.6f}")
        img.SetMetaData(f"Seq_Frame{k:04d}_ImageStatus", "OK")
    sitk.WriteImage(img, str(path), useCompression=compress)
    return path


def write_nrrd(path, header: str, data: np.ndarray, encoding: str = "raw"):
    """A NRRD file from header lines (without type/encoding) and C-ordered pixel bytes."""
    dtype = {np.dtype(np.uint8): "uint8", np.dtype("<u2"): "unsigned short"}[data.dtype]
    body = data.tobytes()
    if encoding == "gzip":
        body = gzip.compress(body)
    text = f"NRRD0004\ntype: {dtype}\n{header.strip()}\nendian: little\nencoding: {encoding}\n\n"
    path.write_bytes(text.encode() + body)
    return path


# -- PLUS MetaImage -------------------------------------------------------------------------


def test_plus_mha_frames_spacing_and_timestamps(tmp_path):
    frames = gray_frames(6, 20, 28)
    times = 100.0 + 0.05 * np.arange(6)  # 20 frames/s, in seconds as PLUS stamps them
    clip = open_clip(write_plus_mha(tmp_path / "seq.mha", frames, (0.12, 0.1), times))
    assert clip.shape == (6, 20, 28)
    np.testing.assert_array_equal(clip.to_array(), frames)
    assert clip.spacing_mm == pytest.approx((0.1, 0.12))  # (row, col) = (y, x)
    assert clip.spacing_source == "stored"
    assert clip.frame_time_ms == pytest.approx(50.0)
    assert clip.extra == {"format": "MetaImage", "ultrasound_image_orientation": "MF"}


def test_uncompressed_mha_is_read_frame_by_frame(tmp_path):
    frames = gray_frames(5, 12, 16)
    path = write_plus_mha(tmp_path / "seq.mha", frames)
    clip = open_clip(path)
    # frame 3's bytes change after opening: a reader that streams shows the new ones
    data = bytearray(path.read_bytes())
    start = len(data) - frames.nbytes + 3 * frames[0].nbytes
    data[start : start + frames[0].nbytes] = bytes(frames[0].nbytes)
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(clip.frame(3), np.zeros((12, 16), np.uint8))
    np.testing.assert_array_equal(clip.frame(4), frames[4])


def test_mhd_with_raw_rgb_and_compressed(tmp_path):
    gray = gray_frames(4, 16, 20)
    rgb = tinted_rgb(gray)
    clip = open_clip(write_plus_mha(tmp_path / "colour.mhd", rgb))
    assert (tmp_path / "colour.raw").exists() or (tmp_path / "colour.zraw").exists()
    np.testing.assert_array_equal(clip.to_array(), luminance(rgb))
    clip = open_clip(write_plus_mha(tmp_path / "packed.mha", gray, compress=True))
    np.testing.assert_array_equal(clip.to_array(), gray)


def test_16bit_is_windowed_over_the_whole_clip(tmp_path):
    gray = gray_frames(4, 10, 12)
    wide = gray.astype(np.uint16) * 16 + 1000  # 12-bit data: the top 8 of 16 bits would be dark
    clip = open_clip(write_plus_mha(tmp_path / "wide.mha", wide))
    lo, hi = float(wide.min()), float(wide.max())
    expected = np.round((wide - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    np.testing.assert_array_equal(clip.to_array(), expected)


def test_unit_spacing_means_uncalibrated(tmp_path):
    clip = open_clip(write_plus_mha(tmp_path / "plain.mha", gray_frames(2, 8, 8), (1.0, 1.0)))
    assert clip.spacing_mm is None and clip.spacing_source == "none"
    assert clip.frame_time_ms is None


# -- 3D Slicer / PLUS NRRD ------------------------------------------------------------------


SLICER_CURRENT = """
dimension: 4
space: left-posterior-superior
sizes: {w} {h} 1 {t}
space directions: (0.15,0,0) (0,0.25,0) (0,0,1) none
kinds: domain domain domain list
labels: "" "" "" "{label}"
units: "" "" "" "{unit}"
space origin: (0,0,0)
DataNodeClassName:=vtkMRMLScalarVolumeNode
axis 3 index type:=numeric
axis 3 index values:={values}
"""

SLICER_OLD = """
dimension: 4
space: right-anterior-superior
sizes: {t} {w} {h} 1
space directions: none (0.15,0,0) (0,0.25,0) (0,0,1)
kinds: list domain domain domain
labels: "{label}" "" "" ""
space origin: (0,0,0)
axis 0 index type:=numeric
axis 0 index values:={values}
"""


@pytest.mark.parametrize(
    "label, unit, step, frame_time",
    [("time", "s", 0.04, 40.0), ("time", "ms", 33.0, 33.0), ("time", "", 0.1, 100.0), ("frame", "", 1.0, None)],
)
def test_slicer_sequence_list_axis_last(tmp_path, label, unit, step, frame_time):
    frames = gray_frames(5, 14, 18)
    values = " ".join(f"{2.0 + step * k:g}" for k in range(5))
    header = SLICER_CURRENT.format(w=18, h=14, t=5, label=label, unit=unit, values=values)
    # list axis slowest: the frames one after another, each row-major
    clip = open_clip(write_nrrd(tmp_path / "us.seq.nrrd", header, frames, "gzip"))
    np.testing.assert_array_equal(clip.to_array(), frames)
    assert clip.spacing_mm == pytest.approx((0.25, 0.15))
    assert clip.frame_time_ms == (pytest.approx(frame_time) if frame_time else None)
    assert clip.extra["format"] == "NRRD"


def test_old_slicer_sequence_list_axis_first(tmp_path):
    frames = gray_frames(4, 10, 12)
    header = SLICER_OLD.format(w=12, h=10, t=4, label="time", values="0 0.05 0.1 0.15")
    # list axis fastest: each pixel's 4 item values next to each other
    data = np.ascontiguousarray(np.moveaxis(frames, 0, -1))
    clip = open_clip(write_nrrd(tmp_path / "old.seq.nrrd", header, data))
    np.testing.assert_array_equal(clip.to_array(), frames)
    assert clip.frame_time_ms == pytest.approx(50.0)


def test_slicer_colour_sequence_and_plus_nrrd_16bit(tmp_path):
    gray = gray_frames(3, 8, 10)
    rgb = tinted_rgb(gray)
    header = """
dimension: 5
space: left-posterior-superior
sizes: 3 10 8 1 3
space directions: none (0.2,0,0) (0,0.2,0) (0,0,1) none
kinds: RGB-color domain domain domain list
"""
    clip = open_clip(write_nrrd(tmp_path / "rgb.seq.nrrd", header, rgb))
    np.testing.assert_array_equal(clip.to_array(), luminance(rgb))

    wide = (gray.astype(np.uint16) * 256).astype("<u2")
    header = """
dimension: 3
sizes: 10 8 3
spacings: 0.08 0.09 NaN
kinds: domain domain list
Seq_Frame0000_Timestamp:=5.00
Seq_Frame0001_Timestamp:=5.03
Seq_Frame0002_Timestamp:=5.06
"""
    clip = open_clip(write_nrrd(tmp_path / "plus.nrrd", header, wide))
    assert clip.spacing_mm == pytest.approx((0.09, 0.08))
    assert clip.frame_time_ms == pytest.approx(30.0)
    lo, hi = float(gray.min()), float(gray.max())
    np.testing.assert_array_equal(clip.to_array(), np.round((gray - lo) * (255.0 / (hi - lo))).astype(np.uint8))


def test_detached_nrrd_header_with_gzip_data(tmp_path):
    frames = gray_frames(3, 6, 8)
    (tmp_path / "clip.raw.gz").write_bytes(gzip.compress(frames.tobytes()))
    (tmp_path / "clip.nhdr").write_text(
        "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 8 6 3\nspacings: 0.2 0.3 NaN\n"
        "kinds: domain domain list\nencoding: gzip\ndata file: clip.raw.gz\n\n"
    )
    clip = open_clip(tmp_path / "clip.nhdr")
    np.testing.assert_array_equal(clip.to_array(), frames)
    assert clip.spacing_mm == pytest.approx((0.3, 0.2))
    assert find_sources(tmp_path) == [tmp_path / "clip.nhdr"]
    (tmp_path / "clip.raw.gz").unlink()
    assert _message(tmp_path / "clip.nhdr").startswith(f"{tmp_path / 'clip.nhdr'}: NRRD ")


# -- bad input ------------------------------------------------------------------------------


def test_corrupt_metaimage_headers_name_the_file_and_field(tmp_path):
    good = write_plus_mha(tmp_path / "good.mha", gray_frames(3, 8, 8)).read_bytes()
    cases = {
        "dims.mha": (b"DimSize = 8 8 3", b"DimSize = 8 8", "MetaImage DimSize '8 8' does not give 3 sizes"),
        "type.mha": (b"MET_UCHAR", b"MET_PIXEL", "MetaImage ElementType 'MET_PIXEL' is not supported"),
        "ndims.mha": (b"NDims = 3\n", b"", "MetaImage header lacks NDims"),
    }
    for name, (old, new, problem) in cases.items():
        assert old in good
        (tmp_path / name).write_bytes(good.replace(old, new))
        assert _message(tmp_path / name) == f"{tmp_path / name}: {problem}"
    (tmp_path / "cut.mha").write_bytes(good[:-20])
    assert _message(tmp_path / "cut.mha").endswith(
        "cut.mha: MetaImage data is truncated: 172 of the 192 bytes that 3 frame(s) need"
    )
    (tmp_path / "text.mha").write_bytes(b"\x00\x01 not a header")
    assert "text.mha: MetaImage header line 1 is not 'Key = Value'" in _message(tmp_path / "text.mha")
    (tmp_path / "lost.mhd").write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 4 4 2\nElementType = MET_UCHAR\nElementDataFile = lost.raw\n"
    )
    assert _message(tmp_path / "lost.mhd").endswith("lost.mhd: MetaImage data file lost.raw is missing")


def test_bad_nrrd_and_volumes_over_time_are_refused(tmp_path):
    (tmp_path / "fake.nrrd").write_bytes(b"PNG not nrrd")
    assert _message(tmp_path / "fake.nrrd").endswith("fake.nrrd: is not a NRRD file (it does not start with NRRD000x)")
    bad = write_nrrd(tmp_path / "sizes.nrrd", "dimension: 3\nsizes: 4 4", np.zeros(48, np.uint8))
    assert _message(bad) == f"{bad}: NRRD header cannot be read (parsed 2 values, but dimension is 3)"
    cut = write_nrrd(tmp_path / "cut.nrrd", "dimension: 3\nsizes: 4 4 3", np.zeros(40, np.uint8))
    assert _message(cut).startswith(f"{cut}: NRRD data cannot be read (")
    volume = write_nrrd(tmp_path / "vol.nrrd", "dimension: 4\nsizes: 4 4 2 3", np.zeros(96, np.uint8))
    assert _message(volume) == f"{volume}: is a 4D image of 4x4x2x3 voxels; expected 2D frames over time"


# -- discovery ------------------------------------------------------------------------------


def test_reader_and_ingest_find_sequences_not_their_data_files(tmp_path):
    write_plus_mha(tmp_path / "a.mhd", gray_frames(2, 8, 8), (0.2, 0.2))
    write_plus_mha(tmp_path / "b.mha", gray_frames(2, 8, 8))
    assert find_sources(tmp_path) == [tmp_path / "a.mhd", tmp_path / "b.mha"]
    assert napari_get_reader(str(tmp_path / "a.mhd")) is read_clips
    [(data, kwargs, _)] = read_clips(str(tmp_path / "a.mhd"))
    assert data.shape == (2, 8, 8) and kwargs["scale"] == pytest.approx((1.0, 0.2, 0.2))


def test_detached_headers_hash_their_pixels(tmp_path):
    """Two .mhd recordings with one header but other pixels are two clips, not a re-ingest."""
    from napari_ultramn.io.source_files import file_sha256

    for name, seed in (("a", 0), ("b", 1)):
        (tmp_path / name).mkdir()
        write_plus_mha(tmp_path / name / "loop.mhd", gray_frames(3, 8, 8, seed=seed))
    a, b = tmp_path / "a" / "loop.mhd", tmp_path / "b" / "loop.mhd"
    assert a.read_bytes() == b.read_bytes()
    assert file_sha256(a) != file_sha256(b)
    listed = tmp_path / "listed.nhdr"
    (tmp_path / "s1.raw").write_bytes(bytes(16))
    (tmp_path / "s2.raw").write_bytes(bytes(range(16)))
    listed.write_text(
        "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 2\nencoding: raw\ndata file: LIST\ns1.raw\ns2.raw\n"
    )
    assert open_clip(listed).to_array()[1].ravel().tolist() == list(range(16))
    from napari_ultramn.io.image_sequence import data_files

    assert data_files(listed) == [tmp_path / "s1.raw", tmp_path / "s2.raw"]
