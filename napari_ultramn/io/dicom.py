"""DICOM clips: single- and multi-frame, any photometric interpretation, decoded frame by frame.

pydicom 3 decodes a single frame of a multi-frame dataset on request
(``pydicom.pixels.pixel_array(ds, index=i)``), which is what makes opening a long compressed cine
cheap. Compressed transfer syntaxes are decoded by the pylibjpeg plugins and pyjpegls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .clip import Clip, LazyFrames, Region

# SOP classes whose pixel data is an image a person could annotate.
_IMAGE_SOP_KEYWORDS = ("Image", "Photograph")


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an (..., 3) RGB frame, as uint8."""
    rgb = rgb.astype(np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def _to_gray_uint8(frame: np.ndarray, ds) -> np.ndarray:
    """Convert one decoded frame to (H, W) uint8 following the photometric interpretation."""
    from pydicom.pixels import apply_color_lut

    from .clip import to_uint8

    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if pi == "PALETTE COLOR":
        frame = apply_color_lut(frame, ds)
        if frame.dtype != np.uint8:  # 16-bit tables: keep the top 8 bits
            frame = (frame >> 8).astype(np.uint8) if frame.max() > 255 else frame.astype(np.uint8)
        return _luminance(frame)
    if frame.ndim == 3 and frame.shape[-1] == 3:
        return _luminance(frame)
    if frame.ndim == 3 and frame.shape[-1] == 1:
        frame = frame[..., 0]
    bits = int(ds.get("BitsStored", 8))
    if frame.dtype != np.uint8:
        if frame.dtype.kind in "ui" and bits <= 8:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        else:
            lo, hi = (0, (1 << bits) - 1) if frame.dtype.kind == "u" else (frame.min(), frame.max())
            frame = to_uint8(np.clip(frame.astype(np.float32), lo, hi) if hi > lo else frame)
    if pi == "MONOCHROME1":
        frame = 255 - frame
    return frame


def us_region_calibration(ds) -> tuple[tuple[float, float] | None, Region | None]:
    """Spacing (row_mm, col_mm) and region of the 2D tissue region in SequenceOfUltrasoundRegions.

    Picks the largest region with RegionSpatialFormat 1 (2D) and physical units in cm (code 3);
    PhysicalDelta is in cm per pixel, converted to mm.
    """
    best = None
    for item in ds.get("SequenceOfUltrasoundRegions", []) or []:
        try:
            fmt = int(item.get("RegionSpatialFormat", 0))
            region = Region(
                int(item.RegionLocationMinY0),
                int(item.RegionLocationMinX0),
                int(item.RegionLocationMaxY1) + 1,
                int(item.RegionLocationMaxX1) + 1,
            )
        except (AttributeError, TypeError, ValueError):
            continue
        if fmt != 1:
            continue
        spacing = None
        if int(item.get("PhysicalUnitsXDirection", 0)) == 3 and int(
            item.get("PhysicalUnitsYDirection", 0)
        ) == 3:
            dx = abs(float(item.get("PhysicalDeltaX", 0) or 0)) * 10.0
            dy = abs(float(item.get("PhysicalDeltaY", 0) or 0)) * 10.0
            if dx > 0 and dy > 0:
                spacing = (dy, dx)
        area = region.height * region.width
        if best is None or area > best[0]:
            best = (area, spacing, region)
    if best is None:
        return None, None
    return best[1], best[2]


def frame_time_ms(ds) -> float | None:
    """Frame time from FrameTime, else the median of FrameTimeVector, else CineRate/RecommendedDisplayFrameRate."""
    if ds.get("FrameTime") not in (None, ""):
        ft = float(ds.FrameTime)
        if ft > 0:
            return ft
    vec = ds.get("FrameTimeVector")
    if vec:
        vals = np.asarray([float(v) for v in vec], dtype=float)
        vals = vals[1:] if len(vals) > 1 and vals[0] == 0 else vals
        if len(vals) and np.median(vals) > 0:
            return float(np.median(vals))
    for key in ("CineRate", "RecommendedDisplayFrameRate"):
        if ds.get(key) not in (None, ""):
            rate = float(ds.get(key))
            if rate > 0:
                return 1000.0 / rate
    return None


def read_dicom_clip(path: str | Path, **_ignored) -> Clip:
    """Open a DICOM file as a lazy :class:`Clip`; raise :class:`InputError` for anything unreadable."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import pixel_array

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as exc:
        raise InputError(path, f"is not a DICOM file ({exc})") from None
    except Exception as exc:  # truncated or corrupt headers surface as many exception types
        raise InputError(path, f"DICOM file is corrupt or truncated ({type(exc).__name__}: {exc})") from None
    if "PixelData" not in ds:
        sop = ds.get("SOPClassUID")
        name = getattr(sop, "name", str(sop)) if sop else "unknown SOP class"
        if sop is not None and not any(k in name for k in _IMAGE_SOP_KEYWORDS):
            raise InputError(path, f"is a non-image DICOM object ({name}); no frames to show")
        raise InputError(path, "DICOM file has no pixel data")
    tsuid = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if tsuid is not None:
        from pydicom.pixels.decoders.base import get_decoder

        try:
            decoder = get_decoder(tsuid)
        except NotImplementedError:
            decoder = None
        if decoder is None or not decoder.is_available:
            raise InputError(
                path,
                f"transfer syntax {getattr(tsuid, 'name', tsuid)} ({tsuid}) is not supported: "
                "no decoder is installed for it",
            )
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except AttributeError:
        raise InputError(path, "DICOM file has pixel data but no Rows/Columns") from None
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)

    def read(i: int) -> np.ndarray:
        try:
            frame = pixel_array(ds, index=i if n_frames > 1 else None)
        except Exception as exc:  # decoder errors come in many types; name the file and frame
            raise InputError(path, f"frame {i} cannot be decoded ({type(exc).__name__}: {exc})") from None
        return _to_gray_uint8(frame, ds)

    spacing, region = us_region_calibration(ds)
    source = "us_region" if spacing is not None else "none"
    if spacing is None and ds.get("PixelSpacing"):
        spacing, source = tuple(float(v) for v in ds.PixelSpacing), "pixel_spacing"
    elif spacing is None and ds.get("ImagerPixelSpacing"):
        spacing, source = tuple(float(v) for v in ds.ImagerPixelSpacing), "imager_pixel_spacing"

    # Probe one frame now so a truncated pixel stream fails at open, not during annotation.
    read(n_frames - 1)
    lazy = LazyFrames(read, n_frames, (rows, cols))
    return Clip(
        frames=lazy,
        source_path=path,
        spacing_mm=spacing,
        spacing_source=source,
        frame_time_ms=frame_time_ms(ds),
        imaging_region=region,
        manufacturer=str(ds.get("Manufacturer", "")) or None,
        device_model=str(ds.get("ManufacturerModelName", "")) or None,
        side=_laterality(ds),
        extra={"sop_instance_uid": str(ds.get("SOPInstanceUID", "")) or None},
    )


def _laterality(ds) -> str | None:
    for key in ("ImageLaterality", "Laterality", "FrameLaterality"):
        value = str(ds.get(key, "") or "").upper()
        if value in ("L", "R"):
            return {"L": "left", "R": "right"}[value]
    return None
