"""Dataset clips, written on every core: labels, resampling and compression of each clip in a
worker process (a one-clip shard file), the split files written by one process
(:func:`write_clips`). The layout of a clip group is described in :mod:`dataset_tools.build`.
"""

from __future__ import annotations

import functools
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_ultramn.errors import InputError
from napari_ultramn.io.h5 import compression_kwargs
from napari_ultramn.progress import Progress, ProgressGen

from .labels import (
    ClipLabels,
    clip_labels,
    plane_codes,
    read_clip_frames,
    resample,
    target_geometry,
)

#: HDF5's registered id of the Blosc filter (hdf5plugin), whose chunks carry a checkable header
_BLOSC = 32001


@dataclass(frozen=True)
class CompressedFrames:
    """A clip's frames as the compressed chunks of its project file (one frame per chunk, the
    dataset's frame filter with the same settings): written into the dataset as they are, so a
    clip is neither decoded nor compressed again (that was ~40% of a clip's CPU)."""

    shape: tuple[int, int, int]
    chunks: list  # per frame: (HDF5 filter mask, chunk bytes)


def write_clip(
    fh,
    rec: dict,
    frames: np.ndarray | CompressedFrames,
    labels: ClipLabels,
    *,
    vocabulary,
    spacing,
    label_source: str,
    compression: str | None = "zstd",
    original_shape=None,
) -> None:
    """One ``/clips/<clip_id>`` group: frames + attrs via ``write_clip_group`` (or the chunks of
    :class:`CompressedFrames` copied as they are, + attrs), then the labels."""
    from napari_ultramn.io.hdf5clip import write_clip_attrs, write_clip_group

    group = fh.require_group("clips").create_group(rec["clip_id"])
    meta = {
        k: rec.get(k)
        for k in (
            "clip_id",
            "participant",
            "side",
            "plane",
            "source_sha256",
            "spacing_source",
            "frame_time_ms",
            "manufacturer",
            "device_model",
            "sex",
            "age_band",
            "site",
        )
    }
    meta["spacing_mm"] = spacing
    if isinstance(frames, CompressedFrames):
        _write_compressed(group, frames, compression)
        write_clip_attrs(group, meta)
    else:
        write_clip_group(group, frames, meta, compression=compression)
    # masks are mostly zeros: LZ4 shrinks them ~30x at memory speed, whatever the frames use
    group.create_dataset(
        "masks", data=labels.masks.astype(np.uint8), chunks=(1, *frames.shape[1:]), **compression_kwargs("lz4")
    )
    group.create_dataset("plane_labels", data=plane_codes(labels.frame_planes, vocabulary))
    group.create_dataset("provenance", data=np.asarray(labels.provenance, np.int8))
    group.create_dataset("annotated", data=np.asarray(labels.annotated, bool))
    a = group.attrs
    clip_plane = labels.clip_plane or rec.get("plane")
    if clip_plane:
        a["clip_plane"] = clip_plane
    a["clip_plane_code"] = int(plane_codes([clip_plane], vocabulary)[0])
    a["quality"] = labels.quality
    a["label_source"] = label_source
    a["n_raters"] = int(labels.n_raters)
    a["original_frame_shape"] = np.asarray(original_shape or frames.shape[1:], np.int64)
    if rec.get("spacing_mm"):
        a["original_spacing_mm"] = np.asarray(rec["spacing_mm"], np.float64)


#: What the pool's fork server imports for the workers besides numpy, h5py and this module (which
#: brings labels and the annotation package): the annotation files' schema check. Not
#: scipy.ndimage, which the pool's default would import and no step of a clip here uses.
WORKER_PRELOAD = ("jsonschema",)


def start_workers(workers) -> None:
    """Start the pool's fork server now, to import while the parent checks and splits the clips."""
    from napari_ultramn.parallel import prestart

    prestart(write_clip_shard, workers=workers, preload=WORKER_PRELOAD)


def _write_compressed(group, frames: CompressedFrames, compression) -> None:
    from napari_ultramn.io.h5 import check_writes

    ds = group.create_dataset(
        "frames", shape=frames.shape, dtype=np.uint8, chunks=(1, *frames.shape[1:]), **compression_kwargs(compression)
    )
    for t, (mask, chunk) in enumerate(frames.chunks):
        ds.id.write_direct_chunk((t, 0, 0), chunk, mask)
    check_writes(group)


@functools.lru_cache(maxsize=16)
def _frame_filters(frame_shape: tuple, compression) -> tuple:
    """The filter pipeline (code, flags, values per filter) HDF5 gives a dataset's frames of this
    shape: values include the chunk size and element size the filter filled in."""
    from napari_ultramn.io.h5 import load_h5py

    h5py = load_h5py()
    with h5py.File("frames", "w", driver="core", backing_store=False) as fh:
        ds = fh.create_dataset(
            "f", shape=(1, *frame_shape), dtype=np.uint8, chunks=(1, *frame_shape), **compression_kwargs(compression)
        )
        return _filters(ds)


def _filters(ds) -> tuple:
    plist = ds.id.get_create_plist()
    return tuple(plist.get_filter(i)[:3] for i in range(plist.get_nfilters()))


def read_compressed_frames(project, clip_id: str, compression, keep_shape) -> CompressedFrames | None:
    """The clip's frames as compressed chunks, when they can go into the dataset as they are: a
    project clip file whose ``frames`` are stored one frame per chunk with the Blosc filter and
    settings the dataset's frames get, at a shape ``keep_shape(frame_shape)`` accepts (no
    resampling). Each chunk's Blosc header must state the frame's size and the chunk's length.
    None otherwise, or on any doubt (another filter, a damaged chunk, not HDF5): the caller
    decodes the frames, which reports a damaged clip as it always did."""
    from napari_ultramn.io.h5 import load_h5py

    h5py = load_h5py()
    try:
        with h5py.File(project.clip_path(clip_id), "r") as fh:
            ds = fh.get("frames")
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 3 or ds.dtype != np.uint8 or 0 in ds.shape:
                return None
            shape = (int(ds.shape[0]), int(ds.shape[1]), int(ds.shape[2]))
            filters = _filters(ds)
            if (
                ds.chunks != (1, *shape[1:])
                or not keep_shape(shape[1:])
                or len(filters) != 1
                or filters[0][0] != _BLOSC
                or filters != _frame_filters(shape[1:], compression)
            ):
                return None
            chunks = [ds.id.read_direct_chunk((t, 0, 0)) for t in range(shape[0])]
    except (OSError, ValueError, KeyError):
        return None
    frame_bytes = shape[1] * shape[2]
    for mask, chunk in chunks:
        if mask == 0:  # compressed: blosc1 header = 4 bytes, nbytes, blocksize, cbytes (uint32 LE)
            if len(chunk) < 16 or struct.unpack_from("<4xI4xI", chunk) != (frame_bytes, len(chunk)):
                return None
        elif mask != 1 or len(chunk) != frame_bytes:  # 1: stored raw (the filter could not shrink it)
            return None
    return CompressedFrames(shape, chunks)


@dataclass(frozen=True)
class ClipJob:
    """How every clip is labelled, resampled and compressed (sent to each worker once)."""

    consensus: str | None
    rater: str | None
    min_raters: int
    size: tuple | None
    spacing_mm: float | None
    vocabulary: list
    label_source: str
    compression: str | None


def write_clips(
    project, eligible, clip_split, files, tmp: Path, written, excluded, job: ClipJob, workers
) -> ProgressGen[None]:
    """Every eligible clip into its split's file. Workers label, resample and compress each clip
    into a one-clip shard file (``tmp/.shards/``); this process copies the shard's group into the
    split file (HDF5 copies the compressed chunks as they are) in the clips' order, so the split
    files hold the same bytes for any number of workers, and only one process writes them."""
    from napari_ultramn.io.h5 import load_h5py
    from napari_ultramn.parallel import pool_map

    from .project_view import ProjectView

    h5py = load_h5py()
    shards = tmp / ".shards"
    shards.mkdir()
    items = [(rec, str(shards / f"{i}.h5")) for i, rec in enumerate(eligible)]
    n = len(eligible) + 1
    yield Progress(0, n, f"writing {len(eligible)} clip(s)")
    for i, entry in pool_map(
        write_clip_shard,
        items,
        shared=(ProjectView.of(project), job),
        workers=workers,
        ordered=True,
        preload=WORKER_PRELOAD,
        help_while_starting=True,  # the first clips, while the fork server imports
    ):
        rec, shard = items[i]
        if isinstance(entry, str):
            excluded.append({"clip_id": rec["clip_id"], "participant": rec.get("participant"), "reason": entry})
        else:
            split = clip_split[rec["clip_id"]]
            with h5py.File(shard, "r") as src:
                src.copy(src["clips"][rec["clip_id"]], files[split]["clips"])
            written.append({**entry, "split": split})
        Path(shard).unlink(missing_ok=True)
        yield Progress(i + 1, n, f"writing {rec['clip_id']}")
    shards.rmdir()


def write_clip_shard(shared: tuple, item: tuple[dict, str]):
    """A worker's task: one clip into its own shard file; its manifest entry, or the exclusion
    reason (str) with no file written."""
    from napari_ultramn.io.h5 import create_h5

    view, job = shared
    rec, shard = item
    view = view.with_records([rec])
    prepared = _prepare_one(view, rec, job)
    if isinstance(prepared, str):
        return prepared
    frames, labels, out_spacing, original_shape, entry = prepared
    with create_h5(shard) as fh:
        write_clip(
            fh,
            rec,
            frames,
            labels,
            vocabulary=job.vocabulary,
            spacing=out_spacing,
            label_source=job.label_source,
            compression=job.compression,
            original_shape=original_shape,
        )
    return entry


def _prepare_one(project, rec, job: ClipJob):
    """One clip's labels and resampled frames: ``(frames, labels, spacing, original_shape,
    manifest entry)``, or the exclusion reason (str)."""
    consensus, rater, min_raters, vocabulary = job.consensus, job.rater, job.min_raters, job.vocabulary
    try:
        labels = clip_labels(project, rec["clip_id"], method=consensus, rater=rater, min_raters=min_raters)
    except ValueError as exc:  # includes InputError for a corrupt annotation file
        return str(exc) if str(exc).startswith("no ") else f"labels unusable: {exc}"
    if labels.quality == "unusable":
        return "flagged unusable"
    if not labels.annotated.any():
        if consensus is not None:
            return f"no consensus: no frame annotated by at least {min_raters} raters"
        if all(p is None for p in labels.frame_planes):
            return f"no labels: rater '{rater}' annotated no frame and no plane"
    spacing = tuple(rec["spacing_mm"]) if rec.get("spacing_mm") else None

    def native(shape) -> bool:  # written at its own shape: no resampling
        scaled, out_shape, _ = target_geometry(shape, spacing, job.size, job.spacing_mm)
        return tuple(scaled) == tuple(out_shape) == tuple(shape)

    frames: np.ndarray | CompressedFrames | None = read_compressed_frames(
        project, rec["clip_id"], job.compression, native
    )
    if frames is None:
        try:
            frames = read_clip_frames(project, rec["clip_id"])
        except InputError as exc:
            return f"frames unreadable: {exc}"
    if labels.masks.shape != frames.shape:
        return f"annotation shape {labels.masks.shape} does not match the clip's frames {frames.shape}"
    scaled, out_shape, out_spacing = target_geometry(frames.shape[1:], spacing, job.size, job.spacing_mm)
    original_shape = frames.shape[1:]
    if isinstance(frames, np.ndarray):
        frames, labels.masks = resample(frames, labels.masks, scaled, out_shape)
    plane = labels.clip_plane or rec.get("plane")
    entry = {
        "clip_id": rec["clip_id"],
        "participant": rec["participant"],
        "side": rec.get("side"),
        "plane": plane,
        "n_frames": int(frames.shape[0]),
        "frame_shape": list(frames.shape[1:]),
        "annotated_frames": int(labels.annotated.sum()),
        "frame_planes": Counter(p if p in vocabulary else "unknown" for p in labels.frame_planes),
    }
    return frames, labels, out_spacing, original_shape, entry
