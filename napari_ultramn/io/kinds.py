"""What a path holds (DICOM, video, HDF5 clip, image, image sequence, a folder of either), from its
name and, for DICOM, its magic bytes: never its pixels. Shared by opening, ingest and DICOM series.
"""

from __future__ import annotations

from pathlib import Path

from .frames import FRAME_SUFFIXES
from .image_sequence import SEQUENCE_SUFFIXES
from .source_files import visible_files

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".m4v", ".mkv", ".wmv"}
HDF5_SUFFIXES = {".h5", ".hdf5"}
DICOM_SUFFIXES = {".dcm", ".dicom"}
#: A file kind for each suffix that decides it; other files are DICOM if they carry the magic.
_KIND_BY_SUFFIX = {
    **dict.fromkeys(VIDEO_SUFFIXES, "video"),
    **dict.fromkeys(HDF5_SUFFIXES, "hdf5"),
    **dict.fromkeys(DICOM_SUFFIXES, "dicom"),
    **dict.fromkeys(FRAME_SUFFIXES, "image"),
    **dict.fromkeys(SEQUENCE_SUFFIXES, "image_sequence"),
}


def clip_kind(path: str | Path) -> str | None:
    """What ``path`` holds, judged from its name and (for DICOM) its magic, never its pixels.

    Files: 'dicom', 'video', 'hdf5', 'image' (one PNG/JPEG/BMP/TIFF: a one-frame clip),
    'image_sequence' (MetaImage or NRRD). Folders: 'dicom_series' when they hold DICOM files,
    else 'frames' when they hold images. ``None``: not a clip.
    """
    path = Path(path)
    if path.is_dir():
        try:
            kinds = {clip_kind(p) for p in visible_files(path)}
        except OSError:
            return None
        return "dicom_series" if "dicom" in kinds else "frames" if "image" in kinds else None
    kind = _KIND_BY_SUFFIX.get(path.suffix.lower())
    if kind is not None:
        return kind
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return None
    return "dicom" if head[128:132] == b"DICM" else None
