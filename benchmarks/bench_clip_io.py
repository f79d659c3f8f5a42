"""Clip I/O figures (issue 2). Prints medians and ratios; asserts nothing.

    nice python3 benchmarks/bench_clip_io.py [--frames 120] [--repeats 5]

(1) A 120-frame JPEG-baseline colour (YBR_FULL_422) cine, 480x640: time to open it and show
    frame 0, against the time to decode the whole clip, in the same run. Goal: ratio <= 0.1.
(2) Stepping through every frame lazily (``clip.frame(i)`` for each i, fresh clip) against
    decoding the whole array at once with pydicom (``pixel_array``). Goal: throughput >= 0.9x.
    Also printed: stricter references, a whole-array decode that skips colour conversion
    (``raw=True``) and keeps only luma as the lazy path does, with pydicom's default plugin and
    with the plugin the lazy reader prefers (Pillow for JPEG baseline).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import median_time  # benchmarks/timing.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def speckle_frames(n: int, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """B-mode-like frames: Rayleigh speckle drifting across frames (realistic JPEG entropy)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    # speckle = envelope of a band-limited field: blur complex noise, take its magnitude
    field = rng.normal(size=(2, rows, cols + n * 2)).astype(np.float32)
    field = gaussian_filter(field, (0, 1.0, 1.6))
    base = np.hypot(field[0], field[1]) * 260.0
    depth = np.linspace(1.0, 0.4, rows, dtype=np.float32)[:, None]
    out = np.empty((n, rows, cols), np.uint8)
    for t in range(n):
        out[t] = np.clip(base[:, 2 * t : 2 * t + cols] * depth, 0, 255).astype(np.uint8)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--rows", type=int, default=480)
    parser.add_argument("--cols", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import pydicom
    from pydicom import uid
    from pydicom.pixels.decoders.base import get_decoder

    from napari_ultramn.io import open_clip
    from napari_ultramn.io.dicom import _Codec
    from tests.dicom_factory import write_dicom

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cine.dcm"
        t0 = time.perf_counter()
        frames = speckle_frames(args.frames, args.rows, args.cols)
        write_dicom(
            path, frames, "YBR_FULL_422", uid.JPEGBaseline8Bit, region=(40, 0, args.rows, args.cols), jpeg_quality=85
        )
        print(
            f"synthesised {args.frames}x{args.rows}x{args.cols} JPEG baseline YBR_FULL_422 cine "
            f"({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s"
        )
        print(f"medians of {args.repeats} repeats\n")

        def open_and_show_first():
            open_clip(path).frame(0)

        def whole_pixel_array():
            return pydicom.dcmread(path).pixel_array  # RGB, (T, H, W, 3)

        def whole_raw_luma(plugin: str = ""):
            ds = pydicom.dcmread(path)
            decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
            arr, _ = decoder.as_array(ds, raw=True, decoding_plugin=plugin)
            return np.ascontiguousarray(arr[..., 0])

        # the plugin the lazy reader picks for this syntax: the same decoder, all frames at once
        ds0 = pydicom.dcmread(path)
        plugin = _Codec(get_decoder(ds0.file_meta.TransferSyntaxUID)).plugins[0]

        def step_lazily():
            clip = open_clip(path)
            for i in range(clip.n_frames):
                clip.frame(i)

        open_and_show_first()  # warm imports and the page cache before timing
        t_open = median_time(open_and_show_first, args.repeats)
        t_whole = median_time(whole_pixel_array, args.repeats)
        t_raw = median_time(whole_raw_luma, args.repeats)
        t_same = median_time(lambda: whole_raw_luma(plugin), args.repeats)
        t_step = median_time(step_lazily, args.repeats)

        n = args.frames
        print("(1) open + show frame 0 vs decode whole clip")
        print(f"    open + frame 0          {t_open * 1e3:8.1f} ms")
        print(f"    whole clip pixel_array  {t_whole * 1e3:8.1f} ms")
        print(f"    whole clip, lazy reader {t_step * 1e3:8.1f} ms  (open + every frame)")
        print(f"    ratio vs pixel_array    {t_open / t_whole:8.3f}   (goal <= 0.1)")
        print(f"    ratio vs lazy reader    {t_open / t_step:8.3f}   (same decoder)\n")
        print("(2) step through every frame lazily vs whole-array decode")
        print(f"    lazy stepping           {n / t_step:8.1f} frames/s")
        print(f"    pydicom pixel_array     {n / t_whole:8.1f} frames/s")
        print(f"    raw whole + luma only   {n / t_raw:8.1f} frames/s  (pydicom's plugin)")
        print(f"    same, plugin {plugin!r:10s} {n / t_same:8.1f} frames/s  (the lazy reader's)")
        print(f"    ratio vs pixel_array    {t_whole / t_step:8.2f}x  (goal >= 0.9x)")
        print(f"    ratio vs raw luma       {t_raw / t_step:8.2f}x")
        print(f"    ratio vs same plugin    {t_same / t_step:8.2f}x  (strictest: same decoder)")


if __name__ == "__main__":
    main()
