"""The training loader: fixed-length uint8 clip windows from dataset split files (``train.h5`` ...).

The loader only reads and decompresses. Items stay uint8 (a quarter of float32's bytes through
the DataLoader workers' shared memory); :func:`batch_to_float` moves a batch to the training
device and makes it float32 there, after the batched augmentation
(:mod:`napari_ultramn.model.augment`) for training batches.

Memory is flat in the number of clips and files:

* HDF5 files are opened lazily, by the process that reads (never through a handle inherited over
  a fork: HDF5 keeps process-level state, and a handle shared by two processes returns garbage
  or crashes), and at most ``max_open_files`` stay open per process (least recently used closed
  first). A split may be one file or several (shards); each open file keeps its HDF5 metadata
  cache, so the bound on handles is the bound on that memory.
* Each open file's metadata cache is held to :data:`METADATA_CACHE_BYTES` (HDF5 lets it grow
  to 32 MiB per file as more clips are touched). Each open dataset gets a chunk cache of
  ``chunk_cache_bytes`` (HDF5's default is 1 MiB per dataset). Chunks are one frame each and a window reads each of its frames once, so a cache
  would only hold chunks nobody reads again; the default 0 reads chunks straight through.
* The window index is two int32 arrays, not a list of tuples (a worker touching Python objects
  inherited over fork copies their pages: reference counts are writes).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from napari_ultramn.errors import InputError
from napari_ultramn.vocabulary import SPLITS


def window_starts(n_frames: int, window: int, stride: int) -> list[int]:
    """Start frames of windows covering a clip; the last window is aligned to the clip's end.

    A clip shorter than the window yields none (the builder's ``min_frames`` excludes those).
    """
    if n_frames < window:
        return []
    starts = list(range(0, n_frames - window + 1, stride))
    if starts[-1] != n_frames - window:
        starts.append(n_frames - window)
    return starts


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


#: Most HDF5 metadata (object headers, chunk indexes) one open file keeps cached. HDF5 lets the
#: cache grow to 32 MiB per file as more clips are touched; the loader touches each clip's few
#: objects once per window, and re-reading them costs far less than the decompression.
METADATA_CACHE_BYTES = 4 << 20


def _bound_metadata_cache(fh, max_bytes: int) -> None:
    config = fh.id.get_mdc_config()
    config.max_size = max(config.min_size, min(config.max_size, max_bytes))
    config.initial_size = min(config.initial_size, config.max_size)
    fh.id.set_mdc_config(config)


class OpenFiles:
    """At most ``limit`` read-only HDF5 files open in this process, least recently used closed first.

    Pickles empty (a DataLoader worker started by spawn opens its own), and notices a fork: handles
    opened by another process are dropped unread.
    """

    def __init__(self, limit: int = 4, chunk_cache_bytes: int = 0):
        if int(limit) < 1 or int(chunk_cache_bytes) < 0:
            raise ValueError(f"need limit >= 1 and chunk_cache_bytes >= 0, got {limit}, {chunk_cache_bytes}")
        self.limit, self.chunk_cache_bytes = int(limit), int(chunk_cache_bytes)
        self._files: OrderedDict[Path, Any] = OrderedDict()  # open h5py Files
        self._pid = os.getpid()

    def get(self, path: Path):
        if self._pid != os.getpid():
            # the parent's handles: dropping our references closes only this process's copies
            self._files, self._pid = OrderedDict(), os.getpid()
        fh = self._files.get(path)
        if fh is not None:
            self._files.move_to_end(path)
            return fh
        from napari_ultramn.io.h5 import load_h5py

        while len(self._files) >= self.limit:
            self._files.popitem(last=False)[1].close()
        fh = load_h5py().File(path, "r", rdcc_nbytes=self.chunk_cache_bytes)
        _bound_metadata_cache(fh, METADATA_CACHE_BYTES)
        self._files[path] = fh
        return fh

    def __len__(self) -> int:
        return len(self._files) if self._pid == os.getpid() else 0

    def close(self) -> None:
        if self._pid == os.getpid():
            for fh in self._files.values():
                fh.close()
        self._files = OrderedDict()

    def __getstate__(self):
        return {"limit": self.limit, "chunk_cache_bytes": self.chunk_cache_bytes}

    def __setstate__(self, state):
        self.__init__(state["limit"], state["chunk_cache_bytes"])


class ClipWindowDataset(Dataset):
    """Windows of ``window`` consecutive frames from every clip of one split (one or more files).

    Each item is a dict:

    =============  ====================  ===============================================
    frames         uint8 (1, T, H, W)    as stored
    masks          uint8 (1, T, H, W)    0/1 nerve mask (0 on unannotated frames)
    plane          int64 (T,)            index into :attr:`vocabulary`, -1 = ignore
    clip_plane     int64 ()              the clip's plane code, -1 = unknown
    annotated      bool (T,)             the frame's mask is a label (use as loss mask)
    clip_id        str
    start          int                   first frame of the window in the clip
    =============  ====================  ===============================================

    ``stride`` defaults to ``window`` (non-overlapping windows). ``clip_ids`` restricts to a subset.
    ``max_open_files`` and ``chunk_cache_bytes`` bound what each process keeps open (module doc).
    """

    def __init__(
        self,
        h5_paths: str | Path | Sequence[str | Path],
        window: int = 16,
        stride: int | None = None,
        clip_ids: list[str] | None = None,
        max_open_files: int = 4,
        chunk_cache_bytes: int = 0,
    ):
        if int(window) < 1 or (stride is not None and int(stride) < 1):
            raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
        paths = [h5_paths] if isinstance(h5_paths, (str, Path)) else list(h5_paths)
        if not paths:
            raise ValueError("no split files given")
        self.paths = [Path(p) for p in paths]
        self.path = self.paths[0]
        self.window = int(window)
        self.stride = int(stride) if stride is not None else self.window
        self.files = OpenFiles(max_open_files, chunk_cache_bytes)
        wanted = set(clip_ids) if clip_ids is not None else None
        self.clips: dict[str, dict] = {}
        self.clip_order: list[str] = []
        clip_of_window, starts = [], []
        for file_index, path in enumerate(self.paths):
            for clip_id, info in self._read_index(path, wanted):
                if clip_id in self.clips:
                    raise InputError(path, f"repeats clip {clip_id} of {self.paths[self.clips[clip_id]['file']]}")
                self.clips[clip_id] = {**info, "file": file_index}
                s = window_starts(info["n_frames"], self.window, self.stride)
                clip_of_window.extend([len(self.clip_order)] * len(s))
                starts.extend(s)
                self.clip_order.append(clip_id)
        if wanted is not None and wanted - set(self.clips):
            raise InputError(self.path, f"has no clip(s) {sorted(wanted - set(self.clips))}")
        self._window_clip = np.asarray(clip_of_window, np.int32)
        self._window_start = np.asarray(starts, np.int32)

    def _read_index(self, path: Path, wanted):
        """``(clip_id, info)`` of the clips in one file, and its split attributes (first file's)."""
        from napari_ultramn.io.h5 import load_h5py

        try:
            fh = load_h5py().File(path, "r")
        except OSError as exc:
            raise InputError(path, f"is not a readable HDF5 file ({exc})") from None
        with fh:
            if "clips" not in fh:
                raise InputError(path, "is not an UltraMN dataset split file (no /clips group)")
            if path == self.paths[0]:
                self.split = _text(fh.attrs.get("split"))
                self.vocabulary = json.loads(_text(fh.attrs.get("vocabulary", "[]")))
                self.provenances = json.loads(_text(fh.attrs.get("provenances", "[]")))
            found = []
            for clip_id in sorted(fh["clips"]):
                if wanted is None or clip_id in wanted:
                    g = fh["clips"][clip_id]
                    n, h, w = g["frames"].shape
                    found.append(
                        (
                            clip_id,
                            {
                                "n_frames": n,
                                "frame_shape": (h, w),
                                "clip_plane": int(g.attrs.get("clip_plane_code", -1)),
                            },
                        )
                    )
            return found

    def __len__(self) -> int:
        return len(self._window_start)

    @property
    def windows(self) -> list[tuple[str, int]]:
        """``(clip_id, start)`` of every window, in item order."""
        return [(self.clip_order[c], int(s)) for c, s in zip(self._window_clip, self._window_start)]

    def close(self) -> None:
        """Close this process's open files (they reopen on the next read)."""
        self.files.close()

    def read_window(self, clip_id: str, start: int) -> dict:
        """Raw arrays of one window (numpy, as stored)."""
        fh = self.files.get(self.paths[self.clips[clip_id]["file"]])
        g = fh["clips"][clip_id]
        sl = slice(start, start + self.window)
        return {
            "frames": g["frames"][sl],
            "masks": g["masks"][sl],
            "plane": g["plane_labels"][sl],
            "annotated": g["annotated"][sl],
        }

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        index = index % len(self)
        clip_id, start = self.clip_order[self._window_clip[index]], int(self._window_start[index])
        raw = self.read_window(clip_id, start)
        return {
            "frames": torch.from_numpy(raw["frames"]).unsqueeze(0),
            "masks": torch.from_numpy(raw["masks"].astype(np.uint8, copy=False)).unsqueeze(0),
            "plane": torch.from_numpy(raw["plane"].astype(np.int64)),
            "clip_plane": torch.tensor(self.clips[clip_id]["clip_plane"], dtype=torch.int64),
            "annotated": torch.from_numpy(raw["annotated"].astype(bool)),
            "clip_id": clip_id,
            "start": start,
        }


def batch_to_float(
    batch: dict, device=None, augment=None, generator=None, non_blocking: bool = True, workspace: dict | None = None
) -> dict:
    """Move a batch to ``device``; frames become float32 in [0, 1] and masks float32 there.

    With ``augment`` (an :class:`~napari_ultramn.model.augment.Augment`, training batches only) and
    ``generator`` (a ``torch.Generator`` on ``device``), the batch is augmented on the device,
    frames still uint8 (the augmentation's lookup table is the conversion). ``workspace`` (a dict
    the caller keeps) lends the augmentation float32 output tensors that are reused from batch to
    batch of the same shape: the returned frames and masks are then overwritten by the next call,
    which is what a training step wants (they are dead once the step's backward has run) and saves
    the page faults of two fresh batch-sized tensors per step.
    """
    out = dict(batch)
    for key in ("frames", "masks", "plane", "clip_plane", "annotated"):
        if key in out and isinstance(out[key], torch.Tensor) and device is not None:
            out[key] = out[key].to(device, non_blocking=non_blocking)
    if augment is not None:
        if generator is None:
            raise ValueError("augment needs a generator (seeded, on the batch's device)")
        buffers = None if workspace is None else _workspace_buffers(workspace, out["frames"])
        out["frames"], out["masks"] = augment(out["frames"], out["masks"], generator, out=buffers)
    elif out["frames"].dtype == torch.uint8:
        out["frames"] = out["frames"].float().div_(255.0)
    if out["masks"].dtype != torch.float32:
        out["masks"] = out["masks"].float()
    return out


def _workspace_buffers(workspace: dict, frames) -> tuple:
    """Two float32 tensors shaped like ``frames`` on its device, kept in ``workspace`` and made
    again only when the shape or device changes (an epoch's last, smaller batch)."""
    shape_key = (tuple(frames.shape), str(frames.device))
    if workspace.get("key") != shape_key:
        workspace.clear()
        made = tuple(torch.empty(frames.shape, dtype=torch.float32, device=frames.device) for _ in range(2))
        workspace.update(key=shape_key, buffers=made)
    return workspace["buffers"]


def split_datasets(folder: str | Path, window: int = 16, **kwargs) -> dict[str, ClipWindowDataset]:
    """``{'train': ..., 'validation': ..., 'test': ...}`` for the split files a folder holds."""
    folder = Path(folder)
    return {
        s: ClipWindowDataset(folder / f"{s}.h5", window=window, **kwargs)
        for s in SPLITS
        if (folder / f"{s}.h5").is_file()
    }
