"""MetaImage (``.mha``, ``.mhd`` + data file) and NRRD (``.nrrd``, ``.nhdr``) image sequences.

What the tracked-ultrasound tools write:

- **PLUS toolkit** sequence files (``.mha``/``.mhd``, also ``.nrrd``): a 3D image (W, H, T) whose
  third axis is time, ``ElementNumberOfChannels`` 1 (B-mode) or 3 (RGB), and per-frame fields
  ``Seq_Frame0000_Timestamp = 12.345`` (seconds; ``key:=value`` lines in NRRD).
- **3D Slicer** volume sequences (``.seq.nrrd``): 4D, one single-slice volume per item, kinds
  ``domain domain domain list`` (current Slicer; ``vector``/``RGB-color`` first for colour) or
  ``list domain domain domain`` (older Slicer); item times in ``axis N index values:=...`` with
  the axis ``labels``/``units`` ("time", "s") saying whether they are times.

SimpleITK decodes both formats (raw, zlib/gzip, detached data files, byte order). ITK turns a
NRRD ``list`` axis that is not colour into pixel *components*; :func:`_layout` undoes that from
the ``NRRD_kinds[pixel]`` field ITK reports. The MetaImage header is also parsed here, because
MetaIO prints the reason for a bad header to stderr and raises a misleading "cannot be read":
checking it first gives a one-line error naming the field.

Pixels: 8-bit grey is shown as stored; colour (3 or 4 components) becomes BT.601 luma; data wider
than 8 bits (16-bit, signed, float) is mapped linearly from the clip's minimum..maximum onto
0..255, one mapping for the whole clip so brightness never flickers. (Not the top 8 bits, as for
DICOM: these formats do not say how many bits are used, and 12-bit data in 16-bit words would show
nearly black.)

Spacing (mm) is ITK's spacing of the two in-plane axes (ElementSpacing, NRRD ``space directions``
or ``spacings``). Exactly 1 x 1 is read as *uncalibrated*: it is what both formats default to and
what PLUS always writes (its calibration lives in transforms, not in the image), and 1 mm per
pixel is no real ultrasound image.

Laziness: an uncompressed 8-bit MetaImage is streamed frame by frame (ITK reads one frame's
bytes). Compressed data, NRRD (ITK cannot stream it) and wide data (its min..max needs every
frame) are read once, at open; these files are small enough for that.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from .clip import Clip, LazyFrames
from .source_files import data_files, read_metaimage_header  # noqa: F401 (data_files: API)

METAIMAGE_SUFFIXES = (".mha", ".mhd")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
SEQUENCE_SUFFIXES = METAIMAGE_SUFFIXES + NRRD_SUFFIXES

_MET_TYPES = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 4,
    "MET_ULONG": 4,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}
_COLOUR_KINDS = {
    "rgb-color",
    "rgba-color",
    "3-color",
    "4-color",
    "vector",
    "2-vector",
    "3-vector",
    "4-vector",
    "covariant-vector",
    "normal",
}
_PLUS_TIMESTAMP = re.compile(r"Seq_Frame(\d+)_Timestamp")
_INDEX_VALUES = re.compile(r"axis (\d+) index values")
_UNIT_MS = {
    "s": 1000.0,
    "sec": 1000.0,
    "second": 1000.0,
    "seconds": 1000.0,
    "ms": 1.0,
    "msec": 1.0,
    "millisecond": 1.0,
    "milliseconds": 1.0,
}


def _check_metaimage(path: Path, fields: dict[str, str], header_bytes: int) -> None:
    """Refuse a header ITK would fail on, naming the field, and data shorter than it says."""

    def ints(key: str) -> list[int]:
        try:
            return [int(v) for v in fields[key].split()]
        except KeyError:
            raise InputError(path, f"MetaImage header lacks {key}") from None
        except ValueError:
            raise InputError(path, f"MetaImage {key} is not whole numbers ({fields[key]!r})") from None

    ndims = (ints("NDims") or [0])[0]
    dims = ints("DimSize")
    if len(dims) != ndims or min(dims, default=0) < 1:
        raise InputError(path, f"MetaImage DimSize {fields['DimSize']!r} does not give {ndims} sizes")
    element = fields.get("ElementType", "").removesuffix("_ARRAY")
    if element not in _MET_TYPES:
        raise InputError(path, f"MetaImage ElementType {fields.get('ElementType')!r} is not supported")
    channels = ints("ElementNumberOfChannels")[0] if "ElementNumberOfChannels" in fields else 1
    if fields.get("CompressedData", "False").lower() == "true":
        return  # the compressed size says nothing about the image; a bad stream fails at read
    need = int(np.prod(dims)) * channels * _MET_TYPES[element]
    name = fields["ElementDataFile"]
    if name.upper() == "LOCAL":
        have = path.stat().st_size - header_bytes
    elif name.upper() == "LIST" or "%" in name or " " in name:
        return  # one file per slice: ITK checks them
    else:
        data = path.parent / name
        if not data.is_file():
            raise InputError(path, f"MetaImage data file {name} is missing")
        have = data.stat().st_size
    if have < need:
        frames = dims[2] if ndims >= 3 else 1
        raise InputError(path, f"MetaImage data is truncated: {have} of the {need} bytes that {frames} frame(s) need")


def _itk_reason(exc: Exception) -> str:
    """The useful last line of an ITK exception (teem's reason for NRRD), without C++ noise."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reasons = [re.sub(r"^\[nrrd\]\s*\w+:\s*", "", line) for line in lines if line.startswith("[nrrd]")]
    reasons = [r for r in reasons if r] or lines[-1:] or [type(exc).__name__]
    return re.sub(r"^.*?ERROR:\s*(\w+\(0x[0-9a-f]+\):\s*)?", "", reasons[-1])


def _layout(path: Path, reader, meta: dict[str, str]) -> tuple[int, int, int, int, bool, str]:
    """``(T, H, W, channels, time_in_components, time_axis_key)`` of what ITK reads.

    ``time_axis_key`` names the time axis in ITK's ``NRRD_labels[...]``/``NRRD_units[...]``.
    """
    size = list(reader.GetSize())
    comps = int(reader.GetNumberOfComponents())
    pixel_kind = meta.get("NRRD_kinds[pixel]", "").lower()
    if comps > 1 and pixel_kind and pixel_kind not in _COLOUR_KINDS:
        # a NRRD list (sequence) axis that ITK made into components: one frame per component
        if len(size) == 3 and size[2] == 1:
            size = size[:2]
        if len(size) != 2:
            raise InputError(path, f"each of the {comps} items is a {'x'.join(map(str, size))} volume, not a 2D frame")
        return comps, size[1], size[0], 1, True, "pixel"
    if len(size) == 2:
        n_frames, axis = 1, ""
    elif len(size) == 3:
        n_frames, axis = size[2], "2"
    elif len(size) == 4 and size[2] == 1:
        n_frames, axis = size[3], "3"
    else:
        raise InputError(
            path, f"is a {len(size)}D image of {'x'.join(map(str, size))} voxels; expected 2D frames over time"
        )
    if comps not in (1, 2, 3, 4):
        raise InputError(path, f"has {comps} components per pixel; expected grey or RGB(A)")
    return n_frames, size[1], size[0], comps, False, axis


def _frame_time_ms(fields: dict[str, str], time_key: str) -> float | None:
    """Median step of PLUS per-frame timestamps (s), else of Slicer's item index values when
    the sequence axis is time (unit s or ms, or labelled "time", Slicer's default in seconds)."""
    stamps = sorted((int(m.group(1)), v) for k, v in fields.items() if (m := _PLUS_TIMESTAMP.fullmatch(k)))
    scale: float | None = 1000.0
    values = [v for _, v in stamps]
    if not values:
        index = next((k for k in fields if _INDEX_VALUES.fullmatch(k)), None)
        if index is None or fields.get(index.replace("values", "type"), "numeric") != "numeric":
            return None
        values = fields[index].split()
        unit = fields.get(f"NRRD_units[{time_key}]", "").strip().lower()
        label = fields.get(f"NRRD_labels[{time_key}]", "").strip().lower()
        scale = _UNIT_MS.get(unit) or (1000.0 if not unit and label == "time" else None)
    try:
        times = np.asarray([float(v) for v in values], float)
    except ValueError:
        return None
    if scale is None or len(times) < 2:
        return None
    step = float(np.median(np.diff(times)))
    return round(step * scale, 6) if step > 0 and np.isfinite(step) else None


def _gray(frames: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """``(..., H, W, C)`` frames as ``(..., H, W)`` uint8: wide data mapped lo..hi onto 0..255."""
    from .dicom import _luminance

    if frames.dtype != np.uint8:
        scale = 255.0 / (hi - lo) if hi is not None and lo is not None and hi > lo else 0.0
        frames = np.clip(np.round((frames.astype(np.float32) - (lo or 0)) * scale), 0, 255)
        frames = frames.astype(np.uint8)
    if frames.shape[-1] >= 3:
        return _luminance(frames[..., :3])
    return np.ascontiguousarray(frames[..., 0])  # grey, or grey + alpha


def read_image_sequence(path: str | Path, **_ignored) -> Clip:
    """Open a MetaImage or NRRD image sequence as a :class:`Clip` (see module doc)."""
    import SimpleITK as sitk

    path = Path(path)
    is_meta = path.suffix.lower() in METAIMAGE_SUFFIXES
    fields: dict[str, str] = {}
    if is_meta:
        fields, header_bytes = read_metaimage_header(path)
        _check_metaimage(path, fields, header_bytes)
    else:
        with open(path, "rb") as fh:
            if not fh.read(8).startswith(b"NRRD000"):
                raise InputError(path, "is not a NRRD file (it does not start with NRRD000x)")
    fmt = "MetaImage" if is_meta else "NRRD"
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(path, f"{fmt} header cannot be read ({_itk_reason(exc)})") from None
    fields.update({k: reader.GetMetaData(k) for k in reader.GetMetaDataKeys()})
    n_frames, rows, cols, channels, time_in_components, time_key = _layout(path, reader, fields)
    wide = reader.GetPixelID() not in (sitk.sitkUInt8, sitk.sitkVectorUInt8)
    compressed = fields.get("CompressedData", "False").lower() == "true"

    if is_meta and not compressed and not wide and reader.GetDimension() == 3:

        def read(i: int) -> np.ndarray:
            reader.SetExtractIndex((0, 0, i))
            reader.SetExtractSize((cols, rows, 0))
            try:
                frame = sitk.GetArrayFromImage(reader.Execute())
            except RuntimeError as exc:
                raise InputError(path, f"frame {i} cannot be read ({_itk_reason(exc)})") from None
            return _gray(frame.reshape(rows, cols, channels))
    else:
        try:
            volume = sitk.GetArrayFromImage(reader.Execute())
        except RuntimeError as exc:
            raise InputError(path, f"{fmt} data cannot be read ({_itk_reason(exc)})") from None
        if time_in_components:  # (1, H, W, T) or (H, W, T) -> (T, H, W, 1)
            volume = np.moveaxis(volume.reshape(rows, cols, n_frames), -1, 0)[..., None]
        volume = volume.reshape(n_frames, rows, cols, channels)
        lo, hi = (float(np.nanmin(volume)), float(np.nanmax(volume))) if wide else (None, None)

        def read(i: int) -> np.ndarray:
            return _gray(volume[i], lo, hi)

    sx, sy = reader.GetSpacing()[:2]
    calibrated = np.isfinite([sx, sy]).all() and min(sx, sy) > 0 and (sx, sy) != (1.0, 1.0)
    lazy = LazyFrames(read, n_frames, (rows, cols))
    lazy.frame(0)
    orientation = fields.get("UltrasoundImageOrientation")
    return Clip(
        frames=lazy,
        source_path=path,
        spacing_mm=(float(sy), float(sx)) if calibrated else None,
        spacing_source="stored" if calibrated else "none",
        frame_time_ms=_frame_time_ms(fields, time_key),
        extra={"format": fmt, **({"ultrasound_image_orientation": orientation} if orientation else {})},
    )
