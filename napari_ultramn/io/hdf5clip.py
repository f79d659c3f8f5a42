"""Our own HDF5 clip format, used by annotation projects (one clip per file) and datasets.

Layout of one clip group (the file root for a project clip, ``/clips/<clip_id>`` in a dataset)::

    attrs:  format="ultramn-clip", format_version=1, clip_id, participant, side, plane,
            source_sha256, spacing_mm [row, col] (absent = uncalibrated), spacing_source,
            frame_time_ms, manufacturer, device_model, metadata_json (other non-identifying keys)
    frames  (T, H, W) uint8, chunks (1, H, W), gzip level 1 - one frame reads one chunk
    masks, plane_labels, provenance, quality ... (datasets only; see dataset_tools.build)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from .clip import Clip, LazyFrames, Region

FORMAT = "ultramn-clip"
_SKIP = {"source_path", "n_frames", "frame_shape", "spacing_mm", "spacing_source", "frame_time_ms",
         "imaging_region", "manufacturer", "device_model", "participant", "side", "plane"}


def write_clip_group(group, frames: np.ndarray, clip_meta: dict, compression: str = "gzip") -> None:
    """Write frames and metadata attributes into an open h5py group."""
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 3:
        raise ValueError(f"frames must be (T, H, W), got {frames.shape}")
    opts = {"compression_opts": 1} if compression == "gzip" else {}
    group.create_dataset(
        "frames", data=frames, chunks=(1, *frames.shape[1:]), compression=compression, **opts
    )
    attrs = group.attrs
    attrs["format"] = FORMAT
    attrs["format_version"] = 1
    for key in ("clip_id", "participant", "side", "plane", "source_sha256", "spacing_source",
                "manufacturer", "device_model"):
        if clip_meta.get(key) is not None:
            attrs[key] = str(clip_meta[key])
    if clip_meta.get("spacing_mm") is not None:
        attrs["spacing_mm"] = np.asarray(clip_meta["spacing_mm"], dtype=np.float64)
    if clip_meta.get("frame_time_ms") is not None:
        attrs["frame_time_ms"] = float(clip_meta["frame_time_ms"])
    extra = {k: v for k, v in clip_meta.items() if k not in _SKIP and k not in attrs}
    attrs["metadata_json"] = json.dumps(extra, default=str)


def write_hdf5_clip(path: str | Path, frames: np.ndarray, clip_meta: dict) -> None:
    """Write a single-clip HDF5 file atomically."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        write_clip_group(fh, frames, clip_meta)


def clip_from_group(path: Path, group, keep_open) -> Clip:
    if "frames" not in group:
        raise InputError(path, f"HDF5 group '{group.name}' has no 'frames' dataset")
    ds = group["frames"]
    if ds.ndim != 3 or ds.dtype != np.uint8:
        raise InputError(path, f"'frames' must be (T, H, W) uint8, got {ds.shape} {ds.dtype}")
    a = group.attrs

    def get(key):
        v = a.get(key)
        return v.decode() if isinstance(v, bytes) else (None if v is None else v)

    spacing = a.get("spacing_mm")
    extra = json.loads(get("metadata_json") or "{}")
    extra.update({"clip_id": get("clip_id"), "source_sha256": get("source_sha256"), "_h5": keep_open})
    clip = Clip(
        frames=LazyFrames(lambda i: ds[i], ds.shape[0], ds.shape[1:]),
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
    if get("source_sha256"):
        clip._sha256 = None  # sha256 of *this* file is computed on demand; source's is in extra
    return clip


def read_hdf5_clip(path: str | Path, clip_id: str | None = None, **_ignored) -> Clip:
    """Open a clip from a single-clip file, or ``clip_id`` (default: the first) from a dataset."""
    import h5py

    path = Path(path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"is not a readable HDF5 file ({exc})") from None
    if "frames" in fh:
        return clip_from_group(path, fh, fh)
    if "clips" in fh and len(fh["clips"]):
        key = clip_id or sorted(fh["clips"].keys())[0]
        if key not in fh["clips"]:
            raise InputError(path, f"has no clip '{key}'")
        return clip_from_group(path, fh["clips"][key], fh)
    raise InputError(path, "HDF5 file holds no UltraMN clip ('frames' or '/clips/<id>/frames')")
