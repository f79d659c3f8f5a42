"""napari reader contribution: clips as Image layers.

DICOM files, folders of single-frame DICOMs (one series), videos, MetaImage/NRRD sequences (PLUS,
3D Slicer), folders of image frames, single PNG/JPEG/BMP/TIFF images (one-frame clips) and
UltraMN HDF5 clips.

The layer's data is the clip's lazy ``(T, H, W) uint8`` frame array, so napari decodes only the
frames it shows (opening a 120-frame cine decodes frame 0). The contrast limits are fixed to the
uint8 range because napari would otherwise compute them by reading the data, i.e. decoding every
frame of a short clip. Layer metadata carries the clip's JSON-able metadata and the ``Clip`` itself
(``metadata["clip"]``) for the annotation widgets.

The manifest registers this reader for ``*`` and directories, so :func:`napari_get_reader` must
return ``None`` quickly for anything that is not a clip, leaving it to other readers.
"""

from __future__ import annotations

from pathlib import Path

from .io.open_clip import clip_kind


def _is_our_hdf5(path: Path) -> bool:
    try:
        from napari_ultramn.io.h5 import load_h5py

        h5py = load_h5py()

        with h5py.File(path, "r") as fh:
            if fh.attrs.get("format") is not None or "frames" in fh:
                return True
            clips = fh.get("clips")
            return isinstance(clips, h5py.Group) and len(clips) > 0
    except (OSError, ValueError):
        return False


def _is_clip(path: Path) -> bool:
    if not path.exists():
        return False
    kind = clip_kind(path)
    if kind == "hdf5":
        return _is_our_hdf5(path)
    return kind is not None


def napari_get_reader(path):
    """Return :func:`read_clips` if every path is a clip we read, else ``None``."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(_is_clip(Path(p)) for p in paths):
        return None
    return read_clips


def layer_data(clip) -> tuple:
    """``(data, kwargs, "image")`` for one clip; scale in mm per pixel when calibrated."""
    meta = {**clip.metadata(), "clip": clip}
    name = clip.source_path.stem if clip.source_path.is_file() else clip.source_path.name
    kwargs = {
        "name": name,
        "metadata": meta,
        "contrast_limits": (0, 255),
        "rgb": False,
        "multiscale": False,
        "colormap": "gray",
        "axis_labels": ("frame", "y", "x"),
    }
    if clip.spacing_mm is not None:
        kwargs["scale"] = (1.0, float(clip.spacing_mm[0]), float(clip.spacing_mm[1]))
        kwargs["units"] = ("pixel", "mm", "mm")
    return clip.frames, kwargs, "image"


def read_clips(path) -> list[tuple]:
    """Open each path lazily; bad files raise ``InputError`` naming the file, which napari shows."""
    from .io import open_clip

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    return [layer_data(open_clip(Path(p))) for p in paths]
