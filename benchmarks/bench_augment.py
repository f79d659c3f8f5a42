"""Augmentation on the training device and a loader that only reads (issue 16). Prints; asserts nothing.

    nice python3 benchmarks/bench_augment.py [--batch 8] [--repeats 16] [--clips 80 400]
                                             [--clip-frames 32] [--size 256 256] [--skip-augment]
                                             [--skip-memory] [--keep DIR]

(1) Augmentation, 16-frame windows at 256 x 256 (uint8 in, as the loader delivers them), in the
    same run, interleaved repeat by repeat so all see the same load, each call with fresh random
    draws, means over the repeats:
    the per-window augmentation the loader's workers ran until now (``baseline_augment.py``)
    alone, one window at a time; the old loader's whole per-batch work (that augmentation, the
    uint8 round trip through shared memory, collate, the float conversion on the device); and
    ``napari_ultramn.model.augment``, which yields the float batch directly: its whole-batch path
    (what a GPU runs) on the CPU, and its CPU path (window by window on the torch threads) making
    new tensors and as training calls it (into float32 tensors reused from step to step).
    Printed as frames per CPU-second (what the work costs) and as wall frames/s on 1 and 2 torch
    threads (goal: >= 5,000 frames/s on 2 cores, the CPU path as training calls it).
(2) The loader alone (read + decompress, uint8 items): one epoch through a DataLoader with 0 and 2
    workers, frames/s wall and per CPU-second (workers included).
(3) Memory: the peak private memory (USS, summed over the main process and the 2 workers, sampled
    every 4 batches; private dirty pages, see ``_private_mb`` for why not RSS or PSS) of one epoch of the loader over 80 and over 400 clips, each in a fresh process, for the
    two layouts a split can have: one file holding every clip (as ``dataset_tools.build`` writes
    a split) and one file per clip (shards; the open-file bound is what keeps those flat). For
    comparison: the old loader's work (per-window augmentation in the workers) on the one-file
    layout, and the bounds lifted (every file kept open, HDF5's default 1 MiB chunk cache per
    dataset) on the file-per-clip layout. Flat = the 400-clip figure close to the 80-clip one.

On a shared machine wall figures measure the other users too: the load average is printed, and
the ratios (same run, interleaved) are the figures to compare.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic_windows(batch: int, window: int, size: tuple[int, int], seed: int = 0):
    """``(B, 1, T, H, W)`` uint8 frames (2-pixel-grain speckle on a depth ramp) and an ellipse mask."""
    import torch

    rng = np.random.default_rng(seed)
    h, w = size
    rows, cols = np.mgrid[0:h, 0:w]
    grain = rng.gamma(2.0, 30.0, size=(batch, 1, window, (h + 1) // 2, (w + 1) // 2))
    frames = np.repeat(np.repeat(grain, 2, axis=-2), 2, axis=-1)[..., :h, :w] * np.linspace(1, 0.4, h)[:, None]
    mask = ((rows - h / 2) / (h / 8)) ** 2 + ((cols - w / 2) / (w / 6)) ** 2 <= 1
    masks = np.broadcast_to(mask, frames.shape).astype(np.uint8)
    return torch.from_numpy(np.clip(frames, 0, 255).astype(np.uint8)), torch.from_numpy(masks.copy())


NEW = "CPU path, as training calls it"


def bench_augmentation(batch: int, repeats: int, size, window: int = 16) -> None:
    """Three ways to make one float32 batch of augmented windows from uint8 windows, interleaved."""
    import torch

    from benchmarks.baseline_augment import Augment as WindowAugment
    from benchmarks.baseline_augment import window_generator
    from napari_ultramn.model.augment import Augment, epoch_generator

    frames, masks = synthetic_windows(batch, window, size)
    old, new, gen = WindowAugment(), Augment(), epoch_generator(0, 0)
    # fresh draws on every call for all three (the cost depends on which transforms a window
    # gets: the same 8 draws each time would time whichever 8 they happen to be)
    calls = iter(range(1 << 30))

    def window_alone():  # the per-window augmentation alone, one window at a time
        epoch = next(calls)
        for i in range(batch):
            old(frames[i], masks[i], window_generator(0, epoch, i))

    def old_pipeline():  # what the old loader did per batch: augment each window in a worker,
        items, epoch = [], next(calls)  # to uint8 for shared memory, collate, float on the device
        for i in range(batch):
            f, m = old(frames[i], masks[i], window_generator(0, epoch, i))
            items.append((f.mul_(255.0).add_(0.5).to(torch.uint8), m))
        f = torch.stack([a for a, _ in items]).float().div_(255.0)
        torch.stack([b for _, b in items]).float()

    def batched():  # the whole batch per transform (the GPU's path), here on the CPU
        f, m = new.batched(frames, masks, gen)
        m.float()

    def windows_fresh():  # the CPU's path: window by window on the torch threads, new tensors
        f, m = new(frames, masks, gen)
        m.float()

    workspace = (torch.empty(frames.shape), torch.empty(masks.shape))

    def windows_training():  # as training calls it: float32 tensors reused step after step
        new(frames, masks, gen, out=workspace)

    runs = {
        "per-window augmentation alone": window_alone,
        "old loader pipeline": old_pipeline,
        "batched (GPU path) on CPU": batched,
        "CPU path, new tensors": windows_fresh,
        NEW: windows_training,
    }
    n_frames = batch * window
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for fn in runs.values():
            fn()  # warm-up (first calls allocate and build kernels)
        cpu, wall = {k: [] for k in runs}, {k: [] for k in runs}
        for _ in range(repeats):  # interleaved: all see the same moments of load
            for name, fn in runs.items():
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        # means, not medians: each call draws its own transforms, and their mix is part of the cost
        fps = {k: (n_frames / statistics.mean(cpu[k]), n_frames / statistics.mean(wall[k])) for k in runs}
        new_cpu, new_wall = fps[NEW]
        for name, (c, w) in fps.items():
            ratio = "" if name == NEW else f" -> training's is {new_cpu / c:4.2f}x per CPU-s, {new_wall / w:4.2f}x wall"
            print(
                f"augment, {threads} thread(s), {batch} x {window} x {size[0]}x{size[1]}, {name:30s}: "
                f"{w:6.0f} frames/s wall, {c:6.0f} per CPU-s{ratio}",
                flush=True,
            )
        if threads == 1:
            print(f"  -> at the 1-thread cost on 2 free cores: {2 * new_cpu:6.0f} frames/s", flush=True)
        else:
            print(f"  -> {NEW} on {threads} threads: {new_wall:6.0f} frames/s wall (goal >= 5,000)", flush=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))


def make_split(
    folder: Path, n_clips: int, clip_frames: int, size, per_clip_files: bool, compression: str = "zstd"
) -> list[Path]:
    """Split files as ``dataset_tools.build`` writes them (its ``write_clip``), ``n_clips`` clips of
    ``clip_frames`` frames: one file, or one file per clip. A handful of distinct clips repeat, so
    making 400 costs little more than writing them."""
    from dataset_tools.build import write_clip
    from dataset_tools.labels import ClipLabels
    from napari_ultramn.io.h5 import create_h5

    folder.mkdir(parents=True, exist_ok=True)
    pool = [synthetic_windows(1, clip_frames, size, seed=s) for s in range(4)]
    paths, fh, ctx = [], None, None
    for i in range(n_clips):
        if fh is None or per_clip_files:
            if ctx is not None:
                ctx.__exit__(None, None, None)
            paths.append(folder / (f"train-{i:04d}.h5" if per_clip_files else "train.h5"))
            ctx = create_h5(paths[-1])
            fh = ctx.__enter__()
            fh.attrs["split"], fh.attrs["vocabulary"] = "train", json.dumps(["a", "non_standard"])
        frames, masks = (a[0, 0].numpy() for a in pool[i % len(pool)])
        labels = ClipLabels(
            masks.astype(bool),
            np.ones(clip_frames, bool),
            ["a"] * clip_frames,
            "a",
            "ok",
            np.zeros(clip_frames, np.int8),
            1,
        )
        write_clip(
            fh,
            {"clip_id": f"c{i:04d}", "participant": f"P{i % 7}"},
            frames,
            labels,
            vocabulary=["a", "non_standard"],
            spacing=None,
            label_source="bench",
            compression=compression,
        )
    ctx.__exit__(None, None, None)
    return paths


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _private_mb(pid: int) -> float:
    """A process's private dirty memory (``Private_Dirty`` of smaps_rollup, Linux), MB: the heap and
    buffers it wrote itself, what grows when a loader leaks or caches.

    Not RSS, which counts the pages a worker shares with its parent after fork (torch, numpy) once
    per process; not PSS or USS, which count library pages by how many other processes on the
    machine map them (other users' pythons included), so they move with the machine's load."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class AugmentInWorkers:
    """The old loader's items, for comparison: each window augmented in the worker that reads it
    (``baseline_augment``), then back to uint8 for the trip through shared memory."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        import torch

        from benchmarks.baseline_augment import Augment as WindowAugment
        from benchmarks.baseline_augment import window_generator

        item = self.dataset[index]
        f, item["masks"] = WindowAugment()(item["frames"], item["masks"], window_generator(0, 0, index))
        item["frames"] = f.mul_(255.0).add_(0.5).to(torch.uint8)
        return item


def one_epoch(
    paths: list[Path],
    workers: int,
    batch: int,
    bounded: bool = True,
    window: int = 16,
    sample_every: int = 0,
    augment_in_workers: bool = False,
) -> dict:
    """Frames/s of one epoch of the loader, and with ``sample_every`` the peak memory of its
    processes (private memory summed over the main process and the workers, sampled every
    ``sample_every`` batches; reading smaps costs CPU, so speed runs leave it off)."""
    import torch
    from torch.utils.data import DataLoader

    from napari_ultramn.model.loader import ClipWindowDataset

    limits = {} if bounded else {"max_open_files": len(paths), "chunk_cache_bytes": 1 << 20}
    ds = ClipWindowDataset(paths, window=window, **limits)
    loader = DataLoader(
        AugmentInWorkers(ds) if augment_in_workers else ds,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    cpu0, t0, n_frames, peak, at_start = _cpu_seconds(), None, 0, 0.0, None
    it = iter(loader)
    for i, b in enumerate(it):
        if t0 is None:  # wall time from the first batch on: worker start-up is not throughput
            t0 = time.perf_counter()
        else:
            n_frames += b["frames"].shape[0] * b["frames"].shape[2]
        if sample_every and i % sample_every == 0:
            pids = [os.getpid(), *(w.pid for w in getattr(it, "_workers", []))]
            total = sum(_private_mb(pid) for pid in pids)
            at_start = total if at_start is None else at_start
            peak = max(peak, total)
    wall = time.perf_counter() - t0
    del b, it, loader
    gc.collect()
    # CPU of the whole epoch (start-up and the first batch included; workers counted once joined)
    cpu = _cpu_seconds() - cpu0
    return {
        "frames": n_frames,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_frames": len(ds) * window,
        "windows": len(ds),
        "peak_mb": peak,
        "first_batch_mb": at_start,
    }


def bench_loader(work: Path, clip_frames: int, size, batch: int) -> None:
    folder = work / "mem_80_0"  # the memory figures' 80 clips in one split file
    paths = sorted(folder.glob("*.h5")) if folder.exists() else make_split(folder, 80, clip_frames, size, False)
    for workers in (0, 2):
        r = one_epoch(paths, workers, batch)
        print(
            f"loader alone (read + decompress, uint8), {workers} workers: {r['windows']} windows, "
            f"{r['frames'] / r['wall_s']:6.0f} frames/s wall after the first batch, "
            f"{r['cpu_frames'] / r['cpu_s']:6.0f} per CPU-s (start-up included)",
            flush=True,
        )


def bench_memory(work: Path, clips: list[int], clip_frames: int, size, batch: int) -> None:
    configs = [  # (layout: one file per clip?, bounded, the old loader's augmentation in workers)
        (False, True, False),
        (False, True, True),
        (True, True, False),
        (True, False, False),
    ]
    for per_clip_files, bounded, in_workers in configs:
        layout = "one file per clip" if per_clip_files else "one split file"
        peaks = []
        for n in clips:
            folder = work / f"mem_{n}_{int(per_clip_files)}"
            if not folder.exists():
                make_split(folder, n, clip_frames, size, per_clip_files)
            # a fresh interpreter per figure, so nothing of the previous one is counted
            code = (
                "import json, sys; sys.path.insert(0, sys.argv[1]); from benchmarks.bench_augment "
                "import one_epoch; from pathlib import Path; "
                "paths = sorted(Path(sys.argv[2]).glob('*.h5')); "
                "print(json.dumps(one_epoch(paths, 2, int(sys.argv[3]), sys.argv[4] == '1', "
                "sample_every=4, augment_in_workers=sys.argv[5] == '1')))"
            )
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    code,
                    str(ROOT),
                    str(folder),
                    str(batch),
                    str(int(bounded)),
                    str(int(in_workers)),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            peaks.append((r["peak_mb"], r["first_batch_mb"]))
        figures = ", ".join(f"{n} clips {p:5.0f} MB (first batch {f:4.0f})" for n, (p, f) in zip(clips, peaks))
        what = (
            "bounded (<= 4 open files, no chunk cache)"
            if bounded
            else "unbounded (every file kept open, 1 MiB chunk caches)"
        )
        what += ", OLD: augmentation in the workers" if in_workers else ", read only"
        print(
            f"memory, {layout}, {what}: peak private memory (main + 2 workers) of one epoch: {figures}; "
            f"ratio {peaks[-1][0] / peaks[0][0]:.2f}x",
            flush=True,
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="windows per batch (default 8)")
    parser.add_argument("--repeats", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256))
    parser.add_argument("--clips", type=int, nargs="+", default=[80, 400])
    parser.add_argument("--clip-frames", type=int, default=32)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-augment", action="store_true")
    parser.add_argument("--keep", help="make (or reuse) the split files in this folder and keep them")
    args = parser.parse_args(argv)

    print(f"{os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    if not args.skip_augment:
        bench_augmentation(args.batch, args.repeats, tuple(args.size))
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_augment_"))
    try:
        bench_loader(work, args.clip_frames, tuple(args.size), 4)
        if not args.skip_memory:
            bench_memory(work, args.clips, args.clip_frames, tuple(args.size), 4)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
