"""Inference speed of UltraMNet against the 2D U-Net baseline, in the same run (issue 6).

    nice python3 benchmarks/bench_inference.py [--device cpu|cuda] [--threads 2] [--size 256]
        [--frames 100] [--rounds 3] [--batch 8] [--window 16] [--chunk 4] [--channels-last]
        [--half] [--json PATH]

(1) Streaming: ``StreamingUltraMN.step`` on 256x256 uint8 frames, one at a time, the result
    back on the host as numpy (as a live display needs it). Frames/s and p50/p95/max per-frame
    latency. Targets: CPU (2 threads) >= 30 frames/s and p95 <= 50 ms; GPU p95 <= 5 ms.
(2) Batched windows: the full-window forward on ``(batch, 1, window, 256, 256)``, frames/s.
    Target on a GPU: >= 1000 frames/s. Also: a whole clip through ``StreamingUltraMN.process``
    in chunks of ``--chunk`` frames (how pre-annotation can run a clip), frames/s.

Models are interleaved round by round, so load from other processes hits both alike; compare
the ratio, not only the absolute figures. Untrained weights (speed does not depend on them).
Per-frame CPU time (process time, all threads) is printed too: on a shared machine it is the
figure that load from other processes disturbs least. Prints; asserts nothing. ``--json PATH``
also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Idle OpenMP threads sleep instead of spinning. On a CPU shared with other processes (a scanner
# PC, this 2-core build machine) a spinning thread steals the core its partner needs; measured
# here under load: ~10x less CPU per frame. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, torch threads = {torch.get_num_threads()}"


def synthetic_frames(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Speckle-like uint8 frames with a dark round 'nerve' drifting across them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    frames = np.empty((n, size, size), np.uint8)
    for t in range(n):
        img = rng.rayleigh(60.0, (size, size))
        cy, cx = size / 2 + 20 * np.sin(t / 15), size / 2 + 20 * np.cos(t / 15)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < (size / 10) ** 2] *= 0.4
        frames[t] = np.clip(img, 0, 255)
    return frames


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def stream_latencies(model, frames: np.ndarray, args) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU seconds per streamed frame.

    CPU time is the contention-robust figure on a shared machine: it counts only the work this
    process did (all its threads), not the time it waited for a core.
    """
    from napari_ultramn.model.stream import StreamingUltraMN

    stream = StreamingUltraMN(model, device=args.device, channels_last=args.channels_last, half=args.half)
    for frame in frames[: args.warmup]:
        stream.step(frame)
    stream.reset()
    latencies, cpu = [], []
    for frame in frames:
        c0, t0 = time.process_time(), time.perf_counter()
        stream.step(frame)  # returns numpy: includes the device -> host copy
        latencies.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return latencies, cpu


def window_seconds(model, args) -> float:
    """Median seconds of one batched full-window forward (BN folded, eval, inference mode)."""
    import copy

    import torch

    from napari_ultramn.model.blocks import fold_batchnorm

    m = fold_batchnorm(copy.deepcopy(model).eval()).to(args.device)
    x = torch.rand(args.batch, 1, args.window, args.size, args.size, device=args.device)
    if args.channels_last:
        m = m.to(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode(), torch.autocast(args.device.split(":")[0], torch.float16, enabled=args.half):
        for i in range(args.batch_repeats + 2):
            sync(args.device)
            t0 = time.perf_counter()
            m(x)
            sync(args.device)
            if i >= 2:  # first calls pick kernels / warm allocators
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def clip_frames_per_s(model, frames: np.ndarray, args) -> float:
    """Whole-clip causal pass in chunks (``StreamingUltraMN.process``, as pre-annotation uses)."""
    from napari_ultramn.model.stream import StreamingUltraMN

    stream = StreamingUltraMN(model, device=args.device, channels_last=args.channels_last, half=args.half)
    stream.process(frames[: 2 * args.chunk], chunk=args.chunk)  # warm-up
    stream.reset()
    t0 = time.perf_counter()
    stream.process(frames, chunk=args.chunk)
    return len(frames) / (time.perf_counter() - t0)


def summary(latencies: list[float], cpu: list[float]) -> dict[str, float]:
    ms = np.asarray(latencies) * 1e3
    return {
        "frames_per_s": len(ms) / (ms.sum() / 1e3),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "max_ms": float(ms.max()),
        "min_ms": float(ms.min()),
        "cpu_ms_per_frame": float(np.median(cpu) * 1e3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=100, help="streamed frames per round")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--batch-repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=4, help="frames per StreamingUltraMN.process call")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--half", action="store_true", help="float16 (CUDA only)")
    parser.add_argument("--models", default="ultramn,unet2d")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    import torch

    from napari_ultramn.model.network import build_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            sys.exit("--device cuda: no CUDA device visible to torch")
        torch.backends.cudnn.benchmark = True
    names = args.models.split(",")
    models = {name: build_model(name, 5) for name in names}
    frames = synthetic_frames(args.frames, args.size)
    print(
        f"device: {device_name(args.device)}; OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']};"
        f" load average {os.getloadavg()[0]:.1f} at start"
    )
    print(
        f"frames {args.size}x{args.size}, {args.frames} streamed x {args.rounds} rounds, "
        f"channels_last={args.channels_last}, half={args.half}"
    )

    latencies: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:  # interleaved: background load hits every model alike
            wall, work = stream_latencies(models[name], frames, args)
            latencies[name] += wall
            cpu[name] += work
    results = {}
    for name in names:
        params = sum(p.numel() for p in models[name].parameters())
        s = summary(latencies[name], cpu[name])
        s["batched_frames_per_s"] = args.batch * args.window / window_seconds(models[name], args)
        s["clip_frames_per_s"] = clip_frames_per_s(models[name], frames, args)
        s["params"] = params
        results[name] = s
        print(
            f"{name:>20}: stream {s['frames_per_s']:7.1f} frames/s, p50 {s['p50_ms']:6.1f} ms,"
            f" p95 {s['p95_ms']:6.1f} ms, min {s['min_ms']:5.1f} ms, max {s['max_ms']:7.1f} ms,"
            f" CPU {s['cpu_ms_per_frame']:5.1f} ms/frame | batched "
            f"({args.batch}x{args.window}) {s['batched_frames_per_s']:8.1f} frames/s | whole clip"
            f" (chunks of {args.chunk}) {s['clip_frames_per_s']:7.1f} frames/s | "
            f"{params / 1e3:.0f}k params"
        )
    if len(names) > 1:
        base, ref = names[0], names[1]
        print(
            f"ratio {base}/{ref}: stream frames/s x"
            f"{results[base]['frames_per_s'] / results[ref]['frames_per_s']:.2f}, p95 x"
            f"{results[base]['p95_ms'] / results[ref]['p95_ms']:.2f}, batched x"
            f"{results[base]['batched_frames_per_s'] / results[ref]['batched_frames_per_s']:.2f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "device": device_name(args.device),
                    "load_average": os.getloadavg(),
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "results": results,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
