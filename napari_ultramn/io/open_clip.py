"""Open any supported clip by looking at what the path is."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .clip import Clip

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".m4v", ".mkv", ".wmv"}
HDF5_SUFFIXES = {".h5", ".hdf5"}
FRAME_SUFFIXES = {".png", ".tif", ".tiff"}


def clip_kind(path: str | Path) -> str | None:
    """'dicom', 'video', 'hdf5', 'frames' or None, judged from the name and (for DICOM) magic."""
    path = Path(path)
    if path.is_dir():
        try:
            return "frames" if any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir()) else None
        except OSError:
            return None
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    if suffix in {".dcm", ".dicom"}:
        return "dicom"
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return None
    return "dicom" if head[128:132] == b"DICM" else None


def open_clip(path: str | Path, *, crop_to_region: bool = False, **kwargs) -> Clip:
    """Open a clip lazily. ``crop_to_region`` crops to the ultrasound imaging region.

    DICOM (by suffix or the DICM magic), mp4/avi/mov/... video, an UltraMN ``.h5`` clip, or a
    folder of PNG/TIFF frames. Opening decodes at most frame 0 (HDF5: none); later frames are
    decoded when indexed. ``kwargs`` go to the format's reader (e.g. ``clip_id`` for a dataset).
    Raises :class:`InputError` naming the file for anything unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    # any folder is read as frames, so an empty one gets "holds no PNG or TIFF frames"
    kind = "frames" if path.is_dir() else clip_kind(path)
    if kind == "dicom":
        from .dicom import read_dicom_clip

        clip = read_dicom_clip(path, **kwargs)
    elif kind == "video":
        from .video import read_video_clip

        clip = read_video_clip(path, **kwargs)
    elif kind == "hdf5":
        from .hdf5clip import read_hdf5_clip

        clip = read_hdf5_clip(path, **kwargs)
    elif kind == "frames":
        from .frames import read_frame_folder

        clip = read_frame_folder(path, **kwargs)
    else:
        raise InputError(
            path,
            "not a recognised clip (expected DICOM, mp4/avi/mov video, an UltraMN .h5 clip, "
            "or a folder of PNG/TIFF frames)",
        )
    return clip.cropped() if crop_to_region else clip
