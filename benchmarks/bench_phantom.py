"""Figure: phantom generation throughput (frames/s at 256x256), printed, not asserted.

Target (issue 2): at least 300 frames/s on a 2-core machine. Because the machine is shared, the
same run also times a deliberately simple baseline of the same frame size (numpy Gaussian noise
plus one ``scipy.ndimage.gaussian_filter`` per frame); the ratio says how the phantom compares
with "the cheapest image one could make" on the same CPU at the same moment. Repeats alternate
phantom and baseline so load changes hit both; medians are reported, from wall-clock time and
from this process's CPU time (what the work costs when the machine is busy with other jobs).

    nice python3 benchmarks/bench_phantom.py [--repeats 5] [--frames 32] [--size 256 256]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) spent in ``fn()``."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def baseline_seconds(n_frames: int, size: tuple[int, int], seed: int) -> tuple[float, float]:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    out = np.empty((n_frames, *size), np.uint8)

    def run():
        for t in range(n_frames):
            img = ndimage.gaussian_filter(rng.standard_normal(size, dtype=np.float32), 1.5)
            out[t] = np.clip(img * 60 + 100, 0, 255)

    return _timed(run)


def phantom_seconds(plane: str, n_frames: int, size: tuple[int, int], seed: int) -> tuple[float, float]:
    from napari_ultramn.phantom import generate_clip

    return _timed(lambda: generate_clip(plane, seed, n_frames=n_frames, size=size))


def main(argv=None) -> None:
    from napari_ultramn import DEFAULT_PLANES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", type=int, nargs=2, default=(256, 256))
    args = ap.parse_args(argv)
    size = tuple(args.size)
    phantom_seconds(DEFAULT_PLANES[0], 4, size, 999)  # warm-up: imports, FFT plans
    baseline_seconds(4, size, 999)
    per_plane: dict[str, list[float]] = {p: [] for p in DEFAULT_PLANES}
    rows = []  # per repeat: phantom wall fps, phantom cpu fps, baseline wall fps, baseline cpu fps
    for r in range(args.repeats):
        wall = cpu = 0.0
        for plane in DEFAULT_PLANES:
            w, c = phantom_seconds(plane, args.frames, size, seed=r)
            per_plane[plane].append(args.frames / w)
            wall, cpu = wall + w, cpu + c
        n = args.frames * len(DEFAULT_PLANES)
        bw, bc = baseline_seconds(n, size, seed=r)
        rows.append((n / wall, n / cpu, n / bw, n / bc))
    med = [statistics.median(col) for col in zip(*rows)]
    print(
        f"phantom generation, {args.frames}-frame clips of {size[0]}x{size[1]}, "
        f"{args.repeats} repeats x 4 planes (clip set-up included)"
    )
    for plane, values in per_plane.items():
        print(f"  {plane:22s} median {statistics.median(values):7.1f} frames/s (wall)")
    print(
        f"phantom  median {med[0]:7.1f} frames/s wall, {med[1]:7.1f} frames/s per CPU-second "
        f"(wall per repeat: {', '.join(f'{r[0]:.0f}' for r in rows)})"
    )
    print(
        f"baseline median {med[2]:7.1f} frames/s wall, {med[3]:7.1f} frames/s per CPU-second "
        "(noise + one gaussian_filter per frame)"
    )
    print(
        f"ratio phantom/baseline {med[0] / med[2]:.2f} (wall), {med[1] / med[3]:.2f} (CPU); "
        f"target >= 300 frames/s: {'met' if med[0] >= 300 else 'not met'} on wall clock, "
        f"{'met' if med[1] >= 300 else 'not met'} per CPU-second"
    )


if __name__ == "__main__":
    main()
