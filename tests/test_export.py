"""Mask export: PNG sequences and DICOM SEG referencing a multi-frame ultrasound source."""

import imageio.v3 as iio
import numpy as np
import pydicom
import pytest

from napari_ultramn.annotation.export import export_dicom_seg, export_png_sequence
from napari_ultramn.errors import InputError
from tests.dicom_factory import write_us_cine

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"


def _masks(n_frames=4, rows=32, cols=40):
    masks = np.zeros((n_frames, rows, cols), bool)
    for t in range(n_frames):
        masks[t, 5 + t : 15 + t, 10 : 20 + t] = True
    masks[1] = False  # a frame with no nerve visible
    return masks


def test_png_sequence_writes_one_zero_padded_png_per_frame(tmp_path):
    masks = _masks()
    paths = export_png_sequence(masks, tmp_path / "png")
    assert [p.name for p in paths] == [f"mask_{t:04d}.png" for t in range(4)]
    for t, p in enumerate(paths):
        img = iio.imread(p)
        assert img.dtype == np.uint8 and set(np.unique(img)) <= {0, 255}
        np.testing.assert_array_equal(img == 255, masks[t])
    assert not list((tmp_path / "png").glob(".*"))  # no temporary files left behind


def test_png_sequence_from_a_dict_keeps_frame_numbers(tmp_path):
    m = np.zeros((6, 7), bool)
    m[2:4, 1:5] = True
    paths = export_png_sequence({3: m, 12345: m}, tmp_path, prefix="f")
    assert [p.name for p in paths] == ["f00003.png", "f12345.png"]


def test_png_sequence_rejects_a_single_frame_array(tmp_path):
    with pytest.raises(ValueError, match=r"must be \(T, H, W\)"):
        export_png_sequence(np.zeros((5, 5), bool), tmp_path)


def test_dicom_seg_reads_back_references_the_source_and_equals_the_masks(tmp_path):
    import highdicom as hd

    src = write_us_cine(tmp_path / "cine.dcm")
    masks = _masks()
    out = export_dicom_seg(masks, tmp_path / "cine.dcm", tmp_path / "seg" / "nerve.dcm", rater="r1")
    seg = hd.seg.segread(out)
    assert seg.SegmentationType == "BINARY"
    assert seg.SegmentSequence[0].SegmentLabel == "Median nerve"
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "56459004"
    assert seg.ContentCreatorName.family_name == "r1"
    refs = {
        item.ReferencedSOPInstanceUID
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert refs == {src.SOPInstanceUID}
    # every SEG frame points at the matching source frame
    source_frames = [
        int(fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
        for fg in seg.PerFrameFunctionalGroupsSequence
    ]
    assert source_frames == [1, 2, 3, 4]
    # highdicom maps the SEG back onto the source frames through those references
    by_source = seg.get_pixels_by_source_frame(
        source_sop_instance_uid=src.SOPInstanceUID, source_frame_numbers=[1, 2, 3, 4], segment_numbers=[1]
    )
    np.testing.assert_array_equal(by_source[..., 0].astype(bool), masks)
    np.testing.assert_array_equal(pydicom.dcmread(out).pixel_array.astype(bool), masks)


def test_dicom_seg_pads_cropped_masks_back_into_the_full_frame(tmp_path):
    import highdicom as hd

    write_us_cine(tmp_path / "cine.dcm", n_frames=3, rows=32, cols=40)
    cropped = np.zeros((3, 20, 30), bool)
    cropped[:, 4:9, 6:12] = True
    out = export_dicom_seg(cropped, tmp_path / "cine.dcm", tmp_path / "s.dcm", crop_region=[8, 5, 28, 35])
    pixels = hd.seg.segread(out).pixel_array.astype(bool).reshape(3, 32, 40)
    expected = np.zeros((3, 32, 40), bool)
    expected[:, 12:17, 11:17] = True
    np.testing.assert_array_equal(pixels, expected)


def test_dicom_seg_refuses_the_wrong_number_of_frames(tmp_path):
    write_us_cine(tmp_path / "cine.dcm", n_frames=4)
    with pytest.raises(InputError, match="cine.dcm: the source has 4 frames but 2 masks were given"):
        export_dicom_seg(np.zeros((2, 32, 40), bool), tmp_path / "cine.dcm", tmp_path / "s.dcm")
    assert not (tmp_path / "s.dcm").exists()


def test_dicom_seg_asks_for_crop_region_when_shapes_differ(tmp_path):
    write_us_cine(tmp_path / "cine.dcm", n_frames=2)
    with pytest.raises(InputError, match="pass crop_region"):
        export_dicom_seg(np.zeros((2, 10, 10), bool), tmp_path / "cine.dcm", tmp_path / "s.dcm")
    with pytest.raises(ValueError, match=r"crop_region \[0, 0, 50, 10\] does not fit"):
        export_dicom_seg(
            np.zeros((2, 50, 10), bool), tmp_path / "cine.dcm", tmp_path / "s.dcm", crop_region=[0, 0, 50, 10]
        )


def test_dicom_seg_names_an_unreadable_source(tmp_path):
    bad = tmp_path / "notdicom.dcm"
    bad.write_bytes(b"hello")
    with pytest.raises(InputError, match="notdicom.dcm: cannot read the source DICOM"):
        export_dicom_seg(np.zeros((1, 4, 4), bool), bad, tmp_path / "s.dcm")


def test_dicom_seg_of_a_phantom_study_clip_opened_cropped(tmp_path):
    """End to end: a JPEG-compressed phantom cine with a text band, traced on its imaging region."""
    import highdicom as hd

    from napari_ultramn.io import open_clip
    from napari_ultramn.phantom import write_study
    from napari_ultramn.progress import run_to_end

    table = run_to_end(write_study(tmp_path / "study", 1, seed=0, n_frames=4, size=(64, 96), compress="jpeg"))
    row = table.iloc[0]
    source = tmp_path / "study" / row["file"]
    truth = np.load(tmp_path / "study" / "ground_truth" / f"{row['sha256']}.npz")["masks"]
    clip = open_clip(source, crop_to_region=True)
    top, left, bottom, right = clip.extra["crop_region"]
    out = export_dicom_seg(truth, source, tmp_path / "seg.dcm", crop_region=clip.extra["crop_region"])
    uid = pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID
    pixels = (
        hd.seg.segread(out)
        .get_pixels_by_source_frame(
            source_sop_instance_uid=uid, source_frame_numbers=[1, 2, 3, 4], segment_numbers=[1]
        )[..., 0]
        .astype(bool)
    )
    np.testing.assert_array_equal(pixels[:, top:bottom, left:right], truth)
    assert pixels.sum() == truth.sum()
