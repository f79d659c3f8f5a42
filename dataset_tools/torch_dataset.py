"""PyTorch Dataset of fixed-length clip windows from one split file (``train.h5`` ...).

Only training imports this module, so torch is imported at the top here (``import dataset_tools``
stays torch-free).

Worker safety: an h5py handle must not cross a fork (HDF5 keeps process-level state, and a handle
shared by two processes returns garbage or crashes). The index is built from a handle that is
closed again; each process opens its own handle on first use (keyed by ``os.getpid()``), and the
handle is dropped when the dataset is pickled for a spawned worker.

Augmentation is seeded per ``(seed, epoch, index)``: call :meth:`ClipWindowDataset.set_epoch`
before iterating each epoch. The epoch lives in a one-number shared-memory tensor, so workers see
the change even with ``persistent_workers=True`` (a plain attribute would stay frozen at the value
the workers were started with, and every epoch would repeat the same augmentations).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from napari_ultramn.errors import InputError

from .augment import Augment, window_generator


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


class ClipWindowDataset(Dataset):
    """Windows of ``window`` consecutive frames from every clip of one dataset split file.

    Each item is a dict:

    =============  ====================  ===============================================
    frames         float32 (1, T, H, W)  in [0, 1]
    masks          float32 (1, T, H, W)  0/1 nerve mask (0 on unannotated frames)
    plane          int64 (T,)            index into :attr:`vocabulary`, -1 = ignore
    clip_plane     int64 ()              the clip's plane code, -1 = unknown
    annotated      bool (T,)             the frame's mask is a label (use as loss mask)
    clip_id        str
    start          int                   first frame of the window in the clip
    =============  ====================  ===============================================

    ``stride`` defaults to ``window`` (non-overlapping windows). ``clip_ids`` restricts to a subset.

    ``as_uint8=True`` returns frames and masks as uint8 (frames x 255, rounded after augmentation)
    and leaves the conversion to :func:`batch_to_float` on the training device. Every window
    crosses from a worker to the trainer through shared memory; float32 is 8 MB per 16-frame
    256 x 256 window and the page faults cost about as much CPU as reading and augmenting it
    (benchmarks/bench_dataset.py), uint8 a quarter of that.
    """

    def __init__(self, h5_path: str | Path, window: int = 16, stride: int | None = None,
                 augment: Augment | None = None, seed: int = 0, clip_ids: list[str] | None = None,
                 as_uint8: bool = False):
        from napari_ultramn.io.h5 import load_h5py
        h5py = load_h5py()

        if int(window) < 1 or (stride is not None and int(stride) < 1):
            raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
        self.path = Path(h5_path)
        self.window = int(window)
        self.stride = int(stride) if stride is not None else self.window
        self.augment = augment
        self.as_uint8 = bool(as_uint8)
        self.seed = int(seed)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        try:
            fh = h5py.File(self.path, "r")
        except OSError as exc:
            raise InputError(self.path, f"is not a readable HDF5 file ({exc})") from None
        with fh:
            if "clips" not in fh:
                raise InputError(self.path, "is not an UltraMN dataset split file (no /clips group)")
            self.split = _text(fh.attrs.get("split"))
            self.vocabulary = json.loads(_text(fh.attrs.get("vocabulary", "[]")))
            self.provenances = json.loads(_text(fh.attrs.get("provenances", "[]")))
            wanted = set(clip_ids) if clip_ids is not None else None
            self.clips: dict[str, dict] = {}
            self.windows: list[tuple[str, int]] = []
            for clip_id in sorted(fh["clips"]):
                if wanted is not None and clip_id not in wanted:
                    continue
                g = fh["clips"][clip_id]
                n, h, w = g["frames"].shape
                self.clips[clip_id] = {"n_frames": n, "frame_shape": (h, w),
                                       "clip_plane": int(g.attrs.get("clip_plane_code", -1))}
                self.windows.extend((clip_id, s) for s in window_starts(n, self.window, self.stride))
            if wanted is not None and wanted - set(self.clips):
                raise InputError(self.path, f"has no clip(s) {sorted(wanted - set(self.clips))}")
        self._fh = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation stream (same seed + epoch + index = same augmentation)."""
        self._epoch.fill_(int(epoch))

    def _file(self):
        if self._fh is None or self._pid != os.getpid():
            from napari_ultramn.io.h5 import load_h5py
            h5py = load_h5py()

            # a handle inherited through fork is the parent's: never read through it. Dropping it
            # closes only this process's copy of the descriptor (read-only: nothing to flush).
            self._fh = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._fh

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fh"], state["_pid"] = None, None
        return state

    def close(self) -> None:
        if self._fh is not None and self._pid == os.getpid():
            self._fh.close()
        self._fh = self._pid = None

    def read_window(self, clip_id: str, start: int) -> dict:
        """Raw arrays of one window (numpy, no augmentation)."""
        g = self._file()["clips"][clip_id]
        sl = slice(start, start + self.window)
        return {"frames": g["frames"][sl], "masks": g["masks"][sl],
                "plane": g["plane_labels"][sl], "annotated": g["annotated"][sl]}

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        index = index % len(self)
        clip_id, start = self.windows[index]
        raw = self.read_window(clip_id, start)
        frames = torch.from_numpy(raw["frames"]).unsqueeze(0)
        masks = torch.from_numpy(raw["masks"]).unsqueeze(0)
        if self.augment is not None:  # uint8 in: its intensity lookup table is the conversion
            frames, masks = self.augment(frames, masks, window_generator(self.seed, self.epoch, index))
            if self.as_uint8:
                frames = frames.mul_(255.0).add_(0.5).to(torch.uint8)
        elif not self.as_uint8:
            frames = frames.float().div_(255.0)
        if not self.as_uint8:
            masks = masks.float()
        return {
            "frames": frames.contiguous(),
            "masks": masks.contiguous(),
            "plane": torch.from_numpy(raw["plane"].astype(np.int64)),
            "clip_plane": torch.tensor(self.clips[clip_id]["clip_plane"], dtype=torch.int64),
            "annotated": torch.from_numpy(raw["annotated"].astype(bool)),
            "clip_id": clip_id,
            "start": int(start),
        }


def batch_to_float(batch: dict, device=None, non_blocking: bool = True) -> dict:
    """Move a batch to ``device`` and make frames float32 in [0, 1] and masks float32 there.

    For loaders of ``as_uint8=True`` datasets (a float batch passes through unchanged, moved).
    """
    out = dict(batch)
    for key in ("frames", "masks", "plane", "clip_plane", "annotated"):
        if key in out and isinstance(out[key], torch.Tensor):
            out[key] = out[key].to(device, non_blocking=non_blocking) if device is not None else out[key]
    if out["frames"].dtype == torch.uint8:
        out["frames"] = out["frames"].float().div_(255.0)
    if out["masks"].dtype != torch.float32:
        out["masks"] = out["masks"].float()
    return out


def split_datasets(folder: str | Path, window: int = 16, augment: Augment | None = None,
                   seed: int = 0, **kwargs) -> dict[str, ClipWindowDataset]:
    """``{'train': ..., 'validation': ..., 'test': ...}``; augmentation on train only."""
    folder = Path(folder)
    return {s: ClipWindowDataset(folder / f"{s}.h5", window=window,
                                 augment=augment if s == "train" else None, seed=seed, **kwargs)
            for s in ("train", "validation", "test") if (folder / f"{s}.h5").is_file()}
