"""Write a phantom clip as a scanner would: Ultrasound Multi-frame Image Storage DICOM.

The frame is bigger than the imaging region, as on a real scanner screen: a burned-in text band
on top (patient name, ID, date, institution drawn as pixels; what de-identification must crop
away), a depth scale in the right margin, and the B-mode image in between, described by a
SequenceOfUltrasoundRegions item (2D tissue region, cm per pixel). Uncompressed 8-bit
MONOCHROME2 by default; ``compress="jpeg"`` writes JPEG baseline YBR_FULL_422 colour frames (the
text burned in yellow), which is what many scanners export.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..io.clip import Region

US_MULTIFRAME_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.3.1"

#: How scanners name the plane in SeriesDescription / ImageComments (side letter appended).
PLANE_DESCRIPTIONS = {
    "transverse_wrist": "MEDIAN N TRANSV WRIST",
    "transverse_forearm": "MEDIAN N TRANSV FOREARM",
    "longitudinal_wrist": "MEDIAN N LONG WRIST",
    "longitudinal_forearm": "MEDIAN N LONG FOREARM",
}


def plane_from_description(text: str | None) -> tuple[str | None, str | None]:
    """Parse ``"MEDIAN N TRANSV WRIST R"`` back into ``(plane, side)``; None where not found."""
    words = str(text or "").upper().replace("_", " ").split()
    plane = None
    orient = (
        "transverse"
        if {"TRANSV", "TRANS", "TRV", "TRANSVERSE", "AXIAL"} & set(words)
        else ("longitudinal" if {"LONG", "LONGIT", "LONGITUDINAL", "SAG", "SAGITTAL"} & set(words) else None)
    )
    level = (
        "wrist"
        if {"WRIST", "CT", "CARPAL"} & set(words)
        else ("forearm" if {"FOREARM", "FA", "ARM"} & set(words) else None)
    )
    if orient and level:
        plane = f"{orient}_{level}"
    side = {"R": "right", "RT": "right", "RIGHT": "right", "L": "left", "LT": "left", "LEFT": "left"}
    found = [side[w] for w in words if w in side]
    return plane, (found[-1] if found else None)


@dataclass
class DicomHeader:
    """Identifying and device metadata of one file (all fake, but shaped like the real thing)."""

    patient_name: str
    patient_id: str
    birth_date: str  # YYYYMMDD
    sex: str  # M / F
    age: int
    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS
    institution: str
    institution_address: str
    referring: str
    operator: str
    accession: str
    study_uid: str
    series_uid: str
    sop_uid: str
    series_number: int
    manufacturer: str
    model: str
    serial: str
    software: str
    station: str
    transducer: str
    frequency_khz: int
    side: str  # right / left
    plane: str


def _text_band(lines: list[str], width: int, height: int) -> np.ndarray:
    """Render burned-in annotation text as an ``(height, width) uint8`` band."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    size = max(8, int((height - 4) / len(lines)) - 1)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        font = ImageFont.load_default()
    y = 2
    for line in lines:
        draw.text((4, y), line, fill=235, font=font)
        y += size
    return np.asarray(img, dtype=np.uint8)


def compose_screen(frames: np.ndarray, header: DicomHeader, spacing_mm: tuple[float, float]):
    """Place ``(T, H, W)`` frames on a scanner screen; returns ``(screen, text_mask, region)``."""
    t, h, w = frames.shape
    band = max(30, h // 6)
    left, right, bottom = max(4, w // 32), max(12, w // 12), max(4, h // 32)
    screen = np.zeros((t, band + h + bottom, left + w + right), np.uint8)
    lines = [
        f"{header.patient_name.replace('^', ', ')}  ID {header.patient_id}",
        f"{header.study_date[6:]}/{header.study_date[4:6]}/{header.study_date[:4]} "
        f"{header.study_time[:2]}:{header.study_time[2:4]}  {header.institution}",
        f"{header.transducer} {header.frequency_khz / 1000:.0f}MHz  {PLANE_DESCRIPTIONS[header.plane]} "
        f"{header.side[0].upper()}",
    ]
    text = _text_band(lines, screen.shape[2], band)
    screen[:, :band] = text
    screen[:, band : band + h, left : left + w] = frames
    # Depth scale: a tick every 5 mm (long every 10 mm) in the right margin.
    x0 = left + w + 3
    for k, mm in enumerate(np.arange(0, h * spacing_mm[0], 5.0)):
        row = band + int(round(mm / spacing_mm[0]))
        if row < band + h:
            screen[:, row, x0 : x0 + (6 if k % 2 == 0 else 3)] = 200
    text_mask = np.zeros(screen.shape[1:], bool)
    text_mask[:band] = text > 0
    return screen, text_mask, Region(band, left, band + h, left + w)


def _jpeg_frames(screen: np.ndarray, text_mask: np.ndarray, quality: int = 90) -> list[bytes]:
    from PIL import Image

    out = []
    for frame in screen:
        rgb = np.repeat(frame[..., None], 3, axis=2)
        rgb[text_mask] = (frame[text_mask, None] * np.array([1.0, 0.9, 0.3])).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=quality, subsampling="4:2:2")
        out.append(buf.getvalue())
    return out


def write_us_dicom(
    path: str | Path,
    frames: np.ndarray,
    header: DicomHeader,
    spacing_mm: tuple[float, float],
    frame_time_ms: float,
    compress: str = "none",
) -> Region:
    """Write ``(T, H, W) uint8`` frames as one multi-frame US DICOM; returns the imaging region."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence
    from pydicom.uid import (
        PYDICOM_IMPLEMENTATION_UID,
        UID,
        ExplicitVRLittleEndian,
        JPEGBaseline8Bit,
    )

    screen, text_mask, region = compose_screen(frames, header, spacing_mm)
    n, rows, cols = screen.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(US_MULTIFRAME_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = UID(header.sop_uid)
    meta.TransferSyntaxUID = JPEGBaseline8Bit if compress == "jpeg" else ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    # value 3: the US Image module's defined term for the exam; value 4: mode bits (0001 = 2D B-mode)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "MUSCULOSKELETAL", "0001"]
    ds.SOPClassUID, ds.SOPInstanceUID = US_MULTIFRAME_SOP_CLASS, header.sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = header.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = header.study_time
    ds.AccessionNumber = header.accession
    ds.Modality = "US"
    ds.Manufacturer = header.manufacturer
    ds.InstitutionName = header.institution
    ds.InstitutionAddress = header.institution_address
    ds.InstitutionalDepartmentName = "Radiology - Musculoskeletal Ultrasound"
    ds.ReferringPhysicianName = header.referring
    ds.StationName = header.station
    ds.StudyDescription = "US MEDIAN NERVE BILATERAL"
    desc = f"{PLANE_DESCRIPTIONS[header.plane]} {header.side[0].upper()}"
    ds.SeriesDescription = desc
    ds.OperatorsName = header.operator
    ds.PerformingPhysicianName = header.referring
    ds.ManufacturerModelName = header.model
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = header.birth_date
    ds.PatientSex = header.sex
    ds.PatientAge = f"{header.age:03d}Y"
    ds.BodyPartExamined = "WRIST" if header.plane.endswith("wrist") else "ARM"
    ds.DeviceSerialNumber = header.serial
    ds.SoftwareVersions = header.software
    ds.TransducerData = [header.transducer, "", ""]
    ds.FrameTime = f"{frame_time_ms:.3f}"
    ds.CineRate = int(round(1000.0 / frame_time_ms))
    ds.RecommendedDisplayFrameRate = ds.CineRate
    ds.StudyInstanceUID, ds.SeriesInstanceUID = header.study_uid, header.series_uid
    ds.StudyID = header.accession[-6:]
    ds.SeriesNumber, ds.InstanceNumber = header.series_number, 1
    # Image Laterality (US Image module) says which arm; the series-level Laterality is Type 2C and
    # must be absent when Image Laterality is present (PS3.3 C.7.3.1).
    ds.ImageLaterality = header.side[0].upper()
    # No Frame of Reference (no patient-space geometry), so Patient Orientation is Type 2: empty
    # because the probe orientation on screen is not known as patient directions.
    ds.PatientOrientation = ""
    ds.ImageComments = desc
    ds.NumberOfFrames = n
    ds.FrameIncrementPointer = 0x00181063  # FrameTime
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.BurnedInAnnotation = "YES"
    region_item = Dataset()
    region_item.RegionSpatialFormat = 1  # 2D tissue
    region_item.RegionDataType = 1
    region_item.RegionFlags = 0
    region_item.RegionLocationMinX0, region_item.RegionLocationMinY0 = region.left, region.top
    region_item.RegionLocationMaxX1, region_item.RegionLocationMaxY1 = region.right - 1, region.bottom - 1
    region_item.ReferencePixelX0, region_item.ReferencePixelY0 = frames.shape[2] // 2, 0
    region_item.PhysicalUnitsXDirection = region_item.PhysicalUnitsYDirection = 3  # cm
    region_item.PhysicalDeltaX = float(spacing_mm[1]) / 10.0
    region_item.PhysicalDeltaY = float(spacing_mm[0]) / 10.0
    region_item.TransducerFrequency = header.frequency_khz
    ds.SequenceOfUltrasoundRegions = Sequence([region_item])
    if compress == "jpeg":
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ds.PixelData = encapsulate(_jpeg_frames(screen, text_mask))
        ds["PixelData"].VR = "OB"
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = np.ascontiguousarray(screen).tobytes()
        ds["PixelData"].VR = "OB"
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return region
