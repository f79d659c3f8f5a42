"""What training and evaluation need from a dataset folder (built by ``ultramn build-dataset``).

``DATASET_DIR/manifest.json`` (vocabulary, sizes) and ``DATASET_DIR/{train,validation,test}.h5``
with one group per clip under ``/clips/<clip_id>/`` (layout: ``dataset_tools.build``). Windows for
training come from :class:`napari_ultramn.model.loader.ClipWindowDataset` (uint8, read and
decompressed only; training batches are augmented on the device by
:mod:`napari_ultramn.model.augment`); evaluation reads whole clips with :func:`iter_clips`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .. import DEFAULT_PLANES, NON_STANDARD
from ..errors import InputError
from ..vocabulary import SPLITS


def read_manifest(dataset_dir: str | Path) -> dict:
    """The dataset manifest; a folder without one is not a dataset."""
    path = Path(dataset_dir) / "manifest.json"
    if not Path(dataset_dir).is_dir():
        exists = Path(dataset_dir).exists()
        raise InputError(dataset_dir, "is a file, not a dataset folder" if exists else "no such dataset folder")
    if not path.is_file():
        raise InputError(
            dataset_dir, "is not an UltraMN dataset (no manifest.json); build one with `ultramn build-dataset`"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"is not valid JSON ({exc})") from None


def plane_labels(manifest: dict) -> list[str]:
    """The label vocabulary: index = plane code stored in the dataset's ``plane_labels``.

    Accepts the shapes a manifest may give it: a top-level ``plane_labels`` list, a
    ``vocabulary`` object holding ``plane_labels`` (or ``planes`` + ``non_standard``), or
    ``planes`` alone (the non-standard label is appended, as ``Project.plane_labels`` does).
    """
    for holder in (manifest, manifest.get("vocabulary") or {}, manifest.get("labels") or {}):
        if isinstance(holder, list):
            return list(holder)
        if holder.get("plane_labels"):
            return list(holder["plane_labels"])
        if holder.get("planes"):
            ns = holder.get("non_standard_label") or holder.get("non_standard") or NON_STANDARD
            return list(holder["planes"]) + [ns]
    if isinstance(manifest.get("vocabulary"), list):
        return list(manifest["vocabulary"])
    return list(DEFAULT_PLANES) + [NON_STANDARD]


def split_path(dataset_dir: str | Path, split: str) -> Path:
    if split not in SPLITS:
        raise InputError(dataset_dir, f"unknown split '{split}'; expected one of {', '.join(SPLITS)}")
    path = Path(dataset_dir) / f"{split}.h5"
    if not path.is_file():
        raise InputError(dataset_dir, f"has no {split}.h5")
    return path


def clip_ids(h5_path: str | Path) -> list[str]:
    from napari_ultramn.io.h5 import load_h5py

    h5py = load_h5py()

    with h5py.File(h5_path, "r") as fh:
        return sorted(fh["clips"].keys()) if "clips" in fh else []


def _attr(attrs, key, default=None):
    v = attrs.get(key, default)
    return v.decode() if isinstance(v, bytes) else v


def iter_clips(h5_path: str | Path) -> Iterator[dict]:
    """Whole clips of a split file: frames, masks (T, H, W), plane_labels, annotated, metadata."""
    from napari_ultramn.io.h5 import load_h5py

    h5py = load_h5py()

    try:
        fh = h5py.File(h5_path, "r")
    except OSError as exc:
        raise InputError(h5_path, f"cannot open HDF5 ({exc})") from None
    with fh:
        for cid in sorted(fh["clips"].keys()) if "clips" in fh else []:
            g = fh["clips"][cid]
            n = g["frames"].shape[0]
            spacing = g.attrs.get("spacing_mm")
            yield {
                "clip_id": cid,
                "frames": g["frames"][()],
                "masks": g["masks"][()].astype(bool) if "masks" in g else np.zeros(g["frames"].shape, bool),
                "plane_labels": g["plane_labels"][()].astype(np.int64) if "plane_labels" in g else np.full(n, -1),
                "annotated": g["annotated"][()].astype(bool) if "annotated" in g else np.ones(n, bool),
                "participant": _attr(g.attrs, "participant", "unknown"),
                "side": _attr(g.attrs, "side"),
                "plane": _attr(g.attrs, "clip_plane", _attr(g.attrs, "plane")),
                "quality": _quality(g),
                "spacing_mm": None if spacing is None else (float(spacing[0]), float(spacing[1])),
            }


def _quality(group) -> str:
    """Image-quality grade of a clip: the attribute, else the commonest per-frame flag."""
    q = _attr(group.attrs, "quality")
    if q is not None:
        return str(q)
    if "quality" in group:
        vals = group["quality"][()]
        if vals.dtype.kind in "SO":
            vals = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in vals])
        uniq, counts = np.unique(vals, return_counts=True)
        return str(uniq[np.argmax(counts)])
    return "unknown"


def frame_size(h5_path: str | Path) -> tuple[int, int]:
    """(H, W) of the first clip's frames: the input size the model is trained at."""
    from napari_ultramn.io.h5 import load_h5py

    h5py = load_h5py()

    with h5py.File(h5_path, "r") as fh:
        for cid in fh["clips"]:
            h, w = fh["clips"][cid]["frames"].shape[-2:]
            return int(h), int(w)
    raise InputError(h5_path, "holds no clips")


def plane_label_counts(h5_path: str | Path, n_labels: int) -> np.ndarray:
    """Frames per plane code (``(n_labels,) int64``) over every clip of a split; -1 (unknown) is
    not counted. A code outside the vocabulary is an error here rather than deep in the loss."""
    from napari_ultramn.io.h5 import load_h5py

    h5py = load_h5py()

    counts = np.zeros(n_labels, np.int64)
    with h5py.File(h5_path, "r") as fh:
        for cid in fh["clips"] if "clips" in fh else []:
            g = fh["clips"][cid]
            if "plane_labels" not in g:
                continue
            codes = g["plane_labels"][()].astype(np.int64).ravel()
            if codes.size and codes.max() >= n_labels:
                raise InputError(
                    h5_path,
                    f"clip {cid} has plane code {int(codes.max())}, outside the vocabulary of {n_labels} labels",
                )
            counts += np.bincount(codes[codes >= 0], minlength=n_labels)
    return counts


def make_window_dataset(h5_path: Path, window: int, *, train: bool):
    """uint8 windows of a split: overlapping by half for training, tiled otherwise.

    No augmentation here: the trainer augments whole batches on the training device
    (:func:`napari_ultramn.model.loader.batch_to_float` with an ``Augment``).
    """
    from .loader import ClipWindowDataset

    stride = max(1, window // 2) if train else window
    return ClipWindowDataset(h5_path, window=window, stride=stride)


def make_loader(dataset, *, batch_size: int, shuffle: bool, seed: int, workers: int = 0, distributed: bool = False):
    """A DataLoader (with a DistributedSampler under DDP); seeded so runs repeat."""
    import torch
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    sampler: DistributedSampler | None = (
        DistributedSampler(dataset, shuffle=shuffle, seed=seed) if distributed else None
    )
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        generator=gen,
        drop_last=False,
        # not persistent: a new iterator draws the workers' base seed from the generator before
        # the shuffle, a persistent one's later epochs do not, so a run resumed at epoch k would
        # see another order than the unbroken run's epoch k
        persistent_workers=False,
    )
