"""A cohort benchmark (issue 16): how each step grows with the number of clips, extrapolated to
5,000 clips x 60 frames of 256 x 256 x 3 raters on 2 and 16 cores. Prints; asserts nothing.

    python3 benchmarks/bench_cohort.py [--sizes 100 400 1600] [--frames 16] [--size 64 64]
                                       [--workers 2] [--quick] [--keep DIR]
    python3 benchmarks/bench_cohort.py --ingest-scaling 400      # only the 1 -> 2 worker ingest
    python3 benchmarks/bench_cohort.py --report-from R.json      # re-print a saved run (--json R.json)

1. Growth series: phantom studies of growing size (default 100, 400, 1,600 clips; 8 clips per
   participant; small frames so the largest runs here in minutes), each step run as its own
   process (the ``ultramn`` commands, ``--workers W``): ingest, simulated raters (3), agreement
   (``--bootstrap 20``), build-dataset, validate-dataset, one epoch of loading (``ClipWindowDataset``
   through a ``DataLoader`` with W workers). Per step: wall seconds, CPU seconds (the process and its
   workers) and the peak RSS of the step's process and of its largest worker (``getrusage``).
   The growth exponent of each step is the log-log slope of its time against the clips.
2. Worker scaling: ingest of the middle study with 1 and with W workers (the issue's figure: 400
   clips, >= 1.7x from 1 to 2 workers), and every step on a calibration study at the target frame
   geometry (16 clips of 60 frames, about 256 x 256 once cropped) with 1 and W workers.
   Times are turned into what a quiet machine would take (:func:`quiet_s`: the larger of the
   step's own CPU seconds and all its CPU shared among W cores), so other users' load does not pass for poor
   scaling; Amdahl's law on that speedup gives each step's parallel share p, hence 16 cores.
3. Extrapolation: per step, the calibration's CPU seconds in one process grown to 5,000 clips by
   the series' slope (at least 1: every clip is read) and to 60 x 256 x 256 by pixels per clip; on k cores, Amdahl with the serial
   share measured on the calibration (the step's own process's CPU with W workers over all the CPU
   with one, so pool start-up does not pass for serial work), plus the start-up; memory: the
   calibration's peak grown by the RSS slope. Goals: no step over 15 minutes on 16 cores, no process over 4 GB.

On a machine shared with other work the wall-clock speedup measures the others too; the CPU
seconds and the load average printed beside each figure say how much. Rerun it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = dict(clips=5000, frames=60, height=256, width=256, raters=3)
STEPS = ("ingest", "raters", "agreement", "build", "validate", "load")
GOAL_S, GOAL_RSS_MB = 15 * 60, 4096


# -- one step, in its own process ----------------------------------------------------------------
def run_step(step: str, work: Path, workers: int) -> dict:
    """Run ``step`` in a fresh process (this script with ``--step``); its times and peak RSS."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--step",
        step,
        "--work",
        str(work),
        "--workers",
        str(workers),
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode not in (0, 1):  # 1: a PHI audit hit would say so; the step still ran
        raise SystemExit(f"{step} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _step_main(step: str, work: Path, workers: int) -> None:
    """Inside the step's process: do it, then print one JSON line of measurements."""
    import importlib

    from napari_ultramn.cli import main

    w = ["--workers", str(workers), "-q"]
    for module in _IMPORTS[step]:  # imports are start-up, not the step's work
        importlib.import_module(module)
    t0 = time.perf_counter()
    c0 = resource.getrusage(resource.RUSAGE_SELF)
    if step == "ingest":
        main(["ingest", str(work / "study" / "dicom"), str(work / "project"), *w])
    elif step == "raters":
        from dataset_tools.simulate_raters import simulate_raters
        from napari_ultramn.progress import run_to_end
        from napari_ultramn.project import Project

        run_to_end(simulate_raters(Project.open(work / "project"), work / "study", workers=workers))
    elif step == "agreement":
        main(["agreement", str(work / "project"), "--out", str(work / "agreement"), "--bootstrap", "20", *w])
    elif step == "build":
        main(["build-dataset", str(work / "project"), str(work / "dataset"), "--overwrite", "--min-frames", "8", *w])
    elif step == "validate":
        main(["validate-dataset", str(work / "dataset"), *w])
    elif step == "load":
        _one_epoch(work / "dataset" / "train.h5", workers)
    wall = time.perf_counter() - t0
    from napari_ultramn.parallel import stop_fork_server

    stop_fork_server()  # reaped, so the pool workers (its children) are counted below
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    parent = me.ru_utime + me.ru_stime - c0.ru_utime - c0.ru_stime
    print(
        json.dumps(
            {
                "wall_s": wall,
                "parent_cpu_s": parent,
                "cpu_s": parent + kids.ru_utime + kids.ru_stime,
                "rss_mb": me.ru_maxrss / 1024,
                "worker_rss_mb": kids.ru_maxrss / 1024,
            }
        )
    )


_IMPORTS = {
    "ingest": ["dataset_tools.ingest", "napari_ultramn.io.dicom"],
    "raters": ["dataset_tools.simulate_raters"],
    "agreement": ["dataset_tools.agreement.project_report", "dataset_tools.agreement.figures"],
    "build": ["dataset_tools.build", "dataset_tools.consensus"],
    "validate": ["dataset_tools.validate"],
    "load": ["torch", "napari_ultramn.model.loader", "napari_ultramn.model.augment"],
}


def quiet_s(r: dict, workers: int) -> float:
    """What the step would take on a quiet machine with ``workers`` free cores, from its CPU
    seconds: the larger of the step's own process's CPU (the parent writes result i while the
    workers compute the next) and all the CPU shared among the cores; with one worker everything
    runs in the step's process. Waiting on the disk is not counted (page cache, quiet disk)."""
    if workers == 1:
        return r["cpu_s"]
    return max(r["parent_cpu_s"], r["cpu_s"] / workers)


def _one_epoch(train_h5: Path, workers: int) -> None:
    from torch.utils.data import DataLoader

    from napari_ultramn.model.augment import Augment, epoch_generator
    from napari_ultramn.model.loader import ClipWindowDataset, batch_to_float

    # as training does: the loader reads uint8 windows, the batch is augmented on the device (CPU here)
    ds = ClipWindowDataset(train_h5, window=8, stride=8)
    augment, generator = Augment(), epoch_generator(0, 0)
    for batch in DataLoader(ds, batch_size=4, shuffle=True, num_workers=workers):
        batch_to_float(batch, "cpu", augment=augment, generator=generator)


# -- studies ---------------------------------------------------------------------------------------
def make_study(work: Path, clips: int, frames: int, size) -> None:
    from napari_ultramn.phantom.study import write_study
    from napari_ultramn.progress import run_to_end

    if work.exists():
        shutil.rmtree(work)
    run_to_end(write_study(work / "study", participants=max(1, clips // 8), n_frames=frames, size=tuple(size)))


def run_all(work: Path, workers: int, steps=STEPS) -> dict:
    """Every step on the study in ``work``, from a fresh project (a re-ingest would skip all)."""
    shutil.rmtree(work / "project", ignore_errors=True)
    return {step: run_step(step, work, workers) for step in steps}


def pixels_per_clip(work: Path) -> float:
    from napari_ultramn.project import Project

    recs = Project.open(work / "project").clips()
    return sum(r["n_frames"] * r["frame_shape"][0] * r["frame_shape"][1] for r in recs) / len(recs)


def slope(xs, ys) -> float:
    """Least-squares slope of log(y) on log(x)."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-6)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / den if den else 1.0


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 400, 1600], help="clips per study")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, nargs=2, default=(64, 64), help="phantom frame size H W")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="sizes 8 16 32 and 8 calibration clips: a fast look")
    ap.add_argument(
        "--ingest-scaling",
        type=int,
        metavar="N",
        help="only the ingest of an N-clip study with 1 and --workers workers (the issue: 400)",
    )
    ap.add_argument("--json", help="also save the measurements here (re-print with --report-from)")
    ap.add_argument("--report-from", help="print the extrapolation from a --json file, measure nothing")
    ap.add_argument("--keep", help="keep the work folders here")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.step:
        return _step_main(args.step, Path(args.work), args.workers)
    if args.report_from:
        saved = json.loads(Path(args.report_from).read_text())
        series = {int(n): r for n, r in saved["series"].items()}
        cal = {int(k): r for k, r in saved["cal"].items()}
        return _report(
            series, sorted(series), cal, saved["workers"], saved["cal_pixels"], saved["n_cal"], saved["ingest_speedup"]
        )
    sizes = [8, 16, 32] if args.quick else args.sizes
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_cohort_"))
    w = args.workers
    print(
        f"{len(os.sched_getaffinity(0))} cores for this process, {os.cpu_count()} on the machine; "
        f"{_load()}; steps with --workers {w}"
    )
    try:
        if args.ingest_scaling:
            make_study(base / "scaling", args.ingest_scaling, args.frames, args.size)
            _ingest_scaling(base / "scaling", args.ingest_scaling, w)
            return
        series = {}
        for n in sizes:
            work = base / f"n{n}"
            make_study(work, n, args.frames, args.size)
            series[n] = run_all(work, w)
            print(
                f"{n:5d} clips x {args.frames} frames, wall (CPU) s: "
                + "  ".join(f"{s} {r['wall_s']:.1f} ({r['cpu_s']:.1f})" for s, r in series[n].items())
                + f"  ({_load()})",
                flush=True,
            )
        mid = sizes[len(sizes) // 2]
        scaling_ingest = _ingest_scaling(base / f"n{mid}", mid, w)
        calib, n_cal = base / "calib", 8 if args.quick else 16
        make_study(calib, n_cal, TARGET["frames"], (320, 300))
        cal = {k: run_all(calib, k) for k in (1, w)}
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "series": series,
                        "cal": cal,
                        "workers": w,
                        "cal_pixels": pixels_per_clip(calib),
                        "n_cal": n_cal,
                        "ingest_speedup": scaling_ingest,
                    },
                    indent=1,
                )
            )
        _report(series, sizes, cal, w, pixels_per_clip(calib), n_cal, scaling_ingest)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def _ingest_scaling(work: Path, n: int, w: int) -> float:
    """Ingest of the study with 1 and ``w`` workers; the speedup a quiet machine would see."""
    r = {}
    for k in (1, w):
        shutil.rmtree(work / "project", ignore_errors=True)
        r[k] = run_step("ingest", work, k)
    wall = r[1]["wall_s"] / r[w]["wall_s"]
    quiet = quiet_s(r[1], 1) / quiet_s(r[w], w)
    print(
        f"ingest of {n} phantom clips, 1 vs {w} workers: wall {r[1]['wall_s']:.1f} s vs {r[w]['wall_s']:.1f} s "
        f"= {wall:.2f}x under this load; CPU {r[1]['cpu_s']:.1f} s vs {r[w]['cpu_s']:.1f} s "
        f"(parent {r[w]['parent_cpu_s']:.1f} s) = {quiet:.2f}x on {w} quiet cores "
        f"(goal >= 1.7x from 1 to 2); 16 workers: {quiet_s(r[1], 1) / quiet_s(r[w], 16):.1f}x "
        f"(the parent's own CPU is the floor); {_load()}"
    )
    return quiet


def line_fit(xs, ys) -> tuple[float, float]:
    """Intercept and slope of the least-squares straight line of ys on xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    m = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0
    return my - m * mx, m


def _report(series, sizes, cal, w, cal_pixels, n_cal, ingest_speedup) -> None:
    target_pixels = TARGET["frames"] * TARGET["height"] * TARGET["width"]
    grow_n = TARGET["clips"] / n_cal
    print(
        f"\nextrapolated to {TARGET['clips']} clips x {TARGET['frames']} frames of "
        f"{TARGET['height']}x{TARGET['width']} x {TARGET['raters']} raters, from a calibration study of "
        f"{n_cal} clips of {cal_pixels / TARGET['frames']:.0f} pixels per frame (x "
        f"{target_pixels / cal_pixels:.2f} to the target); CPU-based quiet-machine times"
    )
    print(
        f"{'step':<10}{'start s':>8}{'slope':>7}{'serial':>8}{'cal 1->' + str(w):>10}{'1 core':>9}"
        f"{'2 cores':>9}{'16 cores':>10}{'peak RSS':>10}  goals (16 cores: <= 15 min, <= 4 GB)"
    )
    for step in STEPS:
        total = [series[n][step]["cpu_s"] for n in sizes]
        start, per_clip = line_fit(sizes, total)
        start = min(max(0.0, start), 0.9 * min(total))
        # the share of the calibration's work that the step's own process does with workers beside
        # it (registry, copying into the split files, statistics, the PHI audit): what more
        # workers cannot shorten (Amdahl); pool start-up is the workers', so it does not count
        serial = min(1.0, cal[w][step]["parent_cpu_s"] / max(cal[1][step]["cpu_s"], 1e-6))
        # growth of all the CPU with clips: the start-up flattens it on small series (flagged '*'),
        # and the slope of what is left after the intercept is too noisy there to extrapolate from
        b = slope(sizes, total)
        flag = "*" if start > 0.25 * min(total) else " "
        b_rss = slope(sizes, [max(series[n][step]["rss_mb"], series[n][step]["worker_rss_mb"]) for n in sizes])
        # every clip is read, so no step grows slower than linearly, whatever a small series says
        t1 = cal[1][step]["cpu_s"] * grow_n ** max(1.0, b) * target_pixels / cal_pixels  # one process
        t2, t16 = (start + t1 * (serial + (1 - serial) / k) for k in (2, 16))
        cal_speedup = quiet_s(cal[1][step], 1) / quiet_s(cal[w][step], w)
        cal_rss = max(cal[w][step]["rss_mb"], cal[w][step]["worker_rss_mb"])
        rss = cal_rss * grow_n ** max(0.0, b_rss)  # grown with the clips by the series' RSS slope
        ok = ("ok" if t16 <= GOAL_S else "OVER 15 min") + ", " + ("ok" if rss <= GOAL_RSS_MB else "OVER 4 GB")
        print(
            f"{step:<10}{start:8.1f}{b:6.2f}{flag}{serial:8.2f}{cal_speedup:9.2f}x{t1 / 60:7.1f}mn{t2 / 60:7.1f}mn"
            f"{t16 / 60:8.1f}mn{rss / 1024:8.2f}GB  {ok}"
        )
    print(
        "start s: CPU seconds that do not grow with clips (intercept; pool start-up); slope: log-log "
        "growth of the step's CPU with clips (1 = linear; *: start-up is over a quarter of the "
        "smallest study's, so the slope is low: rerun with larger --sizes; the extrapolation uses at least 1); serial: the step's own process's CPU with "
        f"{w} workers over all the CPU with 1 (calibration), which Amdahl's law keeps on 2 and 16 cores; cal 1->W: the "
        "calibration study's quiet-machine speedup (start-up included); 1 core: the calibration's "
        f"CPU grown to the target; ingest 1->{w} on the middle study: {ingest_speedup:.2f}x; {_load()}"
    )


if __name__ == "__main__":
    main()
