"""Figures of issue 11's active time: what watching the rater's actions and the new queue texts cost.

Prints medians (and ratios against a baseline measured in the same run); never asserts.

    nice xvfb-run -a python3 benchmarks/bench_active_time.py     # needs a display (or offscreen Qt)

Event filter: 20,000 mouse moves (the most frequent event, never an action) and 2,000 key presses
sent to a widget inside an annotator-like window, with and without the application-wide
:class:`ActivityFilter`; the ratio is what every event pays for the watching.
Queue: ``ClipQueue.refresh`` + ``progress_text`` over 400 clips with one done annotation each
(active time recorded), blind (own files only) vs review (also counts each clip's raters).
Strip: ``AnnotatorController.empty_frames`` on a 300-frame 512x512 annotation, first call and a
slider move after (cached per frame), against ``provenance_codes`` which the strip already needed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from timing import median_time  # benchmarks/timing.py

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def bench_filter() -> None:
    from qtpy.QtCore import QEvent, QPointF, Qt
    from qtpy.QtGui import QKeyEvent, QMouseEvent
    from qtpy.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget

    from napari_ultramn._widgets.annotator_activity import ActivityFilter
    from napari_ultramn.annotation.controller import AnnotatorController

    app = QApplication.instance() or QApplication([])
    window = QWidget()
    target = QLabel("canvas")
    dock = QWidget(window)
    dock.ctl = AnnotatorController()
    QVBoxLayout(window).addWidget(target)
    window.show()

    def send(n_moves=20_000, n_keys=2_000):
        for _ in range(n_moves):
            ev = QMouseEvent(
                QEvent.Type.MouseMove,
                QPointF(5, 5),
                QPointF(5, 5),
                Qt.MouseButton.NoButton,
                Qt.MouseButton.NoButton,
                Qt.KeyboardModifier.NoModifier,
            )
            app.sendEvent(target, ev)
        for _ in range(n_keys):
            app.sendEvent(target, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_K, Qt.KeyboardModifier.NoModifier))

    base = median_time(send, 5)
    watcher = ActivityFilter(dock)
    watched = median_time(send, 5)
    watcher.remove()
    print(
        f"event filter: 22,000 events {base * 1e3:.1f} ms without, {watched * 1e3:.1f} ms with "
        f"({watched / base:.2f}x; {(watched - base) / 22_000 * 1e6:.2f} us per event)"
    )


def bench_queue() -> None:
    from napari_ultramn.annotation import ClipAnnotation
    from napari_ultramn.annotation.queue import ClipQueue
    from napari_ultramn.project import Project

    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(Path(tmp) / "p")
        project.upsert_clips(
            [
                {
                    "clip_id": f"c{i}",
                    "file": f"clips/c{i}.h5",
                    "participant": f"p{i % 40}",
                    "plane": project.planes[0],
                    "n_frames": 100,
                    "frame_shape": [64, 64],
                    "spacing_mm": None,
                    "spacing_source": "none",
                    "source_sha256": f"{i:064x}",
                }
                for i in range(400)
            ]
        )
        for i in range(400):
            ann = ClipAnnotation(f"c{i}", "r1", 100, (64, 64), status="done", active_seconds=60 + i % 90)
            project.annotations.save(ann)
        for review in (False, True):
            q = ClipQueue(project, "r1", blind=not review, review=review)
            t = median_time(lambda q=q: (q.refresh(), q.progress_text()), 7)
            print(
                f"queue of 400 clips, {'review' if review else 'blind'}: refresh + progress text {t * 1e3:.1f} ms "
                f"({q.progress_text()})"
            )


def bench_strip() -> None:
    from napari_ultramn.annotation import ClipAnnotation
    from napari_ultramn.annotation.controller import AnnotatorController

    rng = np.random.default_rng(0)
    ann = ClipAnnotation("c0", "r1", 300, (512, 512))
    for t in range(300):
        mask = np.zeros((512, 512), bool)
        if t % 3:
            mask[200:260, 180 + t % 50 : 250] = rng.random() > 0.01
        ann.set_mask(t, mask, "model")
    ctl = AnnotatorController()
    ctl.session = type("S", (), {"annotation": ann})()
    first = median_time(lambda: (ctl._empty.clear(), ctl.empty_frames()), 5)
    cached = median_time(ctl.empty_frames, 21)
    codes = median_time(ann.provenance_codes, 21)
    print(
        f"frame strip, 300 frames 512x512: empty_frames first {first * 1e3:.2f} ms, per slider move "
        f"{cached * 1e3:.3f} ms (provenance_codes {codes * 1e3:.3f} ms)"
    )


if __name__ == "__main__":
    bench_filter()
    bench_queue()
    bench_strip()
