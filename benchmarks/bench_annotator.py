"""Figures of issue 11 ("Fast"): clip switch time and widget vs core propagation/interpolation.

A real napari viewer (1366x768) with the Annotator dock on a small phantom project. Prints medians
and ratios measured in the same run; never asserts. Run under a display, e.g.

    xvfb-run -a -s "-screen 0 1366x768x24" nice python3 benchmarks/bench_annotator.py
    ... bench_annotator.py --clips 6 --frames 64 --size 256 320 --repeats 5

* Clip switch: the time from "open the next clip" until the viewer has drawn it, cold (no
  prefetch: the clip is decoded on demand, frame by frame as napari shows it) and with the next
  clip of the queue prefetched in the background (the widget's default).
* Propagation over 31 frames (keyframes at 0 and 31; frames 1-30 propagated from 0 with 31 as
  the second anchor) and interpolation between the same keyframes: the core
  (``AnnotationSession.propagation`` run to its end + ``accept_propagation``;
  ``AnnotationSession.interpolate``; with the autosave flushed) against the widget doing the
  same through its own path (worker thread, preview layer, accept, layers, measurement table, track, queue) until the
  event loop is idle again. Core and widget runs alternate, so load on a shared machine hits both.
* The window's composites. napari's canvas is an OpenGL widget, so Qt composites the *whole*
  window through OpenGL on every repaint, whatever changed: 7-12 ms of CPU rasterising with
  Xvfb's software renderer at 1366x768 (llvmpipe on every core), well under 1 ms on a GPU. Any
  action that shows its result pays at least one. The time napari's main window spends in its
  repaints (Qt's UpdateRequest: painting and compositing) is clocked during each widget run, and
  "widget less the window's composites" is the ratio without it: the widget's own work against
  the core's. "one repaint of napari's window" is a label repainted with the same text, for scale.

Runs on a checkout without prefetch too (prints "n/a"), so the figures before and after can be
compared on one machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from napari_ultramn import DEFAULT_PLANES  # noqa: E402
from napari_ultramn.io.hdf5clip import write_hdf5_clip  # noqa: E402
from napari_ultramn.phantom import generate_clip  # noqa: E402
from napari_ultramn.progress import run_to_end  # noqa: E402
from napari_ultramn.project import Project  # noqa: E402


def make_phantom_project(root: Path, n_clips: int, n_frames: int, size) -> tuple[Project, dict]:
    """``n_clips`` phantom clips (planes cycled, seeded); returns the project and the true masks."""
    project = Project.create(root)
    records, truth = [], {}
    for i in range(n_clips):
        plane = DEFAULT_PLANES[i % len(DEFAULT_PLANES)]
        clip = generate_clip(plane, seed=i, n_frames=n_frames, size=tuple(size))
        clip_id = f"clip{i:02d}"
        meta = {
            "clip_id": clip_id,
            "participant": f"P{i // 2:03d}",
            "plane": plane,
            "spacing_mm": clip.spacing_mm,
            "spacing_source": "stored",
            "frame_time_ms": clip.frame_time_ms,
            "source_sha256": f"{i:064x}",
        }
        write_hdf5_clip(project.root / "clips" / f"{clip_id}.h5", clip.frames, meta)
        records.append(
            {
                "clip_id": clip_id,
                "file": f"clips/{clip_id}.h5",
                "participant": meta["participant"],
                "side": "left",
                "plane": plane,
                "source_sha256": meta["source_sha256"],
                "n_frames": n_frames,
                "frame_shape": list(clip.frames.shape[1:]),
                "spacing_mm": list(clip.spacing_mm),
                "spacing_source": "stored",
            }
        )
        truth[clip_id] = clip.masks
    project.upsert_clips(records)
    return project, truth


def settle(app, until=None, timeout_s: float = 60.0) -> None:
    """Run Qt's event loop until ``until()`` holds (if given), then until the queue is empty.

    A real event loop (``QEventLoop.exec``), checked every 5 ms: it waits in Qt without holding
    Python's GIL, as the running application does, so a worker thread is not slowed by polling.
    """
    from qtpy.QtCore import QEventLoop, QTimer

    if until is not None and not until():
        loop, poll = QEventLoop(), QTimer()
        poll.setInterval(5)
        poll.timeout.connect(lambda: until() and loop.quit())
        QTimer.singleShot(int(1000 * timeout_s), loop.quit)
        poll.start()
        loop.exec()
        poll.stop()
    for _ in range(3):
        app.processEvents()


class Clock:
    """Wall time and this process's CPU time (all threads; steadier on a shared machine)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def timed(fn, app, until=None) -> tuple[float, float]:
    clock = Clock()
    fn()
    settle(app, until)
    return clock.stop()


class WindowComposites:
    """Seconds napari's main window spends in its repaints (Qt's UpdateRequest event: the widgets'
    painting and the OpenGL composite of the whole window). Wraps the window class's ``event``
    (installed before the viewer is made); ``seconds`` is None on a napari without that method."""

    def __init__(self):
        self.seconds: float | None = None
        try:
            from napari._qt.qt_main_window import _QtMainWindow
            from qtpy.QtCore import QEvent
        except ImportError:
            return
        original = _QtMainWindow.__dict__.get("event")
        if original is None:
            return
        self.seconds = 0.0
        update = QEvent.Type.UpdateRequest

        def event(window, e):
            if e.type() != update:
                return original(window, e)
            start = time.perf_counter()
            try:
                return original(window, e)
            finally:
                self.seconds += time.perf_counter() - start

        _QtMainWindow.event = event

    def during(self, fn) -> tuple[object, float]:
        """``fn()`` and the composite seconds it caused (0.0 when they cannot be clocked)."""
        before = self.seconds or 0.0
        result = fn()
        return result, (self.seconds or 0.0) - before


def summary(times: list[tuple[float, float]]) -> str:
    wall, cpu = [t[0] for t in times], [t[1] for t in times]
    return (
        f"median {1000 * statistics.median(wall):7.1f} ms (min {1000 * min(wall):.1f}), "
        f"CPU {1000 * statistics.median(cpu):7.1f} ms"
    )


def bench_switch(w, app, ids: list[str], repeats: int) -> None:
    prefetch = getattr(w, "prefetch", None)

    def switch_times(use_prefetch: bool) -> list[float]:
        times = []
        for k in range(repeats):
            target = ids[(k + 1) % len(ids)]
            if use_prefetch:
                prefetch.want([target])
                prefetch.wait(timeout_s=60)  # a rater looks at a clip for far longer than a decode
            gc.collect()
            times.append(timed(lambda t=target: w.open_clip(t), app))
            if use_prefetch:
                prefetch.want([])
        return times

    enabled = getattr(w, "prefetch_enabled", None)
    if prefetch is not None:
        w.prefetch_enabled = False
    cold = switch_times(False)
    print(f"clip switch, cold (decode on demand):   {summary(cold)}")
    if prefetch is None:
        print("clip switch, next clip prefetched:      n/a (this checkout has no prefetch)")
        return
    warm = switch_times(True)
    w.prefetch_enabled = enabled
    print(f"clip switch, next clip prefetched:      {summary(warm)}")


def bench_fill(w, app, truth, clip_id: str, repeats: int, composites: WindowComposites) -> None:
    """Propagation and interpolation, core vs widget, over frames 0..31 of ``clip_id``."""
    w.prefetch_enabled = False  # its decoding thread would count in the CPU time here
    w.open_clip(clip_id)
    settle(app)
    if getattr(w, "prefetch", None) is not None:
        w.prefetch.want([])
    s = w.session
    for t in (0, 31):
        w._do(lambda s, t=t: s.set_mask(t, truth[clip_id][t]))
    settle(app)

    def core_propagate():
        result = run_to_end(s.propagation(0, 1))
        s.accept_propagation(result)
        s.flush()  # the save is part of the work, in both: the widget's is flushed too

    def widget_propagate():
        w.go_to_frame(0)
        settle(app)
        clock = Clock()
        w.propagate(1)
        settle(app, until=lambda: w._worker is None and w.pending is not None)
        w.key_accept()
        settle(app)
        s.flush()
        return clock.stop()

    def core_interpolate():
        s.interpolate()
        s.flush()

    def widget_interpolate():
        w.key_interpolate()
        settle(app)
        s.flush()

    rows = {}
    for name, core, widget in (
        ("propagation, 30 frames (0 -> 31)", core_propagate, widget_propagate),
        ("interpolation, 30 frames (0 .. 31)", core_interpolate, lambda: timed(widget_interpolate, app)),
    ):
        c, g, own, comp = [], [], [], []
        for _ in range(repeats):
            gc.collect()
            clock = Clock()
            core()
            c.append(clock.stop())
            w.undo()  # back to the two keyframes, through the widget so the layers follow
            settle(app)
            s.flush()
            gc.collect()
            times, composite = composites.during(widget)
            g.append(times)
            comp.append(composite)
            own.append(times[0] - composite)
            w.undo()
            settle(app)
            s.flush()
        rows[name] = [(statistics.median(x[i] for x in c), statistics.median(x[i] for x in g)) for i in (0, 1)]
        rows[name].append((statistics.median(own), statistics.median(comp)))
    # The least that showing anything costs in this window: napari's canvas is a QOpenGLWidget, so
    # Qt composites the whole window through OpenGL on every repaint, whatever changed (a software
    # renderer under Xvfb: several ms). The core shows nothing; the widget must show its result.
    frame = statistics.median(timed(w.frame_label.update, app)[0] for _ in range(max(repeats, 5)))
    for name, ((c, g), (cc, gc_), (own, comp)) in rows.items():
        less = f"{own / c:5.2f} (composites {1000 * comp:.1f} ms)" if composites.seconds is not None else "n/a"
        print(
            f"{name:36s} core {1000 * c:7.1f} ms   widget {1000 * g:7.1f} ms   widget/core {g / c:5.2f}"
            f"   (CPU: core {1000 * cc:.1f} ms, widget {1000 * gc_:.1f} ms, ratio {gc_ / max(cc, 1e-9):.2f})"
            f"   widget less the window's composites: {less}"
        )
    print(f"one repaint of napari's window (one label, same text): {1000 * frame:.1f} ms")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", type=int, nargs=2, default=(256, 320), metavar=("H", "W"))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    os.environ.pop("ULTRAMN_SYNC_WORKERS", None)  # the threaded path a person gets

    import napari
    from qtpy.QtWidgets import QApplication

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        project, truth = make_phantom_project(Path(tmp) / "proj", args.clips, max(args.frames, 32), args.size)
        print(
            f"# {args.clips} phantom clips of {max(args.frames, 32)} frames {args.size[0]}x{args.size[1]} "
            f"(built in {time.perf_counter() - t0:.1f} s); {args.repeats} repeats; "
            f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
        )
        composites = WindowComposites()  # before the window is made
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1366, 768)
        app = QApplication.instance()
        _dock, w = viewer.window.add_plugin_dock_widget("napari-ultramn", "Annotator")
        w.open_project(project.root, rater="bench")
        settle(app)
        ids = project.clip_ids()
        w.open_clip(ids[0])
        settle(app)
        bench_switch(w, app, ids, args.repeats)
        bench_fill(w, app, truth, ids[0], args.repeats, composites)
        w.close_session()
        viewer.close()


if __name__ == "__main__":
    main()
