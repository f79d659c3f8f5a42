"""Our own HDF5 clip format, used by annotation projects (one clip per file) and datasets.

Layout of one clip group (the file root for a project clip, ``/clips/<clip_id>`` in a dataset)::

    attrs:  format="ultramn-clip", format_version=1, clip_id, participant, side, plane,
            source_sha256, spacing_mm [row, col] (absent = uncalibrated), spacing_source,
            frame_time_ms, manufacturer, device_model, metadata_json (other non-identifying keys)
    frames  (T, H, W) uint8, chunks (1, H, W), Blosc-Zstd (io.h5) - one frame reads one chunk
    masks, plane_labels, provenance, quality ... (datasets only; see dataset_tools.build)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from .clip import Clip, LazyFrames, Region
from .h5 import check_writes, compression_kwargs, create_h5

FORMAT = "ultramn-clip"
_SKIP = {
    "source_path",
    "n_frames",
    "frame_shape",
    "spacing_mm",
    "spacing_source",
    "frame_time_ms",
    "imaging_region",
    "manufacturer",
    "device_model",
    "participant",
    "side",
    "plane",
}


def write_clip_group(group, frames, clip_meta: dict, compression: str | None = "zstd") -> None:
    """Write frames and metadata attributes into an open h5py group.

    ``frames`` is a ``(T, H, W)`` array, or any array-like with ``shape`` and per-frame indexing
    (``Clip.frames``), which is written one frame at a time so a long lazy clip never has to be
    decoded into memory at once.
    """
    shape = tuple(getattr(frames, "shape", np.shape(frames)))
    if len(shape) != 3 or 0 in shape:
        raise ValueError(f"frames must be a non-empty (T, H, W) array, got shape {shape}")
    opts = compression_kwargs(compression)
    chunks = (1, *shape[1:])
    if isinstance(frames, np.ndarray):
        group.create_dataset("frames", data=np.asarray(frames, dtype=np.uint8), chunks=chunks, **opts)
    else:
        ds = group.create_dataset("frames", shape=shape, dtype=np.uint8, chunks=chunks, **opts)
        for t in range(shape[0]):
            ds[t] = np.asarray(frames[t], dtype=np.uint8)
            check_writes(group)  # a full disk stops here, not after decoding the whole clip
    write_clip_attrs(group, clip_meta)


def write_clip_attrs(group, clip_meta: dict) -> None:
    """The metadata attributes of a clip group (``write_clip_group`` without the frames, for a
    writer that stores the frames itself, e.g. copying compressed chunks)."""
    attrs = group.attrs
    attrs["format"] = FORMAT
    attrs["format_version"] = 1
    for key in (
        "clip_id",
        "participant",
        "side",
        "plane",
        "source_sha256",
        "spacing_source",
        "manufacturer",
        "device_model",
    ):
        if clip_meta.get(key) is not None:
            attrs[key] = str(clip_meta[key])
    if clip_meta.get("spacing_mm") is not None:
        attrs["spacing_mm"] = np.asarray(clip_meta["spacing_mm"], dtype=np.float64)
    if clip_meta.get("frame_time_ms") is not None:
        attrs["frame_time_ms"] = float(clip_meta["frame_time_ms"])
    extra = {k: v for k, v in clip_meta.items() if k not in _SKIP and k not in attrs and not str(k).startswith("_")}
    attrs["metadata_json"] = json.dumps(extra, default=str)
    check_writes(group)


def write_hdf5_clip(path: str | Path, frames: np.ndarray, clip_meta: dict) -> None:
    """Write a single-clip HDF5 file atomically; a failed write (full disk, quota, read-only folder)
    is one :class:`~napari_ultramn.errors.OutputError` naming ``path``, with nothing left behind."""
    with atomic_path(path) as tmp, create_h5(tmp, shown=path) as fh:
        write_clip_group(fh, frames, clip_meta)


def clip_from_group(path: Path, group, keep_open) -> Clip:
    """A lazy :class:`Clip` over one clip group; ``keep_open`` (the h5py File) lives as long as
    the clip, in ``clip.extra["_h5"]``."""
    a = group.attrs

    def get(key):
        v = a.get(key)
        return v.decode() if isinstance(v, bytes) else (None if v is None else v)

    if get("format") != FORMAT:
        where = "file" if group.name == "/" else f"group '{group.name}'"
        raise InputError(path, f"HDF5 {where} is not an UltraMN clip (no format='{FORMAT}' attribute)")
    if "frames" not in group:
        raise InputError(path, f"HDF5 group '{group.name}' has no 'frames' dataset")
    ds = group["frames"]
    if ds.ndim != 3 or ds.dtype != np.uint8 or 0 in ds.shape:
        raise InputError(path, f"'frames' must be non-empty (T, H, W) uint8, got {ds.shape} {ds.dtype}")
    try:
        extra = json.loads(get("metadata_json") or "{}")
    except json.JSONDecodeError as exc:
        raise InputError(path, f"clip metadata_json is not valid JSON ({exc})") from None
    extra.update({"clip_id": get("clip_id"), "source_sha256": get("source_sha256"), "_h5": keep_open})
    spacing = a.get("spacing_mm")

    def read(i: int) -> np.ndarray:
        try:
            return ds[i]
        except (OSError, ValueError, KeyError) as exc:  # damaged chunk, or the file was closed
            raise InputError(path, f"frame {i} cannot be read ({exc})") from None

    return Clip(
        frames=LazyFrames(read, ds.shape[0], ds.shape[1:]),
        source_path=path,
        spacing_mm=None if spacing is None else (float(spacing[0]), float(spacing[1])),
        spacing_source=get("spacing_source") or ("stored" if spacing is not None else "none"),
        frame_time_ms=None if a.get("frame_time_ms") is None else float(a["frame_time_ms"]),
        imaging_region=Region(0, 0, ds.shape[1], ds.shape[2]),
        manufacturer=get("manufacturer"),
        device_model=get("device_model"),
        participant=get("participant"),
        side=get("side"),
        plane=get("plane"),
        extra=extra,
    )


def read_hdf5_clip(path: str | Path, clip_id: str | None = None, **_ignored) -> Clip:
    """Open a clip from a single-clip file, or ``clip_id`` (default: the first) from a dataset.

    ``clip.sha256`` is the sha256 of this HDF5 file; the original source's is
    ``clip.extra["source_sha256"]``.
    """
    from napari_ultramn.io.h5 import load_h5py

    h5py = load_h5py()

    path = Path(path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"is not a readable HDF5 file ({exc})") from None
    try:
        if "frames" in fh or fh.attrs.get("format") is not None:
            return clip_from_group(path, fh, fh)
        if "clips" in fh and isinstance(fh["clips"], h5py.Group) and len(fh["clips"]):
            key = clip_id or sorted(fh["clips"].keys())[0]
            if key not in fh["clips"]:
                raise InputError(path, f"has no clip '{key}'")
            return clip_from_group(path, fh["clips"][key], fh)
        raise InputError(path, "HDF5 file holds no UltraMN clip (no 'frames' or '/clips/<id>/frames')")
    except BaseException:
        fh.close()
        raise
