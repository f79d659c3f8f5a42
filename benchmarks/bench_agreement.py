"""Benchmark: the full agreement report for 200 clips x 3 raters x 32 frames of 256 x 256.

Goal: under 60 s on 2 cores. Also times our surface distances against MONAI's on the same masks.
Prints; never asserts. Usage::

    python3 benchmarks/bench_agreement.py [--clips 200] [--frames 32] [--size 256] [--bootstrap 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def build_project(root: Path, n_clips: int, n_frames: int, size: int, seed: int = 0):
    """A registry of clips and three raters' annotations, made analytically (fast)."""
    from napari_ultramn.annotation import ClipAnnotation
    from napari_ultramn.io.hdf5clip import write_hdf5_clip
    from napari_ultramn.project import Project

    project = Project.create(root / "project", name="bench")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    records = []
    for c in range(n_clips):
        cid, part = f"C{c:04d}", f"P{c // 4:03d}"
        cy, cx, ry, rx = size * 0.5, size * 0.5, size * rng.uniform(0.06, 0.1), size * rng.uniform(0.08, 0.13)
        frames = np.full((n_frames, size, size), 40, np.uint8)
        write_hdf5_clip(
            project.root / "clips" / f"{cid}.h5",
            frames,
            {
                "clip_id": cid,
                "participant": part,
                "source_sha256": f"{c:064x}",
                "spacing_mm": [0.08, 0.08],
                "spacing_source": "us_region",
            },
        )
        records.append(
            {
                "clip_id": cid,
                "file": f"clips/{cid}.h5",
                "participant": part,
                "plane": "transverse_wrist",
                "source_sha256": f"{c:064x}",
                "n_frames": n_frames,
                "frame_shape": [size, size],
                "spacing_mm": [0.08, 0.08],
                "spacing_source": "us_region",
            }
        )
        for j, rater in enumerate(("r1", "r2", "r3")):
            plane = "transverse_forearm" if (j == 2 and rng.random() < 0.2) else "transverse_wrist"
            ann = ClipAnnotation(cid, rater, n_frames, (size, size), clip_plane=plane, status="done")
            grow = 1.0 + 0.06 * (j == 1)
            for t in range(n_frames):
                if j == 2 and rng.random() < 0.1:
                    continue
                dy, dx = rng.normal(0, 1.5, 2)
                wobble = 1 + 0.04 * np.sin(np.arctan2(yy - cy, xx - cx) * rng.integers(2, 5) + rng.uniform(0, 6))
                r = ((yy - cy - dy - t * 0.3) / (ry * grow)) ** 2 + ((xx - cx - dx) / (rx * grow)) ** 2
                ann.set_mask(t, r <= wobble, "drawn" if t % 4 == 0 else "interpolated")
            project.annotations.save(ann)
    project.upsert_clips(records)
    return project


def surface_distance_race(project, n_pairs: int = 300):
    """Our distances vs MONAI's on the same frame pairs: (ours_s, monai_s, max_abs_diff)."""
    from dataset_tools.agreement.masks import boundary_metrics, monai_boundary_metrics

    pairs = []
    for cid in project.clip_ids():
        anns = project.annotations.load_all(cid)
        a, b = anns["r1"], anns["r2"]
        for t in sorted(set(a.frames) & set(b.frames)):
            pairs.append((a.frames[t].mask, b.frames[t].mask))
            if len(pairs) >= n_pairs:
                break
        if len(pairs) >= n_pairs:
            break
    spacing = (0.08, 0.08)
    monai_boundary_metrics(*pairs[0], spacing)  # import and warm up outside the timing
    t0 = time.perf_counter()
    ours = [boundary_metrics(a, b, spacing) for a, b in pairs]
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = [monai_boundary_metrics(a, b, spacing) for a, b in pairs]
    t_monai = time.perf_counter() - t0
    diff = max(abs(o[k] - r[k]) for o, r in zip(ours, ref, strict=True) for k in r)
    # MONAI's lower bound: one edge + distance computation per pair, every metric derived from it
    import torch
    from monai.metrics.utils import get_edge_surface_distance

    t0 = time.perf_counter()
    for a, b in pairs:
        get_edge_surface_distance(torch.as_tensor(a), torch.as_tensor(b), spacing=spacing, symmetric=True)
    t_core = time.perf_counter() - t0
    return len(pairs), t_ours, t_monai, t_core, diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--pairs", type=int, default=300, help="frame pairs for the MONAI comparison (0: skip it)")
    args = ap.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    import torch

    torch.set_num_threads(2)
    from dataset_tools.agreement.project_report import agreement_report
    from napari_ultramn.progress import run_to_end

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        project = build_project(Path(tmp), args.clips, args.frames, args.size)
        print(
            f"setup: {args.clips} clips x 3 raters x {args.frames} frames of {args.size}^2 "
            f"in {time.perf_counter() - t0:.1f} s (not part of the figure)"
        )
        t0 = time.perf_counter()
        result = run_to_end(agreement_report(project, Path(tmp) / "out", n_boot=args.bootstrap, seed=0))
        total = time.perf_counter() - t0
        print(
            f"full agreement report ({len(result.tables.frame_pairs)} rater-pair frames, "
            f"{args.bootstrap} bootstrap replicates): {total:.1f} s  (goal < 60 s)"
        )
        if args.pairs <= 0:
            return
        n, t_ours, t_monai, t_core, diff = surface_distance_race(project, args.pairs)
        print(
            f"surface distances on {n} frame pairs (HD, HD95, ASSD, surface Dice): ours {t_ours:.2f} s, "
            f"MONAI public metrics {t_monai:.2f} s ({t_monai / t_ours:.1f}x ours), MONAI one "
            f"get_edge_surface_distance per pair {t_core:.2f} s ({t_core / t_ours:.1f}x ours); "
            f"max |difference| = {diff:.2e} mm"
        )


if __name__ == "__main__":
    main()
