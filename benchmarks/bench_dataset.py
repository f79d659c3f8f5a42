"""Dataset figures (issue 5). Prints; asserts nothing.

    nice python3 benchmarks/bench_dataset.py [--participants 6] [--frames 64] [--size 256 256]
                                             [--epochs 2] [--workers 2] [--stride 4]
                                             [--build-workers 1 2] [--repeat 1] [--no-loader]

(1) Build throughput: ``build_dataset`` (labels from one rater, native size) against writing the
    same arrays (frames, masks, per-frame labels) with ``numpy.save`` in the same run; goal >= 0.5x.
    Printed per frame compression (zstd, the default; lz4; gzip; lzf; none) with the file size
    against the raw arrays. The build time includes reading the project clips, decoding and
    checking the annotations, checksums and the fsync that makes the dataset durable before its
    manifest says it is complete; the numpy.save time is the write alone, from arrays already in
    memory, which lands in the page cache at memory speed. So three ratios are printed:
      build / numpy.save                 the goal as written;
      build / (numpy.save + fsync)       like with like: both leave the arrays on disk;
      HDF5 write alone / numpy.save + fsync: the same in-memory arrays through ``write_clip``
                                         plus fsync, i.e. what the file format itself costs.
(1b) Build on every core (issue 16): the default build (zstd, labels from one rater, 256 x 256)
    with ``--build-workers`` 1 and 2 (the first is the baseline), frames/s wall-clock and what two
    quiet cores would give from the CPU seconds (the larger of the build's own process and all
    CPU shared between the cores; the pool's start-up included);
    goal >= 1,500 frames/s on 2 cores. ``--repeat N`` runs the list N times, interleaved, and
    prints the medians. Then the PHI audit of the built dataset with as many workers (what
    ``ultramn build-dataset`` runs after the build; its burned-text search of every frame stack
    is most of the command's time), and build + audit as frames/s of the whole command.
    The project clips carry fingerprints, as ingested ones do (else the build computes them).
(2) Training-loader throughput: ``napari_ultramn.model.loader.ClipWindowDataset`` (16-frame uint8
    windows at 256 x 256, read and decompressed only) through ``DataLoader(num_workers=2,
    batch_size=4, shuffle=True)``, frames per second after the first batch. Printed for each build, as wall-clock
    throughput and as frames per CPU-second (workers included) - on a shared machine the wall
    figure measures the other users, the CPU figure x 2 is what two free cores would give. Items
    are uint8 windows; augmentation runs batched on the training device (``bench_augment.py``).

The synthetic project (tests/project_factory.py) has spatially correlated speckle, which is about
as compressible as real B-mode; timings on a shared machine vary, so run it more than once.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _dir_bytes(folder: Path, suffix: str) -> int:
    return sum(p.stat().st_size for p in folder.glob(f"*{suffix}"))


def bench_build_workers(project, work: Path, workers_list, repeat: int = 1) -> None:
    """The default build with 1 and more workers: wall and quiet-machine frames/s (issue 16),
    then the PHI audit of the result; medians over ``repeat`` interleaved rounds."""
    import resource
    import statistics

    from dataset_tools.build import build_dataset
    from dataset_tools.phi_audit import audit_paths, load_identifiers
    from napari_ultramn.parallel import stop_fork_server
    from napari_ultramn.progress import run_to_end

    def cpu(who):
        r = resource.getrusage(who)
        return r.ru_utime + r.ru_stime

    def timed(gen, workers):
        p0, c0, t0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
        result = run_to_end(gen)
        wall = time.perf_counter() - t0
        stop_fork_server()  # so its workers' CPU is counted in RUSAGE_CHILDREN (start-up included)
        parent, kids = cpu(resource.RUSAGE_SELF) - p0, cpu(resource.RUSAGE_CHILDREN) - c0
        # the parent copies clip i into its split file while the workers make the next ones, so
        # on quiet cores the build takes the larger of its own CPU and everyone's CPU shared
        quiet = parent + kids if workers == 1 else max(parent, (parent + kids) / workers)
        return result, wall, parent, kids, quiet

    identifiers = load_identifiers(project.root)
    base, rounds = None, {w: [] for w in workers_list}
    for _ in range(repeat):
        for workers in workers_list:
            out = work / f"ds_workers{workers}"
            manifest, wall, parent, kids, quiet = timed(
                build_dataset(project, out, rater="r1", min_frames=16, workers=workers), workers
            )
            frames = sum(c["n_frames"] for c in manifest["clips"])
            base = base or frames / quiet
            print(
                f"build  zstd {workers} worker(s): {frames} frames in {wall:5.2f} s = {frames / wall:5.0f} frames/s "
                f"wall; CPU {parent:.2f} s here + {kids:.2f} s in workers -> {frames / quiet:5.0f} frames/s on "
                f"{workers} quiet core(s) (goal >= 1500 on 2; {frames / quiet / base:.2f}x the 1-worker build); "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            _, a_wall, a_parent, a_kids, a_quiet = timed(audit_paths([out], identifiers, workers=workers), workers)
            print(
                f"audit  of it, {workers} worker(s): {a_wall:5.2f} s = {frames / a_wall:5.0f} frames/s wall, "
                f"CPU {a_parent:.2f} + {a_kids:.2f} s -> {frames / a_quiet:5.0f} frames/s quiet; build + audit "
                f"(the command): {frames / (wall + a_wall):5.0f} frames/s wall, "
                f"{frames / (quiet + a_quiet):5.0f} quiet",
                flush=True,
            )
            rounds[workers].append((frames / wall, frames / quiet, frames / (wall + a_wall)))
            shutil.rmtree(out)
    if repeat > 1:
        for workers, runs in rounds.items():
            wall, quiet, command = (statistics.median(r[i] for r in runs) for i in range(3))
            print(
                f"median of {repeat}, {workers} worker(s): build {wall:5.0f} frames/s wall, {quiet:5.0f} on quiet "
                f"cores; build + audit {command:5.0f} frames/s wall"
            )


def with_fingerprints(project) -> None:
    """Store each clip's fingerprint in its record, as ingest does."""
    from dataset_tools.fingerprint import clip_fingerprint

    project.upsert_clips(
        [
            {**r, "fingerprint": clip_fingerprint(project.open_clip(r["clip_id"]).to_array())}
            for r in project.clips()
            if not r.get("fingerprint")
        ]
    )


def bench_build(project, work: Path, compression):
    from dataset_tools.build import build_dataset
    from napari_ultramn.atomic import fsync_files
    from napari_ultramn.progress import run_to_end

    out = work / f"ds_{compression or 'none'}"
    t0 = time.perf_counter()
    run_to_end(build_dataset(project, out, rater="r1", min_frames=16, compression=compression))
    t_build = time.perf_counter() - t0

    # the same arrays, in memory, then written with numpy.save
    import h5py

    arrays = []
    for s in ("train", "validation", "test"):
        with h5py.File(out / f"{s}.h5", "r") as fh:
            for g in fh["clips"].values():
                arrays.append({k: g[k][()] for k in ("frames", "masks", "plane_labels", "provenance", "annotated")})
    raw_bytes = sum(a.nbytes for d in arrays for a in d.values())
    npy = work / f"npy_{compression or 'none'}"
    npy.mkdir()
    t0 = time.perf_counter()
    for i, d in enumerate(arrays):
        for k, a in d.items():
            np.save(npy / f"{i}_{k}.npy", a)
    t_save = time.perf_counter() - t0
    fsync_files(npy.glob("*.npy"))
    t_durable = time.perf_counter() - t0
    # the HDF5 write alone (same arrays, same layout and compression), without labels and reads
    t_write = _write_only(arrays, work / f"write_{compression or 'none'}.h5", compression)
    frames = sum(d["frames"].shape[0] for d in arrays)
    h5_bytes = _dir_bytes(out, ".h5")
    print(
        f"build  compression={compression or 'none':5s} {frames} frames: build {t_build:5.2f} s "
        f"({frames / t_build:5.0f} frames/s); HDF5 write alone + fsync {t_write:5.3f} s; "
        f"numpy.save {t_save:5.3f} s, + fsync {t_durable:5.3f} s -> ratios (goal >= 0.5x): "
        f"build/save {t_save / t_build:.2f}x, build/(save+fsync) {t_durable / t_build:.2f}x, "
        f"write alone/(save+fsync) {t_durable / t_write:.2f}x; size {h5_bytes / 1e6:.1f} MB = "
        f"{h5_bytes / raw_bytes:.2f}x raw ({raw_bytes / 1e6:.1f} MB)",
        flush=True,
    )
    shutil.rmtree(npy)
    return out


def _write_only(arrays, path: Path, compression) -> float:
    import h5py

    from dataset_tools.build import write_clip
    from dataset_tools.labels import ClipLabels
    from napari_ultramn.atomic import fsync_files

    t0 = time.perf_counter()
    with h5py.File(path, "w") as fh:
        for i, d in enumerate(arrays):
            n = d["frames"].shape[0]
            labels = ClipLabels(d["masks"].astype(bool), d["annotated"], [None] * n, None, "ok", d["provenance"], 1)
            write_clip(
                fh,
                {"clip_id": f"c{i}", "participant": "P"},
                d["frames"],
                labels,
                vocabulary=["a"],
                spacing=None,
                label_source="bench",
                compression=compression,
            )
    fsync_files([path])
    dt = time.perf_counter() - t0
    path.unlink()
    return dt


def bench_loader(folder: Path, workers: int, epochs: int, stride: int, window: int = 16, batch: int = 4):
    """The training loader alone: read and decompress uint8 windows (augmentation runs batched on
    the training device since issue 16; its figures are in ``bench_augment.py``)."""
    import torch
    from torch.utils.data import DataLoader

    from napari_ultramn.model.loader import ClipWindowDataset

    ds = ClipWindowDataset(folder / "train.h5", window=window, stride=stride)
    name = folder.name
    _per_window_cpu(ds, name)
    n_frames, n_batches, t_start = 0, 0, None
    cpu0 = _cpu_seconds()
    loader = DataLoader(
        ds, batch_size=batch, shuffle=True, num_workers=workers, generator=torch.Generator().manual_seed(0)
    )
    for _epoch in range(epochs):
        for b in loader:
            n_batches += 1
            if t_start is None:  # after the first batch: worker start-up is not throughput
                t_start = time.perf_counter()
                continue
            n_frames += b["frames"].shape[0] * b["frames"].shape[2]
    dt = time.perf_counter() - t_start
    del b, loader
    gc.collect()
    cpu = _cpu_seconds() - cpu0
    total = n_frames + batch * window  # the first batch was not timed but its CPU was spent
    shape = tuple(ds[0]["frames"].shape)
    print(
        f"loader {name}: {len(ds)} windows {shape} uint8, {workers} workers, {n_batches} batches: "
        f"{n_frames / dt:7.0f} frames/s wall; {total / cpu:6.0f} frames per CPU-second "
        f"= {2 * total / cpu:6.0f} frames/s if 2 cores were free for it"
    )


def _per_window_cpu(ds, name: str, n: int = 24) -> None:
    """CPU cost of one window in this process (1 thread): the read, then the whole item."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    n = min(n, len(ds))
    ds[0]
    t0 = time.process_time()
    for i in range(n):
        ds.read_window(*ds.windows[i])
    t_read = (time.process_time() - t0) / n
    t0 = time.process_time()
    for i in range(n):
        ds[i]
    t_item = (time.process_time() - t0) / n
    torch.set_num_threads(threads)
    ds.close()
    print(
        f"window {name}: CPU per 16-frame window {t_read * 1e3:5.1f} ms read + "
        f"{max(t_item - t_read, 0.0) * 1e3:5.1f} ms the rest of the item = {t_item * 1e3:5.1f} ms -> "
        f"{2 * ds.window / t_item:6.0f} frames/s on 2 free cores"
    )


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=6)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stride", type=int, default=4, help="loader window stride (default 4)")
    parser.add_argument(
        "--build-workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="build with each of these worker counts (default 1 2)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the worker builds; medians printed")
    parser.add_argument("--no-loader", action="store_true", help="skip the loader figures")
    parser.add_argument("--keep", help="keep the work folder here")
    args = parser.parse_args(argv)

    from tests.project_factory import make_project

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_dataset_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        project = make_project(
            work / "project",
            n_participants=args.participants,
            n_frames=args.frames,
            frame_shape=tuple(args.size),
            raters=("r1",),
        )
        print(
            f"project: {len(project.clips())} clips of {args.frames} frames at "
            f"{args.size[0]}x{args.size[1]} ({time.perf_counter() - t0:.1f} s to make); "
            f"{os.cpu_count()} CPUs visible"
        )
        with_fingerprints(project)
        bench_build_workers(project, work, args.build_workers, args.repeat)
        if args.no_loader:
            return
        built = {c: bench_build(project, work, c) for c in ("zstd", "lz4", "gzip", "lzf", None)}
        for c in ("zstd", "lz4", "gzip", "lzf", None):
            bench_loader(built[c], args.workers, args.epochs, args.stride)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
