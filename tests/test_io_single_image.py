"""Single PNG/JPEG/BMP/TIFF images as one-frame clips, and how ingest tells stills from frame folders."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from dataset_tools.ingest import find_sources
from napari_ultramn._reader import napari_get_reader, read_clips
from napari_ultramn.errors import InputError
from napari_ultramn.io import open_clip
from tests.dicom_factory import gray_frames, luminance, tinted_rgb, write_dicom, write_video


def _message(path) -> str:
    with pytest.raises(InputError) as info:
        open_clip(path)
    return str(info.value)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_lossless_still_is_a_one_frame_clip(tmp_path, suffix):
    gray = gray_frames(1, 20, 30)[0]
    rgb = tinted_rgb(gray)
    Image.fromarray(rgb).save(tmp_path / f"still{suffix}")
    clip = open_clip(tmp_path / f"still{suffix}")
    assert clip.shape == (1, 20, 30) and clip.spacing_mm is None and clip.frame_time_ms is None
    np.testing.assert_array_equal(clip.to_array()[0], luminance(rgb))
    assert clip.sha256 and clip.source_path == tmp_path / f"still{suffix}"


def test_jpeg_gray_16bit_palette_and_planar_tiff(tmp_path):
    gray = gray_frames(1, 24, 32)[0]
    Image.fromarray(gray).save(tmp_path / "a.jpeg", quality=95)
    Image.fromarray(np.repeat(gray[..., None], 3, -1)).save(tmp_path / "b.JPG", quality=95)
    for name in ("a.jpeg", "b.JPG"):
        got = open_clip(tmp_path / name).frame(0).astype(int)
        assert np.abs(got - gray).max() <= 6, name
    Image.fromarray(gray.astype(np.uint16) * 256 + 99).save(tmp_path / "wide.png")
    np.testing.assert_array_equal(open_clip(tmp_path / "wide.png").frame(0), gray)  # top 8 bits
    Image.fromarray(gray).convert("P").save(tmp_path / "palette.png")
    np.testing.assert_array_equal(open_clip(tmp_path / "palette.png").frame(0), gray)
    rgb = tinted_rgb(gray)  # RGB planes one after another, as some microscopy/PACS tools write
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(open_clip(tmp_path / "planar.tif").frame(0), luminance(rgb))


def test_damaged_and_multi_page_images_are_refused_by_name(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert _message(tmp_path / "broken.png").startswith(f"{tmp_path / 'broken.png'}: image cannot be read (")
    tifffile.imwrite(tmp_path / "stack.tif", gray_frames(3, 8, 8), photometric="minisblack")
    assert _message(tmp_path / "stack.tif") == (
        f"{tmp_path / 'stack.tif'}: image cannot be read (multi-page TIFF (3 pages); expected one frame)"
    )


def test_napari_opens_a_still(tmp_path):
    Image.fromarray(gray_frames(1, 8, 10)[0]).save(tmp_path / "still.png")
    assert napari_get_reader(str(tmp_path / "still.png")) is read_clips
    [(data, kwargs, _)] = read_clips(str(tmp_path / "still.png"))
    assert data.shape == (1, 8, 10) and kwargs["name"] == "still" and "scale" not in kwargs


def test_frame_folder_or_stills(tmp_path):
    """Images of one size, with no other clip beside them, are a frame folder; anything else is
    stills, one clip per image."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for k, frame in enumerate(gray_frames(3, 12, 16)):
        Image.fromarray(frame).save(frames / f"f{k}.jpg")
    (frames / "notes.txt").write_text("exported by the scanner")
    sizes = tmp_path / "sizes"
    sizes.mkdir()
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(sizes / "a.png")
    Image.fromarray(np.zeros((10, 16), np.uint8)).save(sizes / "b.png")
    beside = tmp_path / "beside"
    beside.mkdir()
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(beside / "s1.png")
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(beside / "s2.png")
    write_video(beside / "loop.mp4", gray_frames(4, 16, 16))
    single = tmp_path / "single"
    single.mkdir()
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(single / "only.png")
    write_dicom(single / "cine.dcm", gray_frames(2, 8, 8))

    assert find_sources(frames) == [frames]
    assert open_clip(frames).shape == (3, 12, 16)
    assert find_sources(tmp_path) == [
        beside / "loop.mp4",
        beside / "s1.png",
        beside / "s2.png",
        frames,
        single / "cine.dcm",
        single / "only.png",
        sizes / "a.png",
        sizes / "b.png",
    ]


def test_ingest_registers_stills_sequences_and_series(tmp_path):
    import SimpleITK as sitk

    from dataset_tools.ingest import ingest
    from napari_ultramn.progress import run_to_end
    from napari_ultramn.project import Project
    from tests.dicom_factory import write_frame

    source = tmp_path / "export"
    (source / "series").mkdir(parents=True)
    for k in range(3):
        write_frame(source / "series" / f"IM{k}.dcm", gray_frames(1, 8, 8, seed=k)[0], number=k)
    Image.fromarray(gray_frames(1, 10, 12)[0]).save(source / "still.png")
    img = sitk.GetImageFromArray(gray_frames(4, 10, 12))
    img.SetSpacing((0.1, 0.1, 1.0))
    sitk.WriteImage(img, str(source / "loop.mha"))
    mapping = tmp_path / "map.csv"
    # these tiny test images hold no ultrasound texture to find, so each gets its imaging area
    mapping.write_text("file,patient_id,region\nstill.png,P1,0 0 12 10\nloop.mha,P2,1 1 11 9\nseries,P3,0 0 8 8\n")
    summary = run_to_end(ingest(source, tmp_path / "project", mapping_csv=mapping))
    assert summary.failed == [] and len(summary.added) == 3
    records = {r["source_kind"]: r for r in Project.open(tmp_path / "project").clips()}
    assert {k: r["n_frames"] for k, r in records.items()} == {"dicom_series": 3, "image": 1, "image_sequence": 4}
    assert records["image_sequence"]["spacing_mm"] == pytest.approx([0.1, 0.1])
