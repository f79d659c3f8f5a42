"""A small synthetic multi-rater project (clips + ground truth) for tests, benchmarks and examples.

Builds what the phantom study and ingest would: HDF5 clips in a project, registry records per
``schemas/clips.schema.json``, and ``STUDY/ground_truth/<sha256>.npz`` with an elliptical nerve that
drifts and breathes over time. :func:`make_synthetic_project` then lets
:func:`dataset_tools.simulate_raters.simulate_raters` annotate it, unless ``raters=()``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from napari_ultramn import DEFAULT_PLANES, NON_STANDARD
from napari_ultramn.progress import run_to_end


def nerve_masks(n_frames: int, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """``(T, H, W) bool`` ellipse drifting a few pixels and changing size smoothly."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    cy, cx = h * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65)
    ry, rx = h * rng.uniform(0.06, 0.1), w * rng.uniform(0.08, 0.14)
    phase = rng.uniform(0, 2 * np.pi)
    out = np.empty((n_frames, h, w), dtype=bool)
    for t in range(n_frames):
        s = 1 + 0.1 * np.sin(phase + t / 5)
        dy, dx = 0.04 * h * np.sin(t / 7 + phase), 0.04 * w * np.cos(t / 9)
        out[t] = ((yy - cy - dy) / (ry * s)) ** 2 + ((xx - cx - dx) / (rx * s)) ** 2 <= 1
    return out


def make_synthetic_project(
    root: str | Path,
    n_participants: int = 3,
    clips_per_participant: int = 2,
    n_frames: int = 8,
    shape: tuple[int, int] = (48, 64),
    raters=("r1", "r2", "r3"),
    seed: int = 0,
    uncalibrated: tuple[int, ...] = (),
    non_standard_frames: int = 1,
):
    """Create ``root/project`` and ``root/study``; returns ``(project, study_dir)``.

    ``uncalibrated``: indices of clips stored without pixel spacing. ``non_standard_frames``: the
    last frames of each clip the ground truth labels non-standard.
    """
    from napari_ultramn.io.hdf5clip import write_hdf5_clip
    from napari_ultramn.project import Project

    from ..simulate_raters import simulate_raters

    root = Path(root)
    project = Project.create(root / "project", name="synthetic")
    study = root / "study"
    (study / "ground_truth").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records = []
    k = 0
    for p in range(n_participants):
        for c in range(clips_per_participant):
            plane = DEFAULT_PLANES[(p + c) % 2]
            sha = hashlib.sha256(f"synthetic-{seed}-{k}".encode()).hexdigest()
            masks = nerve_masks(n_frames, shape, rng)
            frames = (rng.integers(20, 60, (n_frames, *shape)) + 120 * masks).astype(np.uint8)
            labels = np.array([plane] * n_frames, dtype="U32")
            if non_standard_frames:
                labels[-non_standard_frames:] = NON_STANDARD
            spacing = None if k in uncalibrated else [0.08, 0.1]
            clip_id = f"P{p:03d}_c{c}"
            meta = {
                "clip_id": clip_id,
                "participant": f"P{p:03d}",
                "side": "left",
                "plane": plane,
                "source_sha256": sha,
                "spacing_mm": spacing,
                "spacing_source": "none" if spacing is None else "us_region",
                "frame_time_ms": 40.0,
            }
            write_hdf5_clip(project.root / "clips" / f"{clip_id}.h5", frames, meta)
            np.savez_compressed(
                study / "ground_truth" / f"{sha}.npz",
                masks=masks,
                plane_labels=labels,
                quality=np.array(["ok"] * n_frames),
                spacing_mm=np.array(spacing or [0, 0], float),
            )
            records.append(
                {
                    **meta,
                    "file": f"clips/{clip_id}.h5",
                    "n_frames": n_frames,
                    "frame_shape": list(shape),
                    "source_kind": "hdf5",
                }
            )
            k += 1
    project.upsert_clips(records)
    if raters:
        run_to_end(simulate_raters(project, study, raters=raters, seed=seed))
    return project, study
