"""Figures of issue 3: interpolation and propagation speed, propagation Dice, autosave cost.

Prints medians (and ratios against a baseline measured in the same run); never asserts.

    nice python3 benchmarks/bench_annotation.py            # all three figures
    nice python3 benchmarks/bench_annotation.py --only propagate --seeds 0 1 2

Interpolation: 30 frames between two 512x512 keyframes (a 9x5 mm nerve-sized oval that moves and
flattens), against a naive linear pixel blend of the full frames and against the same distance
field method computed on the full frames instead of the shapes' bounding box.
Propagation: 100-frame 256x256 phantom clips (napari_ultramn.phantom.generate_clip), one per
plane and seed, from the ground-truth mask of frame 0 to frame 99; frames/s over the whole clip
(wall clock, and per second of CPU time, which is steadier on a shared machine), Dice against
ground truth at frame 30 (the issue's figure) and at frame 99.
Autosave: a 300-frame annotation (phantom masks on every frame) saved with AnnotationStore.save
(schema check + RLE JSON + atomic write), against np.save of the raw (T, H, W) bool masks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import median_time  # benchmarks/timing.py

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from napari_ultramn import DEFAULT_PLANES  # noqa: E402
from napari_ultramn.annotation import AnnotationStore, ClipAnnotation  # noqa: E402
from napari_ultramn.annotation.interpolate import _signed_distance, interpolate_masks  # noqa: E402
from napari_ultramn.annotation.propagate import propagate_mask  # noqa: E402
from napari_ultramn.atomic import fsync_files  # noqa: E402
from napari_ultramn.progress import run_to_end  # noqa: E402


def oval(shape, cy, cx, ry, rx):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def bench_interpolation(repeats: int) -> None:
    shape = (512, 512)
    a = oval(shape, 200, 220, 40, 70)
    b = oval(shape, 230, 260, 28, 90)  # moved and flattened 30 frames later
    keys = {0: a, 31: b}
    n = 30

    def pixel_blend():
        fa, fb = a.astype(np.float32), b.astype(np.float32)
        return {t: (1 - t / 31) * fa + (t / 31) * fb > 0.5 for t in range(1, 31)}

    def full_frame_sdf():
        sa, sb = _signed_distance(a), _signed_distance(b)
        return {t: (1 - t / 31) * sa + (t / 31) * sb > 0 for t in range(1, 31)}

    run = median_time(lambda: interpolate_masks(keys), repeats)
    naive = median_time(pixel_blend, repeats)
    full = median_time(full_frame_sdf, repeats)
    print("## Interpolation: 30 frames between two 512x512 keyframes")
    print(f"shape-based (SDF on bounding box, centroid-aligned): {n / run:8.0f} frames/s  ({1000 * run:.1f} ms)")
    print(f"naive linear pixel blend (baseline):                 {n / naive:8.0f} frames/s  ({1000 * naive:.1f} ms)")
    print(f"SDF on the full frames (no bounding box):            {n / full:8.0f} frames/s  ({1000 * full:.1f} ms)")
    print(
        f"ratio shape-based / pixel blend: {naive / run:.2f}; bounding box speed-up over full-frame SDF: {full / run:.1f}x"
    )
    print()


def bench_interpolation_accuracy(seeds: list[int], n_frames: int = 31) -> None:
    """Dice of interpolated frames against phantom ground truth, keyframes every k frames."""
    from napari_ultramn.phantom import generate_clip

    print(f"## Interpolation accuracy: {n_frames}-frame 256x256 phantom clips, mean Dice of filled frames")
    print(f"{'keyframe every':>14s} {'shape-based':>12s} {'pixel blend':>12s}")
    clips = [generate_clip(p, seed=s, n_frames=n_frames, size=(256, 256)) for p in DEFAULT_PLANES for s in seeds]
    for k in (5, 10, 15):
        ours, blend = [], []
        for clip in clips:
            keys = {t: clip.masks[t] for t in range(0, n_frames, k)}
            filled = interpolate_masks(keys)
            for t, m in filled.items():
                k0 = max(x for x in keys if x < t)
                k1 = min(x for x in keys if x > t)
                w = (t - k0) / (k1 - k0)
                naive = (1 - w) * keys[k0] + w * keys[k1] > 0.5
                ours.append(dice(m, clip.masks[t]))
                blend.append(dice(naive, clip.masks[t]))
        print(f"{k:14d} {np.mean(ours):12.3f} {np.mean(blend):12.3f}")
    print()


def dice(a, b) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0


def bench_propagation(seeds: list[int], n_frames: int = 100) -> None:
    from napari_ultramn.phantom import generate_clip

    print(f"## Propagation: {n_frames}-frame 256x256 phantom clips, one anchor (frame 0) to frame {n_frames - 1}")
    print(
        f"{'plane':22s} {'seed':>4s} {'frames/s':>9s} {'cpu fr/s':>9s} {'Dice@30':>8s} {'Dice@99':>8s} {'conf@30':>8s} {'warned':>7s}"
    )
    rows = []
    for plane in DEFAULT_PLANES:
        for seed in seeds:
            clip = generate_clip(plane, seed=seed, n_frames=n_frames, size=(256, 256))
            t0, c0 = time.perf_counter(), time.process_time()
            result = run_to_end(propagate_mask(clip.frames, 0, clip.masks[0], n_frames - 1))
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            fps = (n_frames - 1) / elapsed
            cpu_fps = (n_frames - 1) / cpu
            d30 = dice(result.masks[30], clip.masks[30]) if 30 in result.masks else 0.0
            last = n_frames - 1
            dlast = dice(result.masks[last], clip.masks[last]) if last in result.masks else 0.0
            both = run_to_end(propagate_mask(clip.frames, 0, clip.masks[0], 30, clip.masks[30]))
            d_two = float(np.mean([dice(both.masks[t], clip.masks[t]) for t in range(1, 30)]))
            d_one = float(np.mean([dice(result.masks[t], clip.masks[t]) for t in range(1, 30)]))
            rows.append((plane, seed, fps, d30, dlast, cpu_fps, d_one, d_two))
            print(
                f"{plane:22s} {seed:4d} {fps:9.1f} {cpu_fps:9.1f} {d30:8.3f} {dlast:8.3f} "
                f"{result.confidence.get(30, 0.0):8.2f} {len(result.warnings):7d}"
            )
    fps = [r[2] for r in rows]
    print(
        f"median frames/s {statistics.median(fps):.1f} (min {min(fps):.1f}); "
        f"per CPU-second {statistics.median(r[5] for r in rows):.1f}; "
        f"median Dice@30 {statistics.median(r[3] for r in rows):.3f} (min {min(r[3] for r in rows):.3f}); "
        f"median Dice@99 {statistics.median(r[4] for r in rows):.3f}"
    )
    print(
        f"frames 1-29, mean Dice: one anchor (frame 0) {np.mean([r[6] for r in rows]):.3f}, "
        f"two anchors (frames 0 and 30) {np.mean([r[7] for r in rows]):.3f}"
    )
    for plane in DEFAULT_PLANES:
        sel = [r for r in rows if r[0] == plane]
        print(
            f"  {plane:22s} mean Dice@30 {np.mean([r[3] for r in sel]):.3f}  mean Dice@99 {np.mean([r[4] for r in sel]):.3f}"
        )
    print()


def bench_autosave(repeats: int, n_frames: int = 300) -> None:
    from napari_ultramn.phantom import generate_clip

    clip = generate_clip("transverse_wrist", seed=0, n_frames=n_frames, size=(256, 256))
    ann = ClipAnnotation("bench_clip", "rater1", n_frames, clip.masks.shape[1:], clip_plane="transverse_wrist")
    provenances = ("drawn", "interpolated", "propagated")
    for t in range(n_frames):
        prov = provenances[0] if t % 10 == 0 else provenances[1 + (t // 10) % 2]
        ann.set_mask(t, clip.masks[t], prov, confidence=0.9 if prov == "propagated" else None)
    with tempfile.TemporaryDirectory() as tmp:
        store = AnnotationStore(tmp)
        save = median_time(lambda: store.save(ann), repeats)
        size = store.path(ann.clip_id, ann.rater).stat().st_size
        raw_path = Path(tmp) / "raw.npy"

        def np_save():
            np.save(raw_path, clip.masks)
            fsync_files([raw_path])  # same durability as the atomic save

        raw = median_time(np_save, repeats)
        raw_size = raw_path.stat().st_size
        # the annotator saves on a worker thread: what the GUI thread pays per change
        from napari_ultramn.annotation.autosave import BackgroundSaver, frozen_copy

        saver = BackgroundSaver(store.save)

        handed = []  # the hand-over alone; each save is let finish before the next (not timed)
        for _ in range(repeats):
            t0 = time.perf_counter()
            saver.submit(frozen_copy(ann))
            handed.append(time.perf_counter() - t0)
            saver.flush()
        saver.close()
        gui = float(np.median(handed))
    h, w = clip.masks.shape[1:]
    print(f"## Autosave: {n_frames}-frame {h}x{w} annotation, every frame masked")
    print(f"AnnotationStore.save (schema + RLE JSON + atomic): {1000 * save:7.1f} ms  {size / 1024:8.1f} KiB")
    print(f"np.save raw (T, H, W) bool masks + fsync:          {1000 * raw:7.1f} ms  {raw_size / 1024:8.1f} KiB")
    print(f"ratio time {save / raw:.1f}x; size {size / raw_size:.3f} of raw ({raw_size / size:.0f}x smaller)")
    print(
        f"GUI thread per change: {1000 * save:7.1f} ms saving in place -> {1000 * gui:6.3f} ms handing a "
        f"frozen copy to the autosave thread ({save / gui:,.0f}x less)"
    )
    print()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["interpolate", "propagate", "autosave"], action="append")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    only = set(args.only or ["interpolate", "propagate", "autosave"])
    print(f"cpus available: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}")
    if "interpolate" in only:
        bench_interpolation(args.repeats)
        bench_interpolation_accuracy(args.seeds)
    if "propagate" in only:
        bench_propagation(args.seeds)
    if "autosave" in only:
        bench_autosave(args.repeats)


if __name__ == "__main__":
    main()
