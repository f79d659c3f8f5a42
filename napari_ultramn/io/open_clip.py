"""Open any supported clip by looking at what the path is, and find the clips in a folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import InputError
from .clip import Clip
from .kinds import DICOM_SUFFIXES, HDF5_SUFFIXES, VIDEO_SUFFIXES, clip_kind  # noqa: F401 (API)


def open_clip(path: str | Path, *, crop_to_region: bool = False, **kwargs) -> Clip:
    """Open a clip lazily. ``crop_to_region`` crops to the ultrasound imaging region.

    DICOM (by suffix or the DICM magic), a folder of single-frame DICOMs of one series,
    mp4/avi/mov/... video, an UltraMN ``.h5`` clip, a MetaImage/NRRD image sequence (PLUS, 3D
    Slicer), a folder of PNG/JPEG/BMP/TIFF frames, or one such image (a one-frame clip). Opening
    decodes at most frame 0 (HDF5: none; compressed or wide image sequences: all, once); later
    frames are decoded when indexed. ``kwargs`` go to the format's reader (e.g. ``clip_id`` for a
    dataset). Raises :class:`InputError` naming the file for anything unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    kind = clip_kind(path)
    if path.is_dir() and kind != "dicom_series":
        kind = "frames"  # so an empty folder gets "holds no ... frames and no DICOM files"
    reader: Callable[..., Clip]
    if kind == "dicom":
        from .dicom import read_dicom_clip as reader
    elif kind == "dicom_series":
        from .dicom_series import read_dicom_series as reader
    elif kind == "video":
        from .video import read_video_clip as reader
    elif kind == "hdf5":
        from .hdf5clip import read_hdf5_clip as reader
    elif kind == "frames":
        from .frames import read_frame_folder as reader
    elif kind == "image":
        from .frames import read_image_file as reader
    elif kind == "image_sequence":
        from .image_sequence import read_image_sequence as reader
    else:
        raise InputError(
            path,
            "not a recognised clip (expected DICOM, mp4/avi/mov video, an UltraMN .h5 clip, "
            "a MetaImage/NRRD sequence, a PNG/JPEG/BMP/TIFF image, or a folder of frames or "
            "single-frame DICOMs)",
        )
    clip = reader(path, **kwargs)
    return clip.cropped() if crop_to_region else clip


def folder_sources(folder: str | Path) -> list[Path]:
    """The clips among ``folder``'s own files (not its subfolders), sorted; what ingest takes.

    - **Frame folder**: when at least two files are images (PNG, JPEG, BMP, TIFF), every clip
      file in the folder is an image, and all readable ones have one size, the folder is one clip.
      Otherwise each image is a one-frame clip (stills of several sizes, or beside a video).
    - **DICOM series**: single-frame DICOM images of one series (two or more) make the folder one
      clip; a series of one file is that file. Single-frame images of several series: each
      one-file series is its file, and the folder is listed once so that opening it refuses with
      a line naming the series. Multi-frame files and non-image objects are clips of their own.
    - Videos and MetaImage/NRRD sequences: one clip each. UltraMN ``.h5`` clips are not sources
      (they are project clips already); other files (``.raw`` data beside a ``.mhd``, notes) are
      ignored.
    """
    from .dicom_series import sort_dicoms
    from .source_files import visible_files

    folder = Path(folder)
    kinds = {p: clip_kind(p) for p in visible_files(folder)}
    images = [p for p, kind in kinds.items() if kind == "image"]
    others = [p for p, kind in kinds.items() if kind not in (None, "image", "hdf5")]
    if len(images) >= 2 and not others:
        from .frames import frame_sizes

        sizes, _damaged = frame_sizes(images)  # a damaged frame fails the folder, by name
        if len(sizes) == 1:
            return [folder]
    sources = images + [p for p in others if kinds[p] in ("video", "image_sequence")]
    if any(kind == "dicom" for kind in kinds.values()):
        found = sort_dicoms(folder)
        sources += found.others
        series = list(found.series.values())
        if len(series) == 1 and len(series[0]) > 1:
            sources.append(folder)
        else:
            sources += [members[0][0] for members in series if len(members) == 1]
            if any(len(members) > 1 for members in series):
                sources.append(folder)
    return sorted(sources)
