"""Synthesise small ultrasound DICOM files of every photometric interpretation x transfer syntax
(and, with ``write_video``, small mp4/avi/mov files).

Other engineers' tests use this too::

    from tests.dicom_factory import write_dicom, gray_frames
    expected = write_dicom(tmp_path / "a.dcm", gray_frames(4), "YBR_FULL_422", JPEGBaseline8Bit)

``write_dicom`` returns the ``(T, H, W) uint8`` gray frames a correct reader must produce (exactly
for lossless syntaxes; within a few grey levels for lossy ones; see ``LOSSY``).

Encoders: pydicom 3 ``Dataset.compress`` (RLE; JPEG-LS via pyjpegls; JPEG 2000 via
pylibjpeg-openjpeg), Pillow for JPEG baseline codestreams, python-gdcm for JPEG lossless (process
14 SV1). Explicit big endian is written by pydicom with the 16-bit pixel words byte-swapped by hand.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
from pydicom import uid
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

US_MULTIFRAME = uid.UltrasoundMultiFrameImageStorage
US_IMAGE = uid.UltrasoundImageStorage
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"

#: Transfer syntaxes whose decode is approximate, with the grey-level tolerance tests allow.
LOSSY = {uid.JPEGBaseline8Bit: 12, uid.JPEGLSNearLossless: 3, uid.JPEG2000: 12}

NATIVE = (uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.ExplicitVRBigEndian)
PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422")


def gray_frames(n_frames: int = 3, rows: int = 32, cols: int = 48, seed: int = 0) -> np.ndarray:
    """Smooth, moving ``(T, H, W) uint8`` test frames (smooth so lossy codecs stay close)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    out = np.empty((n_frames, rows, cols), np.uint8)
    phase = rng.uniform(0, 2 * np.pi)
    for t in range(n_frames):
        img = 128 + 90 * np.sin(xx / 7.0 + phase + 0.4 * t) * np.cos(yy / 9.0 - 0.3 * t)
        out[t] = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return out


def luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of ``(..., 3)`` RGB, the gray value a reader must give a colour pixel."""
    rgb = rgb.astype(np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def tinted_rgb(gray: np.ndarray) -> np.ndarray:
    """Gray frames with a colour (Doppler-like) box, so colour handling is really exercised."""
    rgb = np.repeat(gray[..., None], 3, axis=-1).astype(np.int16)
    h, w = gray.shape[-2:]
    box = (..., slice(h // 4, h // 2), slice(w // 4, w // 2))
    rgb[box + (0,)] += 40
    rgb[box + (2,)] -= 40
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _rgb_to_ybr_full(rgb: np.ndarray) -> np.ndarray:
    from pydicom.pixels import convert_color_space

    return convert_color_space(rgb, "RGB", "YBR_FULL")


def _pack_ybr_422(ybr: np.ndarray) -> bytes:
    """Native YBR_FULL_422 layout: per pixel pair Y1 Y2 Cb Cr (chroma averaged over the pair)."""
    y = ybr[..., 0]
    cb = ybr[..., 1].astype(np.uint16)
    cr = ybr[..., 2].astype(np.uint16)
    cb2 = ((cb[..., 0::2] + cb[..., 1::2] + 1) // 2).astype(np.uint8)
    cr2 = ((cr[..., 0::2] + cr[..., 1::2] + 1) // 2).astype(np.uint8)
    packed = np.stack([y[..., 0::2], y[..., 1::2], cb2, cr2], axis=-1)
    return packed.tobytes()


def base_dataset(
    n_frames: int,
    rows: int,
    cols: int,
    *,
    sop_class: str = US_MULTIFRAME,
    frame_time_ms: float | None = 40.0,
    region: tuple[int, int, int, int] | None = None,
    delta_cm: tuple[float, float] = (0.01, 0.01),
    pixel_spacing: tuple[float, float] | None = None,
    patient_id: str = "PAT-001",
) -> Dataset:
    """A US dataset without pixel data. ``region`` = (top, left, bottom, right), exclusive ends;
    ``delta_cm`` = (row, col) PhysicalDelta in cm per pixel."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid(entropy_srcs=[patient_id, str(rows)])
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = uid.generate_uid(entropy_srcs=[patient_id, "study"])
    ds.SeriesInstanceUID = uid.generate_uid(entropy_srcs=[patient_id, "series"])
    ds.Modality = "US"
    ds.PatientID = patient_id
    ds.PatientName = "Doe^Jane"
    # Type 2 attributes of the Patient, General Study/Series/Image and US Image modules, so the
    # files pass dciodvfy (tests/test_dciodvfy.py) like a conformant scanner export would
    ds.PatientBirthDate, ds.PatientSex = "", "F"
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20240105", "093000", "1"
    ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "MUSCULOSKELETAL", "0001"]
    ds.PatientOrientation = ""
    ds.Manufacturer = "PhantomCo"
    ds.ManufacturerModelName = "Model X"
    ds.ImageLaterality = "L"
    ds.Rows, ds.Columns = rows, cols
    if n_frames > 1 or sop_class == US_MULTIFRAME:
        ds.NumberOfFrames = n_frames
        if frame_time_ms is not None:
            ds.FrameTime = frame_time_ms
            ds.FrameIncrementPointer = 0x00181063
    if region is not None:
        top, left, bottom, right = region
        item = Dataset()
        item.RegionSpatialFormat = 1
        item.RegionDataType = 1
        item.RegionFlags = 0
        item.RegionLocationMinX0, item.RegionLocationMinY0 = left, top
        item.RegionLocationMaxX1, item.RegionLocationMaxY1 = right - 1, bottom - 1
        item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 3
        item.PhysicalDeltaX, item.PhysicalDeltaY = delta_cm[1], delta_cm[0]
        ds.SequenceOfUltrasoundRegions = Sequence([item])
    if pixel_spacing is not None:
        ds.PixelSpacing = list(pixel_spacing)
    return ds


def set_pixels(
    ds: Dataset,
    gray: np.ndarray,
    photometric: str = "MONOCHROME2",
    *,
    bits: int = 8,
    palette_bits: int = 8,
) -> np.ndarray:
    """Store ``gray`` (T, H, W) uint8 as native pixel data in ``photometric``; return the expected
    gray frames. ``bits`` 16 stores MONOCHROME data as 12-bit values in 16-bit words."""
    gray = np.asarray(gray, np.uint8)
    ds.SamplesPerPixel = 1
    ds.PixelRepresentation = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PhotometricInterpretation = photometric
    expected = gray
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        stored = 255 - gray if photometric == "MONOCHROME1" else gray
        if bits == 16:
            # 12-bit values; a reader keeps the top 8 of the 12 bits stored
            stored = stored.astype(np.uint16) * 16 + 8
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        data = stored
    elif photometric == "PALETTE COLOR":
        # A reversed gray ramp proves the table is applied (index i shows as 255 - i).
        lut = (255 - np.arange(256)).astype(np.uint16)
        if palette_bits == 16:
            lut_data, ds_bits = (lut * 257).astype("<u2"), 16
        else:
            lut_data, ds_bits = lut.astype(np.uint8), 8
        for color in ("Red", "Green", "Blue"):
            setattr(ds, f"{color}PaletteColorLookupTableDescriptor", [256, 0, ds_bits])
            # 8-bit entries packed two per 16-bit word (byte i = entry i), as scanners write them
            setattr(ds, f"{color}PaletteColorLookupTableData", lut_data.tobytes())
        data, expected = gray, 255 - gray
    else:
        rgb = tinted_rgb(gray)
        ds.SamplesPerPixel = 3
        ds.PlanarConfiguration = 0
        if photometric == "RGB":
            data, expected = rgb, luminance(rgb)
        else:
            ybr = _rgb_to_ybr_full(rgb)
            data, expected = ybr, ybr[..., 0]
            if photometric == "YBR_FULL_422":
                ds.PixelData = _pack_ybr_422(ybr)
                return expected
    ds.PixelData = np.ascontiguousarray(data).tobytes()
    return expected


def _save(ds: Dataset, path: Path, tsuid: str) -> None:
    ds.file_meta.TransferSyntaxUID = tsuid
    ds.save_as(path, enforce_file_format=True)


def _jpeg_baseline(ds: Dataset, gray: np.ndarray, photometric: str, quality: int = 95) -> np.ndarray:
    """Encode with Pillow: MONOCHROME2 as 1-component JPEG, otherwise YCbCr 4:2:2 (YBR_FULL_422)."""
    from PIL import Image
    from pydicom.encaps import encapsulate

    frames, expected = [], []
    for g in gray:
        buf = io.BytesIO()
        if photometric == "MONOCHROME2":
            Image.fromarray(g, "L").save(buf, "JPEG", quality=quality)
            expected.append(g)
        else:
            rgb = tinted_rgb(g)
            subsampling = "4:4:4" if photometric == "YBR_FULL" else "4:2:2"
            Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=quality, subsampling=subsampling)
            expected.append(luminance(rgb))
        frames.append(buf.getvalue())
    ds.SamplesPerPixel = 1 if photometric == "MONOCHROME2" else 3
    ds.PhotometricInterpretation = photometric if photometric in ("MONOCHROME2", "YBR_FULL") else "YBR_FULL_422"
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression = "01"
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return np.stack(expected)


def have_jpeg_lossless_encoder() -> bool:
    """python-gdcm is the only JPEG lossless (process 14) encoder we have; tests skip without it."""
    try:
        import gdcm  # noqa: F401
    except ImportError:
        return False
    return True


def _gdcm_transcode(src: Path, dst: Path, tsuid: str) -> None:
    """Transcode with python-gdcm (the only installed JPEG lossless encoder)."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    if not reader.Read():
        raise RuntimeError(f"gdcm cannot read {src}")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(tsuid)))
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise RuntimeError(f"gdcm cannot encode {tsuid}")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(dst))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise RuntimeError(f"gdcm cannot write {dst}")


def write_dicom(
    path: str | Path,
    gray: np.ndarray,
    photometric: str = "MONOCHROME2",
    transfer_syntax: str = uid.ExplicitVRLittleEndian,
    *,
    bits: int = 8,
    palette_bits: int = 8,
    jpeg_quality: int = 95,
    **dataset_kwargs,
) -> np.ndarray:
    """Write ``gray`` (T, H, W) uint8 as a DICOM file; return the gray frames a reader should give.

    For JPEG 2000 with ``photometric`` "YBR_RCT" (lossless) or "YBR_ICT" (lossy) the RGB frames are
    encoded with the multi-component transform. JPEG baseline supports MONOCHROME2, YBR_FULL
    (4:4:4) and YBR_FULL_422 (any other colour ``photometric``), at ``jpeg_quality``.
    Other keyword arguments go to :func:`base_dataset` (region, spacing, timing, SOP class).
    """
    path = Path(path)
    gray = np.asarray(gray, np.uint8)
    if gray.ndim == 2:
        gray = gray[None]
    t, rows, cols = gray.shape
    ds = base_dataset(t, rows, cols, **dataset_kwargs)
    tsuid = uid.UID(transfer_syntax)
    if tsuid == uid.JPEGBaseline8Bit:
        expected = _jpeg_baseline(ds, gray, photometric, jpeg_quality)
        _save(ds, path, tsuid)
        return expected
    if tsuid in (uid.JPEG2000Lossless, uid.JPEG2000) and photometric in ("YBR_RCT", "YBR_ICT"):
        expected = set_pixels(ds, gray, "RGB")
        ds.compress(tsuid, use_mct=True, **({"j2k_psnr": [45]} if tsuid == uid.JPEG2000 else {}))
        # pydicom leaves "RGB"; the codestream holds the reversible/irreversible colour transform
        ds.PhotometricInterpretation = photometric
        _save(ds, path, tsuid)
        return expected
    expected = set_pixels(ds, gray, photometric, bits=bits, palette_bits=palette_bits)
    if tsuid in NATIVE:
        if tsuid == uid.ExplicitVRBigEndian and ds.BitsAllocated == 16:
            words = np.frombuffer(ds.PixelData, "<u2").astype(">u2")
            ds.PixelData = words.tobytes()
        if tsuid == uid.ExplicitVRBigEndian:
            ds["PixelData"].VR = "OW" if ds.BitsAllocated == 16 else "OB"
        _save(ds, path, tsuid)
    elif tsuid in (uid.JPEGLosslessSV1, uid.JPEGLossless):
        tmp = path.with_suffix(".native.dcm")
        _save(ds, tmp, uid.ExplicitVRLittleEndian)
        _gdcm_transcode(tmp, path, tsuid)
        tmp.unlink()
    else:
        kwargs = {}
        if tsuid == uid.JPEGLSNearLossless:
            kwargs["jls_error"] = 2
        elif tsuid == uid.JPEG2000:
            kwargs["j2k_psnr"] = [45]
        ds.compress(tsuid, **kwargs)
        _save(ds, path, tsuid)
    return expected


def write_sr(path: str | Path) -> None:
    """A Basic Text SR document: a valid DICOM file that is not an image."""
    ds = base_dataset(1, 1, 1, sop_class=BASIC_TEXT_SR)
    for key in ("Rows", "Columns", "NumberOfFrames", "FrameTime", "FrameIncrementPointer"):
        if key in ds:
            delattr(ds, key)
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    _save(ds, Path(path), uid.ExplicitVRLittleEndian)


def write_video(path: Path, frames: np.ndarray, codec: str = "libx264", fps: int = 25, gop: int = 5) -> None:
    """Encode (T, H, W) uint8 frames as a video (mp4/avi/mov by suffix) with PyAV.

    Not DICOM, but every clip test needs one: small GOPs so random access really has to seek,
    and B-frames (libx264) so decode order differs from display order.
    """
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"crf": "8", "bf": "2"}  # B-frames: decode order != display order
        for f in frames:
            vf = av.VideoFrame.from_ndarray(np.repeat(f[..., None], 3, axis=-1), format="rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


#: The fake identity :func:`write_phantom_dicom` writes (de-identification tests look for it).
PHANTOM_IDENTITY = {
    "patient_name": "Doe^Jane",
    "patient_id": "M7391046",
    "birth_date": "19690412",
    "study_date": "20250301",
    "institution": "Saint Elsewhere Hospital",
    "institution_address": "1 Main St, Springfield",
    "referring": "House^Gregory",
    "operator": "Sono^Olga",
    "accession": "A25738201",
    "serial": "SN7000341",
}


def write_phantom_dicom(path, compress: str = "none", n_frames: int = 3, size=(48, 64), seed: int = 0):
    """A phantom scanner export (burned-in text band, depth scale, one US region); returns its
    imaging Region. Random speckle frames: quick, and what the header carries is the point."""
    from napari_ultramn.phantom.dicom_writer import DicomHeader, write_us_dicom

    who = PHANTOM_IDENTITY
    header = DicomHeader(
        patient_name=who["patient_name"],
        patient_id=who["patient_id"],
        birth_date=who["birth_date"],
        sex="F",
        age=55,
        study_date=who["study_date"],
        study_time="101500",
        institution=who["institution"],
        institution_address=who["institution_address"],
        referring=who["referring"],
        operator=who["operator"],
        accession=who["accession"],
        study_uid=uid.generate_uid(entropy_srcs=[who["patient_id"], "study"]),
        series_uid=uid.generate_uid(entropy_srcs=[who["patient_id"], str(seed), "series"]),
        sop_uid=uid.generate_uid(entropy_srcs=[who["patient_id"], str(seed), compress, "sop"]),
        series_number=1,
        manufacturer="PhantomCo",
        model="PX-1",
        serial=who["serial"],
        software="1.0",
        station="USROOM2",
        transducer="L12-5",
        frequency_khz=12000,
        side="right",
        plane="transverse_wrist",
    )
    frames = np.random.default_rng(seed).integers(20, 200, (n_frames, *size), dtype=np.uint8)
    return write_us_dicom(path, frames, header, (0.1, 0.1), 40.0, compress)


def write_frame(
    path,
    gray,
    *,
    number=None,
    time=None,
    series="1.2.3.4",
    photometric="MONOCHROME2",
    transfer_syntax=uid.ExplicitVRLittleEndian,
    **kwargs,
) -> np.ndarray:
    """One single-frame US image of series ``series``; returns the gray frame a reader gives."""
    expected = write_dicom(path, gray, photometric, transfer_syntax, sop_class=US_IMAGE, **kwargs)
    ds = pydicom.dcmread(path)
    ds.SeriesInstanceUID = series
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    if number is not None:
        ds.InstanceNumber = number
    if time is not None:
        ds.AcquisitionDate, ds.AcquisitionTime = "20240301", time
    ds.save_as(path, enforce_file_format=True)
    return expected[0]


def write_us_cine(path, n_frames=4, rows=32, cols=40, seed=0):
    """A minimal, valid Ultrasound Multi-frame Image (8-bit monochrome cine)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = US_MULTIFRAME
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "P001"
    ds.PatientName = "Phantom^One"
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Modality = "US"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = "Phantom"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = n_frames
    ds.FrameTime = 33.3
    ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    frames = np.random.default_rng(seed).integers(0, 255, (n_frames, rows, cols), dtype=np.uint8)
    ds.PixelData = frames.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return ds


KEY = b"k" * 32


PARTICIPANT = "P0123456789"


SHIFT = -40


def kept_copy(tmp_path, compress):
    """A --keep-dicom copy made as ingest makes it: the cropped imaging area, a corner blanked.
    Returns ``(path, frames, region)``; tests/test_dciodvfy.py validates such copies too."""
    from dataset_tools import deid
    from napari_ultramn.io import open_clip

    src = tmp_path / f"src_{compress}.dcm"
    region = write_phantom_dicom(src, compress=compress)
    frames = open_clip(src, crop_to_region=True).to_array()
    frames[:, :4, :6] = 0
    ds = pydicom.dcmread(src)
    deid.deidentify_dataset(ds, KEY, PARTICIPANT, SHIFT, frames=frames, crop_region=region.as_list())
    ds.save_as(tmp_path / f"kept_{compress}.dcm", enforce_file_format=True)
    return tmp_path / f"kept_{compress}.dcm", frames, region
