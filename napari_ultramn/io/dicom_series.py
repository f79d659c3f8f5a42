"""A folder of single-frame DICOM images (one series) as one lazy clip.

Many scanners and PACS exports write a cine loop, or a run of stills, as one file per frame. A
folder is read as the one series of single-frame images it holds:

- files are DICOM by suffix (``.dcm``, ``.dicom``) or by the DICM magic (``IM0001``); hidden files
  and DICOMDIR are skipped;
- frames are ordered by InstanceNumber, then acquisition time (AcquisitionDateTime, else
  AcquisitionDate/Time, else ContentDate/Time), then natural file name;
- every image must share one SeriesInstanceUID and one Rows x Columns, else the folder is refused
  with one line naming the series (or sizes) and a file of each;
- multi-frame files and non-image objects (a structured report, a DICOMDIR-like index) in the
  folder are clips or nothing of their own: they are skipped here and listed in
  ``clip.extra["skipped_files"]``;
- calibration (ultrasound regions, else PixelSpacing), scanner and laterality come from the first
  image; the frame time from the acquisition times (median step), else the first file's timing.

Opening reads every file's header (not its pixels) and decodes frame 0; frame ``i`` reads and
decodes file ``i`` when it is shown, with the same decoders and colour handling as a multi-frame
file (:func:`napari_ultramn.io.dicom.dicom_frame_reader`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .clip import Clip
from .dicom import _IMAGE_SOP_KEYWORDS, dicom_clip, dicom_frame_reader, frame_time_ms, read_dataset
from .kinds import clip_kind
from .source_files import natural_key, visible_files


def dicom_files(folder: Path) -> list[Path]:
    """The DICOM files directly in ``folder`` (by suffix or DICM magic), in natural order."""
    return [p for p in visible_files(folder) if clip_kind(p) == "dicom"]


@dataclass
class FolderDicoms:
    """The DICOM files of one folder, sorted out by what they are."""

    #: single-frame images (path, header) per SeriesInstanceUID ("" when a file has none)
    series: dict[str, list[tuple[Path, object]]] = field(default_factory=dict)
    #: multi-frame files, non-image objects and unreadable files: each a source of its own
    others: list[Path] = field(default_factory=list)


def _is_single_frame_image(ds) -> bool:
    sop = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
    name = getattr(sop, "name", str(sop)) if sop else ""
    if sop and name != str(sop) and not any(k in name for k in _IMAGE_SOP_KEYWORDS):
        return False  # a known non-image SOP class (SR, presentation state, ...)
    if not ds.get("Rows") or not ds.get("Columns"):
        return False
    try:
        return int(ds.get("NumberOfFrames", 1) or 1) == 1
    except (TypeError, ValueError):
        return False


def sort_dicoms(folder: Path) -> FolderDicoms:
    """Read the header of every DICOM file in ``folder`` and sort them out (see :class:`FolderDicoms`)."""
    found = FolderDicoms()
    for path in dicom_files(folder):
        try:
            ds = read_dataset(path, stop_before_pixels=True)
        except InputError:
            found.others.append(path)  # reported by name when it is opened on its own
            continue
        if _is_single_frame_image(ds):
            uid = str(ds.get("SeriesInstanceUID", "") or "")
            found.series.setdefault(uid, []).append((path, ds))
        else:
            found.others.append(path)
    return found


def _acquired_s(ds) -> float | None:
    """Acquisition (else content) date and time as seconds on one scale; None if the file has none."""
    text = str(ds.get("AcquisitionDateTime", "") or "")
    date, time = text[:8], text[8:]
    if not text:
        for prefix in ("Acquisition", "Content"):
            time = str(ds.get(f"{prefix}Time", "") or "")
            if time:
                date = str(ds.get(f"{prefix}Date", "") or "")
                break
        else:
            return None
    for sign in "+-":  # a UTC offset suffix (&ZZXX) does not change the order within one export
        time = time.split(sign)[0]
    time = time.replace(":", "").strip()
    try:
        seconds = int(time[0:2]) * 3600 + int(time[2:4] or 0) * 60 + float(time[4:] or 0)
    except ValueError:
        return None
    try:  # days since 1970, small enough that float seconds keep microseconds
        days = (dt.date(int(date[0:4]), int(date[4:6]), int(date[6:8])) - dt.date(1970, 1, 1)).days
    except ValueError:
        days = 0
    return days * 86400.0 + seconds


def _instance_number(ds) -> int | None:
    try:
        return int(ds.get("InstanceNumber"))
    except (TypeError, ValueError):
        return None


def _order_key(member: tuple[Path, object]) -> tuple:
    path, ds = member
    number, acquired = _instance_number(ds), _acquired_s(ds)
    return (number is None, number or 0, acquired is None, acquired or 0.0, natural_key(path.name))


def _series_frame_time_ms(headers: list) -> float | None:
    """Median step between acquisition times, else the first file's own timing fields."""
    acquired = [_acquired_s(ds) for ds in headers]
    times = [t for t in acquired if t is not None]
    if len(times) > 1 and len(times) == len(acquired):
        step = float(np.median(np.diff(times)))
        if step > 0:
            return round(step * 1000.0, 6)
    return frame_time_ms(headers[0])


def _one_series(folder: Path, found: FolderDicoms) -> list[tuple[Path, Any]]:  # pydicom Datasets
    """The members (path, header) of the folder's one series in frame order, or refuse."""
    if not found.series:
        if found.others:
            raise InputError(
                folder,
                f"folder holds no single-frame DICOM images ({len(found.others)} other DICOM "
                f"file(s), e.g. {found.others[0].name}: open each file on its own)",
            )
        raise InputError(folder, "folder holds no DICOM files")
    if len(found.series) > 1:
        (uid_a, files_a), (uid_b, files_b) = list(found.series.items())[:2]
        more = f" and {len(found.series) - 2} more" if len(found.series) > 2 else ""
        raise InputError(
            folder,
            f"holds DICOM images of {len(found.series)} series "
            f"({uid_a or 'no SeriesInstanceUID'} in {files_a[0][0].name}, "
            f"{uid_b or 'no SeriesInstanceUID'} in {files_b[0][0].name}{more}); "
            "a folder is read as one series: put each series in a folder of its own",
        )
    return sorted(next(iter(found.series.values())), key=_order_key)


def series_files(folder: str | Path) -> list[Path]:
    """The single-frame DICOM images of ``folder``'s one series, in frame order.

    For callers that need a header of the series (e.g. ingest reading the patient's identity from
    ``series_files(folder)[0]``). Raises like :func:`read_dicom_series`.
    """
    folder = Path(folder)
    return [path for path, _ in _one_series(folder, sort_dicoms(folder))]


def read_dicom_series(folder: str | Path, **_ignored) -> Clip:
    """Open a folder of single-frame DICOM images as one lazy :class:`Clip` (see module doc)."""
    folder = Path(folder)
    found = sort_dicoms(folder)
    members = _one_series(folder, found)
    files = [path for path, _ in members]
    headers = [ds for _, ds in members]
    sizes: dict[tuple[int, int], str] = {}
    for path, ds in members:
        sizes.setdefault((int(ds.Rows), int(ds.Columns)), path.name)
    if len(sizes) > 1:
        (size_a, name_a), (size_b, name_b) = list(sizes.items())[:2]
        raise InputError(
            folder,
            f"images differ in size: {name_a} is {size_a[0]}x{size_a[1]}, "
            f"{name_b} is {size_b[0]}x{size_b[1]} (rows x columns); a clip needs one size",
        )
    shape = next(iter(sizes))

    def read(i: int) -> np.ndarray:
        ds = read_dataset(files[i])
        read_file, _, file_shape = dicom_frame_reader(files[i], ds)
        if file_shape != shape:
            raise InputError(files[i], f"is {file_shape[0]}x{file_shape[1]}, the series {shape[0]}x{shape[1]}")
        return read_file(0)

    others = {"skipped_files": [p.name for p in found.others]} if found.others else {}
    return dicom_clip(
        folder,
        read,
        len(files),
        shape,
        headers[0],
        _series_frame_time_ms(headers),
        series_instance_uid=str(headers[0].get("SeriesInstanceUID", "") or "") or None,
        frame_files=len(files),
        **others,
    )
