"""Pixel side of a de-identified DICOM copy: the project clip's cropped, blanked frames replace the
source pixel data (PS3.15 Clean Pixel Data Option), and the ultrasound regions follow the crop.

Called by :func:`dataset_tools.deid.deidentify_dataset` when it is given ``frames``.
"""

from __future__ import annotations

import numpy as np

#: Pixel encoding attributes that no longer apply once the pixels are 8-bit MONOCHROME2 native.
PIXEL_ENCODING_KEYWORDS = (
    "PlanarConfiguration",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "PaletteColorLookupTableUID",
    "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
    "WindowCenter",
    "WindowWidth",
    "WindowCenterWidthExplanation",
    "VOILUTFunction",
    "VOILUTSequence",
    "ModalityLUTSequence",
    "RescaleIntercept",
    "RescaleSlope",
    "RescaleType",
    "ICCProfile",
    "ColorSpace",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "PixelDataProviderURL",
)


def _crop_origin(crop_region, frame_shape: tuple[int, int], source_shape: tuple[int, int]) -> tuple[int, int]:
    """``(top, left)`` of ``crop_region`` after checking it matches the frames and fits the source."""
    if crop_region is None:
        if frame_shape != source_shape:
            raise ValueError(
                f"frames of {frame_shape[0]}x{frame_shape[1]} differ from the source's "
                f"{source_shape[0]}x{source_shape[1]}: pass crop_region=[top, left, bottom, right]"
            )
        return 0, 0
    region = crop_region.as_list() if hasattr(crop_region, "as_list") else crop_region
    top, left, bottom, right = (int(v) for v in region)
    if (bottom - top, right - left) != frame_shape:
        raise ValueError(
            f"crop_region {[top, left, bottom, right]} is {bottom - top}x{right - left} "
            f"but the frames are {frame_shape[0]}x{frame_shape[1]}"
        )
    if not (0 <= top < bottom <= source_shape[0] and 0 <= left < right <= source_shape[1]):
        raise ValueError(
            f"crop_region {[top, left, bottom, right]} does not fit the source's "
            f"{source_shape[0]}x{source_shape[1]} frames"
        )
    return top, left


def replace_pixels(ds, frames, crop_region) -> None:
    """Pixel data := ``frames`` as 8-bit MONOCHROME2, uncompressed; ultrasound regions follow the crop.

    Lossy Image Compression stays: once "01", PS3.3 C.7.6.1.1.5 forbids resetting it.
    """
    from pydicom.uid import ExplicitVRLittleEndian

    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W) uint8, got {frames.dtype} of shape {frames.shape}")
    n_source = int(ds.get("NumberOfFrames", 1) or 1)
    if frames.shape[0] != n_source:
        raise ValueError(f"{frames.shape[0]} frames given for a source of {n_source} frames")
    source_shape = (int(ds.get("Rows", 0)), int(ds.get("Columns", 0)))
    top, left = _crop_origin(crop_region, frames.shape[1:], source_shape)
    for kw in PIXEL_ENCODING_KEYWORDS:
        if kw in ds:
            delattr(ds, kw)
    ds.Rows, ds.Columns = frames.shape[1:]
    if "NumberOfFrames" in ds:
        ds.NumberOfFrames = frames.shape[0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    ds["PixelData"].VR = "OB"
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if ds.original_encoding[1] is False:
        _to_little_endian(ds)
    _crop_regions(ds, top, left, frames.shape[1:])


#: Byte width of the words in the binary VRs whose byte order follows the transfer syntax.
_WORD_BYTES = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}


def _to_little_endian(d) -> None:
    """Make a dataset read as (retired) Explicit VR Big Endian writable as little endian.

    pydicom decodes numbers by VR but keeps OW/OL/OF/OD/OV bytes as read: swap their words; UN
    bytes cannot be swapped without knowing their layout, so they go.
    """
    for elem in list(d):
        if elem.VR == "SQ":
            for item in elem.value:
                _to_little_endian(item)
        elif elem.VR in _WORD_BYTES and elem.value:
            width = _WORD_BYTES[elem.VR]
            elem.value = np.frombuffer(elem.value, f">u{width}").astype(f"<u{width}").tobytes()
        elif elem.VR == "UN":
            del d[elem.tag]
    d.set_original_encoding(False, True)


def _crop_regions(ds, top: int, left: int, shape: tuple[int, int]) -> None:
    """Move SequenceOfUltrasoundRegions into cropped coordinates, clipped to the new frame.

    Reference Pixel X0/Y0 are offsets from the region's Min X0/Y0 (PS3.3 C.8.5.5.1), so they move
    only by what clipping takes off the region's top-left. Regions wholly cropped away go.
    """
    if "SequenceOfUltrasoundRegions" not in ds:
        return
    h, w = shape
    kept = []
    corners = ("RegionLocationMinX0", "RegionLocationMinY0", "RegionLocationMaxX1", "RegionLocationMaxY1")
    for item in ds.SequenceOfUltrasoundRegions:
        if any(item.get(kw) is None for kw in corners):
            continue  # a region without a location cannot be placed in the cropped frame
        x0, y0 = int(item.RegionLocationMinX0) - left, int(item.RegionLocationMinY0) - top
        x1, y1 = int(item.RegionLocationMaxX1) - left, int(item.RegionLocationMaxY1) - top
        nx0, ny0, nx1, ny1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
        if nx0 > nx1 or ny0 > ny1:
            continue
        for kw, clipped in (("ReferencePixelX0", nx0 - x0), ("ReferencePixelY0", ny0 - y0)):
            if item.get(kw) is not None:
                setattr(item, kw, int(getattr(item, kw)) - clipped)
        item.RegionLocationMinX0, item.RegionLocationMinY0 = nx0, ny0
        item.RegionLocationMaxX1, item.RegionLocationMaxY1 = nx1, ny1
        kept.append(item)
    if kept:
        ds.SequenceOfUltrasoundRegions = kept
    else:
        del ds.SequenceOfUltrasoundRegions
