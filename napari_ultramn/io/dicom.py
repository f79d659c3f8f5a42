"""DICOM clips: single- and multi-frame, any photometric interpretation, decoded frame by frame.

pydicom 3 decodes one frame of a multi-frame dataset on request (``Decoder.as_array(index=i)``),
which is what makes opening a long compressed cine cheap: :func:`read_dicom_clip` checks the file's
structure (pixel data present, every frame's bytes or fragments there, a decoder installed) and
decodes frame 0 only. Compressed transfer syntaxes are decoded by the pylibjpeg plugins, pyjpegls
and (as a fallback) python-gdcm.

Colour is reduced to gray without a round trip through RGB where the file allows it: YBR_FULL and
YBR_FULL_422 already carry BT.601 luma in their first channel, so we skip pydicom's YCbCr -> RGB
conversion (``raw=True``) and take Y. RGB (including JPEG 2000 YBR_ICT/YBR_RCT, which the decoder
returns as RGB) and PALETTE COLOR are converted with the same BT.601 weights.

Monochrome data wider than 8 bits (or signed) goes through the rescale (modality LUT) and the
file's first VOI transform, as a viewer would show it: a VOI LUT, or a window (LINEAR,
LINEAR_EXACT or SIGMOID, PS3.3 C.11.2.1.2), top-level or in the shared functional groups. Without
one, the top 8 stored bits are kept. Both are fixed mappings for the whole clip, never per-frame
min-max, so brightness does not flicker. 8-bit monochrome is shown as stored.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError, describe_oserror
from .clip import Clip, FrameReader, LazyFrames, Region, SpacingSource

# SOP classes whose pixel data is an image a person could annotate.
_IMAGE_SOP_KEYWORDS = ("Image", "Photograph", "Volume")
_Y_FIRST = ("YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420")
_PREAMBLE_END = 132  # 128-byte preamble + b"DICM"


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an (..., 3) RGB frame, as uint8."""
    rgb = rgb.astype(np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def _mono_to_uint8(frame: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Keep the top 8 of ``bits_stored`` bits. A fixed mapping, never per-frame min-max, so a
    clip's brightness does not flicker from frame to frame."""
    if frame.dtype == np.uint8 and bits_stored <= 8 and not signed:
        return frame
    values = frame.astype(np.int64)
    if signed:
        values = values + (1 << (bits_stored - 1))
    shift = max(0, bits_stored - 8)
    return np.clip(values >> shift, 0, 255).astype(np.uint8)


def _first(value) -> float:
    """The first of a possibly multi-valued DICOM number (the default window comes first)."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        value = value[0]
    return float(value)


def _window_source(ds):
    """The dataset (or functional-group item) holding the first VOI transform, or None."""
    if "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds):
        return ds
    try:
        item = ds.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0]
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    return item if "WindowCenter" in item and "WindowWidth" in item else None


def _voi_to_uint8(frame: np.ndarray, ds) -> np.ndarray | None:
    """Rescale, then the first VOI LUT or window, onto 0..255; None if the file has no usable VOI."""
    source = _window_source(ds)
    if source is None:
        return None
    x = frame.astype(np.float64)
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        x = x * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
    if "VOILUTSequence" in source:
        from pydicom.pixels import apply_voi_lut

        item = source.VOILUTSequence[0]
        out = apply_voi_lut(x.astype(np.int64), source, index=0, prefer_lut=True)
        top = float(2 ** int(item.LUTDescriptor[2]) - 1)
        return np.clip(np.round(out.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
    center, width = _first(source.WindowCenter), _first(source.WindowWidth)
    function = str(source.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if function == "LINEAR_EXACT" and width > 0:
        y = (x - center) / width + 0.5
    elif function == "SIGMOID" and width > 0:
        y = 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    elif width >= 1:
        y = (x - (center - 0.5)) / max(width - 1.0, 1e-9) + 0.5
    else:  # a zero or negative width is malformed: fall back to the stored bits
        return None
    return np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)


def to_gray_uint8(frame: np.ndarray, photometric: str, ds) -> np.ndarray:
    """One decoded frame as (H, W) uint8, given the photometric interpretation of ``frame``
    (which the decoder may have changed, e.g. JPEG 2000 YBR_ICT comes back as RGB)."""
    pi = photometric.upper()
    if pi == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(frame, ds)
        if rgb.dtype != np.uint8:
            descriptor = ds.get("RedPaletteColorLookupTableDescriptor") or [0, 0, 16]
            # 16-bit entries: keep the top 8 bits; 8-bit entries stored one per word: as they are
            rgb = (rgb >> 8 if int(descriptor[2]) == 16 else np.minimum(rgb, 255)).astype(np.uint8)
        return _luminance(rgb)
    if frame.ndim == 3 and frame.shape[-1] >= 3:
        if pi in _Y_FIRST:
            return np.ascontiguousarray(frame[..., 0]).astype(np.uint8, copy=False)
        return _luminance(frame[..., :3])
    if frame.ndim == 3:
        frame = frame[..., 0]
    bits = int(ds.get("BitsStored", 8) or 8)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    gray = _voi_to_uint8(frame, ds) if bits > 8 or signed else None
    if gray is None:
        gray = _mono_to_uint8(frame, bits, signed)
    return 255 - gray if pi == "MONOCHROME1" else gray


# Fastest first, measured on 480x640 frames (benchmarks/bench_clip_io.py): Pillow's
# libjpeg-turbo decodes JPEG baseline 3-4x faster than GDCM or pylibjpeg-libjpeg, which pydicom
# would otherwise pick first (it tries plugins in alphabetical order).
_PLUGIN_PREFERENCE = {
    "1.2.840.10008.1.2.4.50": ("pillow", "gdcm", "pylibjpeg"),  # JPEG baseline
    "1.2.840.10008.1.2.4.51": ("pillow", "gdcm", "pylibjpeg"),  # JPEG extended
    "1.2.840.10008.1.2.4.57": ("gdcm", "pylibjpeg"),  # JPEG lossless
    "1.2.840.10008.1.2.4.70": ("gdcm", "pylibjpeg"),  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80": ("pyjpegls", "gdcm", "pylibjpeg"),  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": ("pyjpegls", "gdcm", "pylibjpeg"),  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.5": ("pylibjpeg", "pydicom", "gdcm"),  # RLE
}


class _Codec:
    """A pydicom decoder and the plugins to try, in order; a plugin that fails once (e.g. Pillow
    on 12-bit JPEG) is dropped, and pydicom's own choice ("" = any plugin) is the last resort."""

    def __init__(self, decoder):
        self.decoder = decoder
        available = set(getattr(decoder, "available_plugins", ()))
        preferred = _PLUGIN_PREFERENCE.get(str(decoder.UID), ())
        self.plugins = [p for p in preferred if p in available]

    def as_array(self, ds, index: int | None):
        while True:
            plugin = self.plugins[0] if self.plugins else ""
            try:
                return self.decoder.as_array(ds, index=index, raw=True, validate=False, decoding_plugin=plugin)
            except Exception:
                if not plugin:
                    raise
                self.plugins.pop(0)


def _decode_frame(ds, codec: _Codec, index: int, n_frames: int) -> tuple[np.ndarray, str]:
    """Decode frame ``index`` with pydicom; returns (array, its photometric interpretation).

    ``raw=True`` skips pydicom's YCbCr -> RGB conversion; see :func:`to_gray_uint8`. A
    module-level function so tests can count how many frames opening a clip decodes.
    """
    arr, props = codec.as_array(ds, index if n_frames > 1 else None)
    pi = str(props.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))
    return arr, pi


def us_region_calibration(ds) -> tuple[tuple[float, float] | None, Region | None]:
    """Spacing (row_mm, col_mm) and region of the 2D tissue region in SequenceOfUltrasoundRegions.

    Among regions with RegionSpatialFormat 1 (2D) prefers RegionDataType 1 (tissue), then the
    largest. PhysicalDelta is in cm per pixel when PhysicalUnits is 3 (cm), converted to mm; other
    units leave the spacing unknown (the region is still returned, for cropping).
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
        if fmt != 1 or region.height <= 0 or region.width <= 0:
            continue
        spacing = None
        units = (int(item.get("PhysicalUnitsXDirection", 0) or 0), int(item.get("PhysicalUnitsYDirection", 0) or 0))
        if units == (3, 3):
            dx = abs(float(item.get("PhysicalDeltaX", 0) or 0)) * 10.0
            dy = abs(float(item.get("PhysicalDeltaY", 0) or 0)) * 10.0
            if dx > 0 and dy > 0:
                spacing = (dy, dx)
        is_tissue = int(item.get("RegionDataType", 0) or 0) == 1
        rank = (is_tissue, region.height * region.width)
        if best is None or rank > best[0]:
            best = (rank, spacing, region)
    if best is None:
        return None, None
    return best[1], best[2]


def frame_time_ms(ds) -> float | None:
    """FrameTime, else the median of FrameTimeVector (its leading 0 dropped), else CineRate or
    RecommendedDisplayFrameRate (frames/s). ``None`` when the file does not say."""
    if ds.get("FrameTime") not in (None, ""):
        ft = float(ds.FrameTime)
        if ft > 0:
            return ft
    vec = ds.get("FrameTimeVector")
    if vec:
        vals = np.asarray([float(v) for v in np.atleast_1d(vec)], dtype=float)
        vals = vals[1:] if len(vals) > 1 and vals[0] == 0 else vals
        if len(vals) and np.median(vals) > 0:
            return float(np.median(vals))
    for key in ("CineRate", "RecommendedDisplayFrameRate"):
        if ds.get(key) not in (None, ""):
            rate = float(ds.get(key))
            if rate > 0:
                return 1000.0 / rate
    return None


def read_dataset(path: Path, *, stop_before_pixels: bool = False):
    """The DICOM dataset in ``path`` (its header only with ``stop_before_pixels``); a file that is
    not DICOM, corrupt or truncated raises :class:`InputError` naming it."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
        except OSError as exc:  # the file itself cannot be read (permission, I/O error)
            raise InputError(path, f"cannot be read ({describe_oserror(exc)})") from None
        except InvalidDicomError as exc:
            if path.stat().st_size < _PREAMBLE_END:  # cut inside the preamble or the 'DICM' prefix
                raise InputError(path, _truncated_header(path)) from None
            raise InputError(path, f"is not a DICOM file ({exc})") from None
        except Exception as exc:  # truncated or corrupt headers surface as many exception types
            raise InputError(path, f"DICOM header is truncated or unreadable ({type(exc).__name__}: {exc})") from None
    for w in caught:
        # pydicom drops an element cut off by the end of the file and only warns
        if "end of file" in str(w.message).lower():
            raise InputError(path, "DICOM file is truncated (it ends inside the pixel data)")
    return ds


def _truncated_header(path: Path) -> str:
    return (
        f"DICOM header is truncated or unreadable: the file ends after {path.stat().st_size} "
        "bytes, before the pixel data"
    )


def _cut_short(ds, size: int) -> bool:
    """Whether the file (``size`` bytes) ends inside its header. pydicom stops quietly there: the
    last element it kept holds fewer bytes than its length says, or the file goes on past it with
    less than a whole element header, or (cut in the file meta) there is no element at all."""
    if len(ds) == 0:
        return True
    last = ds.get_item(max(ds.keys()))  # the raw element: its declared length and the bytes read
    length, value = getattr(last, "length", None), getattr(last, "value", None)
    if not isinstance(value, bytes) or not isinstance(length, int) or length == 0xFFFFFFFF:
        return False
    return len(value) < length or getattr(last, "value_tell", size) + length < size


def _check_image(path: Path, ds) -> None:
    sop = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
    name = getattr(sop, "name", str(sop)) if sop else ""
    if "PixelData" not in ds:
        if sop and not any(k in name for k in _IMAGE_SOP_KEYWORDS):
            raise InputError(path, f"is a non-image DICOM object ({name}); it has no frames")
        if _cut_short(ds, path.stat().st_size):
            raise InputError(path, _truncated_header(path))
        raise InputError(path, "DICOM file has no pixel data")
    if sop and name != str(sop) and not any(k in name for k in _IMAGE_SOP_KEYWORDS):
        raise InputError(path, f"is a non-image DICOM object ({name}); it has no frames")
    for key in ("Rows", "Columns"):
        if not ds.get(key):
            raise InputError(path, f"DICOM file has pixel data but no {key}")


def _get_decoder(path: Path, ds):
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import UID

    tsuid = UID(getattr(ds, "file_meta", {}).get("TransferSyntaxUID") or "1.2.840.10008.1.2")
    name = tsuid.name if tsuid.is_valid and tsuid.name != str(tsuid) else "unknown"
    try:
        decoder = get_decoder(tsuid)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        raise InputError(
            path,
            f"transfer syntax {name} ({tsuid}) is not supported: no decoder is installed for it",
        )
    return decoder


def _check_complete(path: Path, ds, decoder, n_frames: int) -> None:
    """Fail at open, not mid-annotation, when the file lacks some frames' bytes."""
    from pydicom.pixels.decoders.base import DecodeRunner

    data = ds.PixelData
    if decoder.is_native:
        runner = DecodeRunner(decoder.UID)
        try:
            runner.set_source(ds)
            expected = int(np.ceil(runner.frame_length(unit="bytes") * n_frames))
        except (AttributeError, ValueError, TypeError) as exc:
            raise InputError(path, f"DICOM image description is inconsistent ({exc})") from None
        if len(data) < expected:
            raise InputError(
                path,
                f"DICOM file is truncated: pixel data holds {len(data)} of the {expected} bytes "
                f"that {n_frames} frame(s) need",
            )
        frame_bytes = expected / n_frames
        _check_frame_count(path, n_frames, int(len(data) // frame_bytes) if frame_bytes else n_frames)
        return
    import io

    from pydicom.encaps import parse_basic_offsets, parse_fragments

    fp = io.BytesIO(data)
    try:
        offsets = parse_basic_offsets(fp)  # leaves fp at the first fragment
        first_fragment = fp.tell()
        n_fragments, fragment_at = parse_fragments(fp)
    except (ValueError, EOFError) as exc:
        raise InputError(path, f"DICOM file is truncated or its pixel data is corrupt ({exc})") from None
    frames_found = n_fragments
    if offsets:
        # the offset table survives truncation; a frame counts only if its fragment start exists
        frames_found = min(len(offsets), sum(o < len(data) - first_fragment for o in offsets))
    if frames_found < n_frames:
        raise InputError(
            path,
            f"DICOM file is truncated: pixel data holds {frames_found} compressed frame(s) of {n_frames}",
        )
    _check_frame_count(path, n_frames, _encapsulated_frames(ds, data, offsets, fragment_at))


def _encapsulated_frames(ds, data: bytes, offsets: list[int], fragment_at: list[int]) -> int:
    """How many frames the encapsulated pixel data holds, whatever NumberOfFrames says.

    The Extended or Basic Offset Table has one entry per frame. Without one, a frame may span
    several fragments, so only fragments that end a codestream count: JPEG, JPEG-LS and JPEG 2000
    all end with the marker FFD9 (EOI/EOC), and RLE has one fragment per frame.
    """
    extended = ds.get("ExtendedOffsetTable")
    if extended:
        return len(extended) // 8
    if offsets:
        return len(offsets)
    tsuid = str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", ""))
    if tsuid == "1.2.840.10008.1.2.5":  # RLE Lossless: one fragment per frame (PS3.5 A.4.2)
        return len(fragment_at)
    ends = 0
    for at in fragment_at:  # item tag (4 bytes), length (4 bytes, little endian), fragment
        end = at + 8 + int.from_bytes(data[at + 4 : at + 8], "little")
        tail = data[max(at + 8, end - 3) : end]
        ends += tail.endswith(b"\xff\xd9") or tail.endswith(b"\xff\xd9\x00")  # padded to even
    return ends


def _check_frame_count(path: Path, n_frames: int, frames_in_data: int) -> None:
    """Refuse a file whose pixel data holds more frames than NumberOfFrames says: reading only
    the frames the header counts would silently drop the rest of the clip."""
    if frames_in_data > n_frames:
        raise InputError(
            path,
            f"NumberOfFrames says {n_frames} but the pixel data holds {frames_in_data} frames; "
            "the header is wrong, refusing to read only part of the clip",
        )


def dicom_frame_reader(path: Path, ds) -> tuple[FrameReader, int, tuple[int, int]]:
    """Check that ``ds`` (read from ``path``) holds frames this module decodes; return
    ``(read, n_frames, (rows, cols))`` where ``read(i)`` decodes frame ``i`` as (H, W) uint8.

    Raises :class:`InputError` naming ``path`` for a non-image object, a missing decoder or
    missing frame bytes; ``read`` raises it for a frame that fails to decode.
    """
    _check_image(path, ds)
    decoder = _get_decoder(path, ds)
    rows, cols = int(ds.Rows), int(ds.Columns)
    try:
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise InputError(path, f"NumberOfFrames is not a number ({ds.NumberOfFrames!r})") from None
    if n_frames < 1:
        raise InputError(path, "DICOM file says it has 0 frames")
    _check_complete(path, ds, decoder, n_frames)
    codec = _Codec(decoder)

    def read(i: int) -> np.ndarray:
        try:
            frame, pi = _decode_frame(ds, codec, i, n_frames)
            gray = to_gray_uint8(frame, pi, ds)
        except Exception as exc:  # decoder errors come in many types; name the file and frame
            raise InputError(path, f"frame {i} cannot be decoded ({type(exc).__name__}: {exc})") from None
        if gray.shape != (rows, cols):
            raise InputError(path, f"frame {i} decodes to {gray.shape}, not ({rows}, {cols})")
        return gray

    return read, n_frames, (rows, cols)


def calibration(ds) -> tuple[tuple[float, float] | None, SpacingSource, Region | None]:
    """``(spacing_mm, spacing_source, imaging_region)``: the ultrasound region's calibration,
    else PixelSpacing, else ImagerPixelSpacing."""
    spacing, region = us_region_calibration(ds)
    source: SpacingSource = "us_region" if spacing is not None else "none"
    if spacing is None and _pair(ds.get("PixelSpacing")):
        spacing, source = _pair(ds.PixelSpacing), "pixel_spacing"
    elif spacing is None and _pair(ds.get("ImagerPixelSpacing")):
        spacing, source = _pair(ds.ImagerPixelSpacing), "imager_pixel_spacing"
    return spacing, source, region


def _pair(values) -> tuple[float, float] | None:
    """(row, column) mm from a PixelSpacing-like value; None unless it holds exactly two numbers."""
    try:
        row_mm, col_mm = (float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return row_mm, col_mm


def dicom_clip(
    source_path: Path,
    read: FrameReader,
    n_frames: int,
    shape: tuple[int, int],
    ds,
    frame_time: float | None,
    **extra,
) -> Clip:
    """A lazy :class:`Clip` of ``read``'s frames with calibration, scanner and laterality from
    header ``ds``; decodes frame 0 (it proves the codec works on the file now, and is the frame
    napari shows first, kept in the cache)."""
    spacing, source, region = calibration(ds)
    tsuid = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    lazy = LazyFrames(read, n_frames, shape)
    lazy.frame(0)
    return Clip(
        frames=lazy,
        source_path=source_path,
        spacing_mm=spacing,
        spacing_source=source,
        frame_time_ms=frame_time,
        imaging_region=region,
        manufacturer=str(ds.get("Manufacturer", "")) or None,
        device_model=str(ds.get("ManufacturerModelName", "")) or None,
        side=_laterality(ds),
        extra={
            "sop_instance_uid": str(ds.get("SOPInstanceUID", "")) or None,
            "transfer_syntax": str(tsuid) if tsuid else None,
            "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")) or None,
            **extra,
        },
    )


def read_dicom_clip(path: str | Path, **_ignored) -> Clip:
    """Open a DICOM file as a lazy :class:`Clip`; raise :class:`InputError` for anything unreadable.

    Decodes frame 0 only (kept in the frame cache, so showing it is free).
    """
    path = Path(path)
    ds = read_dataset(path)
    read, n_frames, shape = dicom_frame_reader(path, ds)
    return dicom_clip(path, read, n_frames, shape, ds, frame_time_ms(ds))


def _laterality(ds) -> str | None:
    for key in ("ImageLaterality", "Laterality", "FrameLaterality"):
        value = str(ds.get(key, "") or "").upper()
        if value in ("L", "R"):
            return {"L": "left", "R": "right"}[value]
    return None
