"""Shared pieces of the ingest tests: a small US DICOM, synthetic screen recordings, mapping CSVs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

#: The moving (imaging) rectangle of ``screen_frames``: top, left, bottom, right.
SCREEN_AREA = [24, 16, 88, 112]


def screen_frames(n_frames: int = 6, seed: int = 0, image: bool = True) -> np.ndarray:
    """(T, 96, 128) uint8 screen recording: black screen, a white text bar, speckle in SCREEN_AREA.

    The speckle is smoothed noise (neighbouring pixels correlated, as in real B-mode), new in every
    frame. ``image=False``: the screen and its text bar only, no ultrasound image anywhere, so no
    detector can be confident where the imaging area is.
    """
    rng = np.random.default_rng(seed)
    frames = np.zeros((n_frames, 96, 128), np.uint8)
    frames[:, 4:14, 8:90] = 255  # burned-in "patient name" bar, outside the imaging area
    if image:
        top, left, bottom, right = SCREEN_AREA
        h, w = bottom - top, right - left
        noise = rng.random((n_frames, h + 2, w + 2), dtype=np.float32)
        smooth = sum(noise[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9
        frames[:, top:bottom, left:right] = np.clip(90 + (smooth - 0.5) * 600, 20, 230).astype(np.uint8)
    return frames


def write_frame_folder(folder: Path, frames: np.ndarray) -> Path:
    """A folder of PNG frames (lossless, so the stand-in detection sees exactly what was drawn)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"frame_{i:03d}.png")
    return folder


def write_mapping(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"


def make_us_dicom(
    path,
    patient_id="MRN-0042",
    name="DOE^JANE",
    laterality="R",
    description="MEDIAN N TRANSV WRIST R",
    n_frames=3,
    seed=0,
):
    """A small multi-frame US DICOM: a 10-row text band above a calibrated 2D region."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 200, size=(n_frames, 40, 32), dtype=np.uint8)
    frames[:, :10, :] = 255  # burned-in text band, outside the imaging region
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = US_MULTIFRAME, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, patient_id, "19580317"
    ds.PatientSex, ds.PatientAge = "F", "066Y"
    ds.StudyDate, ds.InstitutionName, ds.AccessionNumber = "20240105", "St Elsewhere Hospital", "ACC998877"
    ds.ReferringPhysicianName, ds.OperatorsName = "SMITH^JOHN", "SMITH^JOHN"
    ds.Modality, ds.Manufacturer, ds.ManufacturerModelName = "US", "Acme", "Sono 5"
    ds.SeriesDescription, ds.ImageLaterality = description, laterality
    ds.Rows, ds.Columns, ds.NumberOfFrames = 40, 32, n_frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation, ds.FrameTime = 7, 0, 33.3
    region = Dataset()
    region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = 1, 1, 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 10
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 31, 39
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = region.PhysicalDeltaY = 0.01
    ds.SequenceOfUltrasoundRegions = [region]
    ds.PixelData = frames.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return frames
