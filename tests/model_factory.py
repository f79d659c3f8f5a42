"""Tiny training data (a dataset folder in the build layout) and a tiny training run, for the model,
evaluation, pre-annotation and widget tests; ``tiny_run`` in conftest.py shares one run per session."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_ultramn import DEFAULT_PLANES, NON_STANDARD
from napari_ultramn.progress import run_to_end

PLANES = [*DEFAULT_PLANES, NON_STANDARD]


TINY_MODEL = {"base_channels": 4, "depth": 2}


TINY_TRAIN = {
    "epochs": 2,
    "batch_size": 4,
    "window": 8,
    "lr": 3e-3,
    "device": "cpu",
    "workers": 0,
    "model_kwargs": TINY_MODEL,
    "log_every": 1,
}


# -- tiny data -------------------------------------------------------------------------------
def tiny_clip(rng, plane: int, n_frames: int, size: int, non_standard_tail: int):
    """Frames, masks and per-frame plane codes of one synthetic clip (a ringed disk on speckle)."""
    rows, cols = np.mgrid[0:size, 0:size]
    r0, c0 = rng.uniform(0.3, 0.7, 2) * size
    frames = rng.gamma(2.0, 12.0 + 8 * plane, size=(n_frames, size, size))
    masks = np.zeros((n_frames, size, size), bool)
    planes = np.full(n_frames, plane, np.int16)
    for t in range(n_frames - non_standard_tail):
        d = np.hypot(rows - r0, cols - c0 - 0.3 * t)
        masks[t] = d <= size * 0.15
        frames[t] += 120.0 * ((d > size * 0.15) & (d <= size * 0.22)) - 10 * masks[t]
    planes[n_frames - non_standard_tail :] = PLANES.index(NON_STANDARD)
    return np.clip(frames, 0, 255).astype(np.uint8), masks, planes


def write_tiny_dataset(root: Path, *, n_clips=(4, 2, 2), n_frames: int = 12, size: int = 32, seed: int = 0) -> Path:
    """A dataset folder in the ``dataset_tools.build`` layout: manifest + train/validation/test.h5."""
    import h5py

    from napari_ultramn.io.hdf5clip import write_clip_group

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    qualities = ("ok", "poor")
    for split, n in zip(("train", "validation", "test"), n_clips):
        with h5py.File(root / f"{split}.h5", "w") as fh:
            fh.attrs.update({"format": "ultramn-dataset", "split": split, "vocabulary": json.dumps(PLANES)})
            for i in range(n):
                plane = i % len(DEFAULT_PLANES)
                frames, masks, planes = tiny_clip(rng, plane, n_frames, size, 2 if i % 2 else 0)
                cid = f"{split}{i:02d}"
                g = fh.require_group("clips").create_group(cid)
                write_clip_group(
                    g,
                    frames,
                    {
                        "clip_id": cid,
                        "participant": f"P{split[:2]}{i // 2}",
                        "side": "left",
                        "plane": PLANES[plane],
                        "spacing_mm": (0.1, 0.1),
                    },
                )
                g.create_dataset("masks", data=masks.astype(np.uint8))
                g.create_dataset("plane_labels", data=planes)
                g.create_dataset("provenance", data=np.zeros(n_frames, np.int8))
                g.create_dataset("annotated", data=np.ones(n_frames, bool))
                g.attrs.update({"clip_plane": PLANES[plane], "clip_plane_code": plane, "quality": qualities[i % 2]})
    (root / "manifest.json").write_text(json.dumps({"format": "ultramn-dataset-manifest", "vocabulary": PLANES}))
    return root


def train_tiny(dataset: Path, run_dir: Path, **kw) -> dict:
    from napari_ultramn.model.train import train_run

    return run_to_end(train_run(dataset, run_dir, **{**TINY_TRAIN, **kw}))
