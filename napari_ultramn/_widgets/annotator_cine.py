"""Cine playback of a clip over a frame range at the clip's own frame rate, looping.

A ``QTimer`` on the GUI thread steps napari's frame slider (not napari's own animation thread),
so playback is stopped at once and for certain: by the play key or button, when the rater
paints or draws on the nerve, and when the clip is closed or another one opened. Frames are
shown 1-based, as the rest of the dock counts them.
"""

from __future__ import annotations

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QComboBox, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from ..annotation.view_settings import (
    SPEEDS,
    cine_default_range,
    cine_fps,
    cine_interval_ms,
    next_cine_frame,
)
from .layout import row


def column(*widgets: QWidget) -> QWidget:
    """``widgets`` top to bottom in a margin-less box (a part of the View section)."""
    box = QWidget()
    v = QVBoxLayout(box)
    v.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        v.addWidget(widget)
    return box


def toggle_button(text: str, tip: str, on_toggled) -> QPushButton:
    button = QPushButton(text)
    button.setCheckable(True)
    button.setToolTip(tip)
    button.toggled.connect(on_toggled)
    return button


class Cine:
    """Builds ``cine_button``, ``cine_start``, ``cine_stop``, ``cine_speed``, ``cine_label`` on the widget."""

    def __init__(self, widget):
        self.w = widget
        self.fps, self.fps_known = cine_fps(None)
        self.timer = QTimer(widget)
        self.timer.timeout.connect(self._tick)
        self._stoppers: list = []  # (emitter, callback) connected while a clip is open
        self._auto = True  # the loop follows the frame (its non-standard range) until a person sets it

    def build(self) -> QWidget:
        w = self.w
        w.cine_button = toggle_button(
            "▶ Play",
            "play the frames below in a loop at the clip's frame rate (Shift-C)",
            lambda on: self.play() if on else self.stop(),
        )
        w.cine_start, w.cine_stop = QSpinBox(), QSpinBox()
        for spin in (w.cine_start, w.cine_stop):
            spin.setRange(1, 1)
            spin.setToolTip(
                "cine loop: frames as numbered on screen, both included (by default the "
                "non-standard range around the frame, else the whole clip)"
            )
            spin.valueChanged.connect(self._chosen)
        w.cine_speed = QComboBox()
        w.cine_speed.addItems([f"{s:g}×" for s in SPEEDS])
        w.cine_speed.setCurrentIndex(SPEEDS.index(1.0))
        w.cine_speed.setToolTip("speed, as a multiple of the clip's frame rate")
        w.cine_speed.currentIndexChanged.connect(self._set_interval)
        w.cine_label = QLabel("")
        w.cine_label.setWordWrap(True)
        # Two rows: the dock is ~300 px wide on a laptop.
        return column(
            row(w.cine_button, w.cine_speed), row(QLabel("Loop"), w.cine_start, QLabel("to"), w.cine_stop), w.cine_label
        )

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def clip_opened(self, session, layers: dict) -> None:
        self.stop()
        w = self.w
        n = session.annotation.n_frames
        for spin in (w.cine_start, w.cine_stop):
            spin.blockSignals(True)
            spin.setRange(1, n)
            spin.blockSignals(False)
        self._auto = True
        self._follow_frame()
        self.fps, self.fps_known = cine_fps(session.clip.frame_time_ms)
        source = "from the clip" if self.fps_known else "assumed: the clip has no frame time"
        w.cine_label.setText(f"Cine at {self.fps:.3g} frames/s ({source}).")
        self._set_interval()
        # A rater who starts to paint or draw wants the frame under the brush to stay put.
        for emitter in (layers["nerve"].events.paint, layers["outline"].events.data):
            emitter.connect(self._stop_by_edit)
            self._stoppers.append((emitter, self._stop_by_edit))

    def clip_closed(self) -> None:
        self.stop()
        for emitter, callback in self._stoppers:
            emitter.disconnect(callback)
        self._stoppers.clear()

    def toggle(self) -> None:
        self.stop() if self.playing else self.play()

    def play(self) -> None:
        w = self.w
        if w.session is None:
            w.error("Open a clip first.")
            self._show(False)
            return
        if self._auto:
            self._follow_frame()
        start, stop = self.frame_range()
        if stop <= start:
            w.error(f"Cine needs two or more frames: frames {start + 1} to {stop + 1} chosen.")
            self._show(False)
            return
        if not start <= w.current_frame <= stop:
            w.go_to_frame(start)
        self._set_interval()
        self.timer.start()
        self._show(True)

    def stop(self) -> None:
        self.timer.stop()
        self._show(False)

    def frame_range(self) -> tuple[int, int]:
        """The loop, 0-based, both ends included (the spin boxes count from 1)."""
        a, b = self.w.cine_start.value() - 1, self.w.cine_stop.value() - 1
        return min(a, b), max(a, b)

    def _follow_frame(self) -> None:
        w, ann = self.w, self.w.session.annotation
        start, stop = cine_default_range(ann.plane_ranges, w.plane_labels[-1], w.current_frame, ann.n_frames)
        for spin, value in ((w.cine_start, start + 1), (w.cine_stop, stop + 1)):
            spin.blockSignals(True)  # not a person's choice
            spin.setValue(value)
            spin.blockSignals(False)

    def _chosen(self, *_args) -> None:
        self._auto = False

    def _tick(self) -> None:
        if self.w.session is None:
            self.stop()
            return
        self.w.go_to_frame(next_cine_frame(self.w.current_frame, *self.frame_range()))

    def _set_interval(self, *_args) -> None:
        self.timer.setInterval(cine_interval_ms(self.fps, SPEEDS[self.w.cine_speed.currentIndex()]))

    def _stop_by_edit(self, *_args) -> None:
        if self.playing:
            self.stop()
            self.w.info("Cine stopped: you are editing this frame.")

    def _show(self, playing: bool) -> None:
        button = self.w.cine_button
        button.blockSignals(True)  # the button shows the state; it must not start or stop it again
        button.setChecked(playing)
        button.setText("⏸ Pause" if playing else "▶ Play")
        button.blockSignals(False)
