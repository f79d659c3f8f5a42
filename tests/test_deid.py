"""De-identified DICOM copies (``--keep-dicom``): PS3.15 basic profile actions, pixel clean-up, SEG."""

import datetime as dt

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dataset_tools import deid
from tests.dicom_factory import (
    KEY,
    PARTICIPANT,
    PHANTOM_IDENTITY,
    SHIFT,
    gray_frames,
    kept_copy,
    write_dicom,
    write_phantom_dicom,
)

STUDY_TEXT = "CARPAL TUNNEL FU DOE JANE MRN7391046"


def _identifying(path):
    """The phantom file with what else scanners and RIS write: private tags (nested too), free
    text naming the patient, an icon, an overlay, a reference to the image itself."""
    ds = pydicom.dcmread(path)
    ds.StudyDescription = STUDY_TEXT
    ds.PerformedProcedureStepDescription = "US WRIST Doe"
    ds.PatientComments = "claustrophobic"
    ds.OtherPatientIDs = "OLD-7391046"
    ds.PatientAge = "095Y"
    ds.AcquisitionDateTime = "20250301101500.000000"
    ds.add_new(0x00091010, "LO", "Doe^Jane private")
    ds.StationAETitle = "US7391046"
    ds.ClinicalTrialSubjectID = "SUBJ-7391046"
    ds.PerformedProcedureStepID = "PPS7391046"
    ds.AdmissionID = "ADM7391046"
    ds.IconImageSequence = Sequence([Dataset()])
    ds.add_new(0x60003000, "OW", b"\1\0" * 8)
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ref.add_new(0x00291010, "LO", "MRN7391046")
    ds.ReferencedImageSequence = Sequence([ref])
    return ds


def _private_tags(ds):
    found = []
    for elem in ds:
        if elem.tag.is_private:
            found.append(elem.tag)
        elif elem.VR == "SQ":
            for item in elem.value:
                found += _private_tags(item)
    return found


def _codes(ds):
    return [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]


def test_header_follows_the_basic_profile_and_no_identifier_survives(tmp_path):
    write_phantom_dicom(tmp_path / "src.dcm")
    ds = _identifying(tmp_path / "src.dcm")
    original = {kw: str(ds[kw].value) for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
    deid.deidentify_dataset(ds, KEY, PARTICIPANT, SHIFT)
    ds.save_as(tmp_path / "copy.dcm", enforce_file_format=True)
    data = (tmp_path / "copy.dcm").read_bytes()
    identifiers = [*PHANTOM_IDENTITY.values(), "Doe", "Jane", "7391046", "claustrophobic", "CARPAL", *original.values()]
    for ident in identifiers:
        for part in ident.split("^"):
            assert part.encode() not in data, f"{part!r} survived de-identification"

    copy = pydicom.dcmread(tmp_path / "copy.dcm")
    assert copy.PatientID == PARTICIPANT and copy.PatientName.family_name == PARTICIPANT
    # Type 2 identifiers are emptied (Z), not deleted: the copy still conforms
    for kw in ("PatientBirthDate", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        assert kw in copy and str(copy[kw].value) == "", kw
    assert copy.PatientSex == "F" and copy.PatientAge == "090Y"  # 95 pooled with every age over 89
    for kw in (
        "StudyDescription",
        "SeriesDescription",
        "PerformedProcedureStepDescription",
        "ImageComments",
        "PatientComments",
        "OtherPatientIDs",
        "InstitutionName",
        "InstitutionAddress",
        "OperatorsName",
        "PerformingPhysicianName",
        "StationName",
        "DeviceSerialNumber",
        "IconImageSequence",
    ):
        assert kw not in copy, kw
    assert not _private_tags(copy) and (0x6000, 0x3000) not in copy
    shifted = (dt.date(2025, 3, 1) + dt.timedelta(days=SHIFT)).strftime("%Y%m%d")
    assert copy.StudyDate == copy.ContentDate == shifted and copy.AcquisitionDateTime.startswith(shifted)
    assert copy.StudyTime == "101500"  # whole-day shifts keep intervals; the time of day is kept
    # UIDs: keyed hashes under 2.25, references follow the instance they point at
    for kw in original:
        assert copy[kw].value.startswith("2.25.") and len(copy[kw].value) <= 64
    assert copy.SOPInstanceUID == deid.hashed_uid(KEY, original["SOPInstanceUID"])
    assert copy.ReferencedImageSequence[0].ReferencedSOPInstanceUID == copy.SOPInstanceUID
    assert copy.file_meta.MediaStorageSOPInstanceUID == copy.SOPInstanceUID
    assert copy.SOPClassUID == copy.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.3.1"
    # what was done, as PS3.15 asks; no pixel clean-up claimed, the burned-in text is still there
    assert copy.PatientIdentityRemoved == "YES" and copy.LongitudinalTemporalInformationModified == "MODIFIED"
    assert _codes(copy) == ["113100", "113107", "113108"]
    assert len(copy.DeidentificationMethod) == 3
    assert copy.BurnedInAnnotation == "YES"
    assert copy.pixel_array.shape == pydicom.dcmread(tmp_path / "src.dcm").pixel_array.shape


def test_uids_are_consistent_within_a_project_and_differ_between_projects(tmp_path):
    write_phantom_dicom(tmp_path / "a.dcm", seed=1)
    write_phantom_dicom(tmp_path / "b.dcm", seed=2)
    copies = []
    for name, key in (("a", KEY), ("b", KEY), ("a", b"other key")):
        ds = pydicom.dcmread(tmp_path / f"{name}.dcm")
        deid.deidentify_dataset(ds, key, PARTICIPANT, SHIFT)
        copies.append(ds)
    assert copies[0].StudyInstanceUID == copies[1].StudyInstanceUID  # one study, one hashed study
    assert copies[0].SOPInstanceUID != copies[1].SOPInstanceUID
    assert copies[2].StudyInstanceUID != copies[0].StudyInstanceUID  # another key, unlinkable


@pytest.mark.parametrize(
    ("age", "birth", "expected"),
    [
        ("045Y", None, "045Y"),
        ("089Y", None, "089Y"),
        ("090Y", None, "090Y"),
        ("102Y", None, "090Y"),
        ("006M", None, "006M"),
        (None, "19340302", "090Y"),
        (None, "19700302", "054Y"),
        (None, "bad", None),
    ],
)
def test_age_is_kept_pooled_over_89_or_derived_from_the_birth_date(age, birth, expected):
    ds = Dataset()
    ds.StudyDate = "20250301"
    if age:
        ds.PatientAge = age
    if birth:
        ds.PatientBirthDate = birth
    deid.deidentify_dataset(ds, KEY, PARTICIPANT, SHIFT)
    assert ds.get("PatientAge") == expected
    assert ds.PatientBirthDate == ""


@pytest.mark.parametrize("compress", ["none", "jpeg"])
def test_pixels_are_replaced_by_the_cropped_blanked_frames(tmp_path, compress):
    path, frames, region = kept_copy(tmp_path, compress)
    copy = pydicom.dcmread(path)
    assert copy.file_meta.TransferSyntaxUID == uid.ExplicitVRLittleEndian
    assert (copy.Rows, copy.Columns, copy.NumberOfFrames) == frames.shape[1:] + frames.shape[:1]
    assert (copy.SamplesPerPixel, copy.PhotometricInterpretation) == (1, "MONOCHROME2")
    assert (copy.BitsAllocated, copy.BitsStored, copy.HighBit, copy.PixelRepresentation) == (8, 8, 7, 0)
    assert "PlanarConfiguration" not in copy
    np.testing.assert_array_equal(copy.pixel_array, frames)
    assert copy.BurnedInAnnotation == "NO" and "113101" in _codes(copy)
    # once lossy, always lossy (PS3.3 C.7.6.1.1.5)
    assert copy.get("LossyImageCompression") == ("01" if compress == "jpeg" else None)
    (item,) = copy.SequenceOfUltrasoundRegions
    h, w = frames.shape[1:]
    assert [item.RegionLocationMinX0, item.RegionLocationMinY0, item.RegionLocationMaxX1, item.RegionLocationMaxY1] == [
        0,
        0,
        w - 1,
        h - 1,
    ]
    assert item.ReferencePixelX0 == w // 2  # relative to the region corner, which moved with it


@pytest.mark.parametrize(
    "syntax", [uid.ImplicitVRLittleEndian, uid.ExplicitVRBigEndian, uid.RLELossless, uid.JPEGLSLossless]
)
@pytest.mark.parametrize("photometric", ["MONOCHROME2", "RGB", "PALETTE COLOR"])
def test_pixels_are_replaced_whatever_the_source_encoding(tmp_path, syntax, photometric):
    write_dicom(tmp_path / "src.dcm", gray_frames(2, 32, 48), photometric, syntax, region=(4, 6, 28, 42))
    ds = pydicom.dcmread(tmp_path / "src.dcm")
    frames = np.arange(2 * 24 * 36, dtype=np.uint32).astype(np.uint8).reshape(2, 24, 36)
    deid.deidentify_dataset(ds, KEY, PARTICIPANT, SHIFT, frames=frames, crop_region=[4, 6, 28, 42])
    ds.save_as(tmp_path / "copy.dcm", enforce_file_format=True)
    copy = pydicom.dcmread(tmp_path / "copy.dcm")
    assert copy.file_meta.TransferSyntaxUID == uid.ExplicitVRLittleEndian
    assert "RedPaletteColorLookupTableData" not in copy
    np.testing.assert_array_equal(copy.pixel_array, frames)


def test_regions_are_shifted_clipped_and_dropped_with_the_crop():
    ds = Dataset()
    ds.Rows, ds.Columns = 100, 120
    regions = []
    for x0, y0, x1, y1 in ((10, 20, 109, 79), (0, 85, 119, 99)):  # B-mode, and a strip below it
        item = Dataset()
        item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, y0
        item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, y1
        item.ReferencePixelX0, item.ReferencePixelY0 = 50, 0
        regions.append(item)
    ds.SequenceOfUltrasoundRegions = Sequence(regions)
    frames = np.zeros((1, 50, 80), np.uint8)  # crop rows 25..75, columns 20..100
    deid.deidentify_dataset(ds, KEY, PARTICIPANT, SHIFT, frames=frames, crop_region=[25, 20, 75, 100])
    (item,) = ds.SequenceOfUltrasoundRegions
    assert [item.RegionLocationMinX0, item.RegionLocationMinY0, item.RegionLocationMaxX1, item.RegionLocationMaxY1] == [
        0,
        0,
        79,
        49,
    ]
    # the reference pixel stays where it was in the image: 10 columns and 5 rows were cut off
    assert (item.ReferencePixelX0, item.ReferencePixelY0) == (40, -5)


@pytest.mark.parametrize(
    ("frames", "crop", "message"),
    [
        (np.zeros((2, 50, 80), np.uint8), [25, 20, 75, 100], "2 frames given for a source of 1 frames"),
        (
            np.zeros((1, 50, 80), np.uint8),
            [25, 20, 75, 90],
            r"crop_region \[25, 20, 75, 90\] is 50x70 but the "
            "frames are 50x80",
        ),
        (np.zeros((1, 50, 80), np.uint8), None, "differ from the source's 100x120: pass crop_region"),
        (np.zeros((1, 50, 80), np.uint8), [60, 20, 110, 100], r"does not fit the source's 100x120"),
        (np.zeros((1, 50, 80), np.float32), [25, 20, 75, 100], "frames must be \\(T, H, W\\) uint8"),
    ],
)
def test_bad_frames_are_refused_with_the_reason(frames, crop, message):
    ds = Dataset()
    ds.Rows, ds.Columns = 100, 120
    with pytest.raises(ValueError, match=message):
        deid.deidentify_dataset(ds, KEY, PARTICIPANT, SHIFT, frames=frames, crop_region=crop)


def test_a_segmentation_exports_from_akept_copy(tmp_path):
    import highdicom as hd

    from napari_ultramn.annotation.export import export_dicom_seg

    path, frames, _ = kept_copy(tmp_path, "jpeg")
    masks = np.zeros(frames.shape, bool)
    masks[:, 10:20, 15:30] = True
    out = export_dicom_seg(masks, path, tmp_path / "seg.dcm", rater="r1")
    seg = hd.seg.segread(out)
    source = pydicom.dcmread(path, stop_before_pixels=True)
    assert seg.PatientID == PARTICIPANT and seg.StudyInstanceUID == source.StudyInstanceUID
    pixels = seg.get_pixels_by_source_frame(
        source_sop_instance_uid=source.SOPInstanceUID, source_frame_numbers=[1, 2, 3], segment_numbers=[1]
    )[..., 0].astype(bool)
    np.testing.assert_array_equal(pixels, masks)
