"""Imaging-area detection on synthetic screen recordings (issue 10). Prints medians; asserts nothing.

    nice python3 benchmarks/bench_region.py [--frames 100] [--scale 0.6]

For each of >= 12 recordings (linear / convex / phased layouts, moving, frozen and single-image,
at scanner screen sizes 776x1080, 1080x776 and 1080x1920 times ``--scale``; clips of 100 frames,
the length of the sites' frozen example, 4-17 s at their 6-25 fps), written to mp4 (a PNG
folder for single images) and read back as ingest does:
  detection time: ``detect_imaging_area`` on <= 32 frames spread over the clip (median of 3);
  share of ingest: detection / (decode every frame + detection + crop/blank + HDF5 write), goal < 20%;
  area kept: kept pixels of the hand-marked imaging area (minus overlay boxes), goal >= 98%;
  overlays left: text boxes (and calipers, markers, bars) with any kept pixel, goal 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from timing import median_time  # benchmarks/timing.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCREENS = ((776, 1080), (1080, 776), (1080, 1920))
VARIANTS = (("moving", False), ("frozen", True), ("single", False))


def measure(path: Path, h5_path: Path, repeats: int):
    """The detected area, the detection time and the ingest time of one recording (medians)."""
    from napari_ultramn.io import open_clip
    from napari_ultramn.io.hdf5clip import write_hdf5_clip
    from napari_ultramn.io.screen_region import apply_imaging_area, detect_imaging_area

    def decode():
        return open_clip(path).to_array()  # ingest decodes every frame

    frames = decode()
    sample = frames[np.linspace(0, len(frames) - 1, min(32, len(frames))).round().astype(int)]
    area = detect_imaging_area(sample)

    def crop_and_write():
        out = apply_imaging_area(frames, area)
        write_hdf5_clip(h5_path, out, {"clip_id": path.stem})

    t_detect = median_time(lambda: detect_imaging_area(sample), repeats)
    t_ingest = median_time(decode, repeats) + t_detect + median_time(crop_and_write, repeats)
    return area, t_detect, t_ingest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--scale", type=float, default=0.6)
    parser.add_argument("--per-layout", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from napari_ultramn.io.screen_region import detect_imaging_area
    from napari_ultramn.phantom.screen_recording import (
        LAYOUTS,
        make_screen_recording,
        write_screen_recording,
    )

    # one warm-up call: ingest runs many clips in one process, imports are paid once
    detect_imaging_area(make_screen_recording("linear", 0, 1, (240, 320)).frames)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for li, layout in enumerate(LAYOUTS):
            for k in range(args.per_layout):
                screen = SCREENS[(li + k) % len(SCREENS)]
                size = (int(screen[0] * args.scale) // 2 * 2, int(screen[1] * args.scale) // 2 * 2)
                variant, frozen = VARIANTS[k % len(VARIANTS)]
                n = 1 if variant == "single" else args.frames
                rec = make_screen_recording(layout, 100 + 10 * li + k, n, size, frozen=frozen)
                path = Path(tmp) / (f"{layout}{k}" if n == 1 else f"{layout}{k}.mp4")
                if n == 1:  # a single exported image, read as a one-frame PNG folder
                    path.mkdir()
                    write_screen_recording(path / "f0.png", rec.frames)
                else:
                    write_screen_recording(path, rec.frames, rec.frame_time_ms)

                area, t_detect, t_ingest = measure(path, Path(tmp) / f"{path.stem}.h5", args.repeats)

                kept = np.zeros(rec.area_mask.shape, bool)
                r = area.region
                kept[r.top : r.bottom, r.left : r.right] = area.keep_mask
                keepable = rec.keepable_mask()
                share = (kept & keepable).sum() / keepable.sum()
                left = sum(kept[b[0] : b[2], b[1] : b[3]].any() for kind, b in rec.overlay_boxes if kind == "text")
                left_any = sum(kept[b[0] : b[2], b[1] : b[3]].any() for _, b in rec.overlay_boxes)
                rows.append(
                    (layout, variant, size, n, t_detect, t_detect / t_ingest, share, left, left_any, area.confidence)
                )
                print(
                    f"{layout:7s} {variant:7s} {size[0]:5d}x{size[1]:<5d} {n:3d} fr  detect "
                    f"{t_detect * 1e3:6.0f} ms  share {100 * t_detect / t_ingest:5.1f}%  kept "
                    f"{100 * share:5.1f}%  text left {left}  overlays left {left_any}  "
                    f"conf {area.confidence:.2f}",
                    flush=True,
                )

    def summary(name, sel):
        clips = [r for r in sel if r[3] > 1]
        print(
            f"{name:8s} detect median {statistics.median(r[4] for r in sel) * 1e3:6.0f} ms   share of "
            f"ingest median {100 * statistics.median(r[5] for r in clips):5.1f}% (clips)   kept median "
            f"{100 * statistics.median(r[6] for r in sel):5.1f}% min {100 * min(r[6] for r in sel):5.1f}%   "
            f"text boxes left {sum(r[7] for r in sel)}   other overlays left {sum(r[8] - r[7] for r in sel)}"
        )

    print()
    for layout in LAYOUTS:
        summary(layout, [r for r in rows if r[0] == layout])
    summary("overall", rows)
    print("goals: share of ingest < 20%, kept >= 98%, text boxes left 0")


if __name__ == "__main__":
    main()
