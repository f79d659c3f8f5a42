"""Smart keyframe mode of the annotator (issue 14): clicks in the nerve -> a mask proposal.

``Shift-S`` (or the "Smart keyframe" button) turns the mode on. While it is on, a left click on
the canvas adds a positive point (inside the nerve), a Shift-click a negative one (outside);
each click re-proposes the frame's mask (:func:`napari_ultramn.annotation.smart_keyframe.
propose_mask`, conditioned on the model's nerve probability when the dock names a model run) and
shows it as an outline. Enter accepts it as an 'assisted' keyframe and leaves the mode, so the
brush (napari's own, untouched) refines it at once; a brushed assisted frame stays 'assisted'
with the share the brush changed as its ``edited_fraction`` (:meth:`AnnotationSession.set_mask`).
Escape drops the clicks; so does changing frame or clip, or leaving the mode.

The clicks never reach napari: while the mode is on, an event filter on the canvas takes the
left button's press, moves and release (and Enter/Escape), so the nerve layer's tool, brush and
label stay exactly as the rater left them. Shift is free on a Labels layer in napari (Alt sizes
the brush, Control scrolls frames with the wheel). Enter and Escape are the mode's only while it
is on: outside it they are napari's again (Enter finishes a polygon).
"""

from __future__ import annotations

import warnings
import weakref

import numpy as np
from qtpy.QtCore import QEvent, QObject, Qt

from ..annotation.smart_keyframe import propose_mask

PREVIEW = "smart keyframe proposal"
CLICKS = "smart keyframe clicks"
_MOUSE = (
    QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseButtonDblClick,
    QEvent.Type.MouseMove,
    QEvent.Type.MouseButtonRelease,
)


class SmartKeyframeMixin:
    """The annotator widget's smart-keyframe mode (mixed into ``AnnotatorWidget``)."""

    def init_assist(self) -> None:
        self.assist_positive: list[tuple[int, int]] = []
        self.assist_negative: list[tuple[int, int]] = []
        self.assist_frame: int | None = None
        self.assist_mask: np.ndarray | None = None
        self._assist_filter: _CanvasClicks | None = None
        self.assist_button.toggled.connect(self._on_assist_button)
        self.viewer.dims.events.current_step.connect(self._assist_frame_changed)

    @property
    def assist_active(self) -> bool:
        return self._assist_filter is not None

    def key_smart_keyframe(self) -> None:
        self.assist_button.setChecked(not self.assist_button.isChecked())

    def _on_assist_button(self, on: bool) -> None:
        if on and self.session is None:
            self.error("Open a clip first.")
            self.assist_button.setChecked(False)
            return
        if on and not self.assist_active:
            self._assist_filter = _CanvasClicks(self)
            self.info("Smart keyframe: click inside the nerve (Shift-click outside), Enter accepts, Escape drops.")
        elif not on and self.assist_active:
            self._assist_filter.remove()
            self._assist_filter = None
            self.drop_assist()

    def stop_assist(self) -> None:
        """Leave the mode (closing a clip, accepting)."""
        self.assist_button.setChecked(False)
        self.drop_assist()

    def drop_assist(self) -> None:
        """Forget the clicks and the proposal (Escape)."""
        self.assist_positive, self.assist_negative = [], []
        self.assist_frame, self.assist_mask = None, None
        for name in (PREVIEW, CLICKS):
            lay = _layer(self.viewer, name)
            if lay is not None:
                self.viewer.layers.remove(lay)
        nerve = self.layers.get("nerve")
        if nerve is not None and nerve in self.viewer.layers:
            self.viewer.layers.selection.active = nerve

    def _assist_frame_changed(self, *_args) -> None:
        if self.assist_frame is not None and self.current_frame != self.assist_frame:
            self.drop_assist()  # clicks belong to the frame they were made on

    def assist_click(self, row: float, col: float, positive: bool) -> None:
        """Add a click at data ``(row, col)`` of the current frame and re-propose."""
        s = self.session
        if s is None:
            return
        h, w = s.annotation.frame_shape
        r, c = int(round(row)), int(round(col))
        if not (0 <= r < h and 0 <= c < w):
            self.info("Smart keyframe: that click is outside the frame.")
            return
        t = self.current_frame
        if self.assist_frame != t:
            self.drop_assist()
            self.assist_frame = t
        (self.assist_positive if positive else self.assist_negative).append((r, c))
        if not self.assist_positive:
            self._show_assist()
            self.info("Smart keyframe: now click inside the nerve.")
            return
        self.assist_mask = propose_mask(
            np.asarray(s.clip.frame(t)),
            self.assist_positive,
            self.assist_negative,
            prior=self._assist_prior(t),
            spacing_mm=s.clip.spacing_mm,
        )
        self._show_assist()
        if self.assist_mask.any():
            self.info(f"Smart keyframe on frame {t + 1}: Enter accepts, Escape drops, more clicks correct it.")
        else:
            self.info("Smart keyframe: no nerve outline found at that click; click nearer its centre.")

    def _assist_prior(self, t: int):
        """The model's nerve probability when the dock names a usable run, else None."""
        if not self.preannotate_available():
            return None
        from ..annotation.smart_keyframe import model_prior

        try:
            return model_prior(self.model_edit.text().strip(), self.session.clip, t)
        except Exception as exc:  # noqa: BLE001 (any model problem: propose from the image alone)
            self.error(f"model not used for the smart keyframe: {exc}")
            return None

    def accept_assist(self) -> None:
        """Enter: the proposal becomes an 'assisted' keyframe; the mode ends so the brush refines it."""
        if self.assist_mask is None or not self.assist_mask.any():
            self.info("Smart keyframe: nothing to accept yet; click inside the nerve.")
            return
        t, mask = self.assist_frame, self.assist_mask
        self.stop_assist()
        if self._do(lambda s: self._doubt_set_mask(s, t, mask, "smart keyframe", assisted=True)):
            self.info(f"Frame {t + 1}: assisted keyframe saved; the brush refines it.")

    def _show_assist(self) -> None:
        nerve = self.layers["nerve"]
        t = self.assist_frame
        stack = np.zeros(nerve.data.shape, np.uint8)
        if self.assist_mask is not None:
            stack[t][self.assist_mask] = 1
        points = [(t, r, c) for r, c in self.assist_positive + self.assist_negative]
        colours = ["#3cdc50"] * len(self.assist_positive) + ["#ff4040"] * len(self.assist_negative)
        preview, clicks = _layer(self.viewer, PREVIEW), _layer(self.viewer, CLICKS)
        if preview is not None and clicks is not None:
            preview.data = stack
            clicks.data = np.array(points, float).reshape(-1, 3)
            clicks.face_color = colours or "#3cdc50"
        else:
            from .annotator_layers import _colormap

            preview = self.viewer.add_labels(
                stack, name=PREVIEW, scale=nerve.scale, opacity=0.9, colormap=_colormap({1: "#506eff"})
            )
            preview.contour = 1
            self.viewer.add_points(
                np.array(points, float).reshape(-1, 3),
                name=CLICKS,
                scale=nerve.scale,
                face_color=colours or "#3cdc50",
                size=max(3, min(nerve.data.shape[1:]) // 40),
            )
        self.viewer.layers.selection.active = nerve  # the rater's layer and tool stay selected


def _layer(viewer, name: str):
    return next((lay for lay in viewer.layers if lay.name == name), None)


class _CanvasClicks(QObject):
    """Takes left clicks and Enter/Escape on napari's canvas while the mode is on."""

    def __init__(self, widget):
        super().__init__()
        self._widget = weakref.ref(widget)
        with warnings.catch_warnings():  # napari offers no public handle on its canvas widget
            warnings.simplefilter("ignore", FutureWarning)
            native = widget.viewer.window._qt_viewer.canvas.native
        self._canvas = weakref.ref(native)
        self._pressed = False
        self._canvas().installEventFilter(self)

    def remove(self) -> None:
        canvas = self._canvas()
        try:
            if canvas is not None:
                canvas.removeEventFilter(self)
        except RuntimeError:  # the viewer went first
            pass

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 (Qt's name)
        widget = self._widget()
        if widget is None:
            return False
        kind = ev.type()
        if kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease, QEvent.Type.ShortcutOverride):
            if ev.key() not in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape):
                return False
            ev.accept()
            if kind == QEvent.Type.KeyPress and not ev.isAutoRepeat():
                widget.drop_assist() if ev.key() == Qt.Key.Key_Escape else widget.accept_assist()
            return True
        if kind not in _MOUSE:
            return False
        if kind == QEvent.Type.MouseMove:
            return self._pressed  # a drag of the click never paints
        if ev.button() != Qt.MouseButton.LeftButton:
            return False
        if kind == QEvent.Type.MouseButtonPress:
            self._pressed = True
            row, col = canvas_to_data(widget.viewer, widget.layers["nerve"], obj, ev.position())
            widget.assist_click(row, col, positive=not (ev.modifiers() & Qt.KeyboardModifier.ShiftModifier))
        elif kind == QEvent.Type.MouseButtonRelease:
            self._pressed = False
        return True


def canvas_to_data(viewer, layer, canvas, position) -> tuple[float, float]:
    """``(row, col)`` in ``layer``'s data of a canvas position (logical pixels), 2D view."""
    cam = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari >= 0.9 / older
    world = list(viewer.dims.point)
    world[-2] = (position.y() - canvas.height() / 2) / cam.zoom + cam.center[-2]
    world[-1] = (position.x() - canvas.width() / 2) / cam.zoom + cam.center[-1]
    data = layer.world_to_data(world)
    return float(data[-2]), float(data[-1])
