"""napari's frame number beside the time slider, shown 1-based while the annotator is docked.

napari's slider shows the current index and the last index of an axis ("0 | 11" for a clip of
12 frames) in a line edit and a label of its own; the dock, the messages and the tables count
frames from 1 ("frame 1 / 12"). napari has no API for an offset on that number, so while a clip
is open the two are hidden and a line edit and a label of ours, styled as napari's, take their
place in the slider's row: "1 | 12". Typing N there (Enter) goes to frame N as shown. When the
clip or the dock closes, ours go and napari's come back.

The widgets are napari's private ones (``QtDims.slider_widgets[axis].curslice_label`` and
``.totslice_label``, the same in napari 0.6 and 0.9); a napari that renamed them is left alone,
with one warning in the log. napari rebuilds its sliders when the number of dimensions changes:
the row is taken over again at the next frame shown.
"""

from __future__ import annotations

import logging

from qtpy.QtCore import Qt
from qtpy.QtGui import QIntValidator
from qtpy.QtWidgets import QLabel, QLineEdit, QWidget

log = logging.getLogger(__name__)
_TIME_AXIS = 0


def _alive(widget) -> bool:
    """False once Qt has deleted the object behind ``widget`` (napari rebuilt its sliders)."""
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True


class FrameNumbers:
    """Our 1-based current/total frame in napari's slider row of the time axis."""

    def __init__(self, viewer, host):
        self.viewer = viewer
        self.host = host  # the annotator widget: napari's window is found from it
        self._dims = None  # napari's QtDims (lives as long as the window)
        self.slider = None  # napari's QtDimSliderWidget we took the row of
        self.current: QLineEdit | None = None
        self.total: QLabel | None = None
        self._n = 0
        self._warned = False

    # -- napari's widgets ------------------------------------------------------------------
    def _current_row(self):
        """napari's slider widget of the time axis as it is now (napari rebuilds them), or None.

        Found through Qt's widget tree from the dock: the viewer a plugin gets refuses (and will
        stop serving) napari's private attributes such as ``window._qt_viewer``.
        """
        if self._dims is None or not _alive(self._dims):
            window = self.host.window()
            self._dims = next((w for w in window.findChildren(QWidget) if type(w).__name__ == "QtDims"), None)
        try:
            return self._dims.slider_widgets[_TIME_AXIS]
        except (AttributeError, IndexError, RuntimeError, TypeError):
            return None

    def _napari_row(self):
        """napari's slider widget of the time axis, or None (with one warning) if it changed."""
        slider = self._current_row()
        try:
            parts = (slider.curslice_label, slider.totslice_label, slider.layout(), slider.qt_dims)
            ok = slider.axis == _TIME_AXIS and None not in parts
        except (AttributeError, RuntimeError):
            ok = False
        if ok:
            return slider
        if not self._warned:
            self._warned = True
            log.warning(
                "napari's frame slider (QtDims.slider_widgets[0].curslice_label/totslice_label) was not "
                "found: its own 0-based frame number is left as it is; the annotator counts frames from 1."
            )
        return None

    def _take_over(self, slider) -> None:
        layout = slider.layout()
        self.current = QLineEdit(slider)
        self.current.setObjectName("slice_label")  # napari's style for its own number
        self.current.setValidator(QIntValidator(1, 999999))
        self.current.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.current.setToolTip("frame shown, counted from 1 as in the Annotator; type a number and Enter")
        self.current.editingFinished.connect(self._typed)
        self.total = QLabel(slider)
        self.total.setObjectName("slice_label")
        self.total.setToolTip("frames in the clip")
        layout.insertWidget(layout.indexOf(slider.curslice_label), self.current)
        layout.insertWidget(layout.indexOf(slider.totslice_label), self.total)
        slider.curslice_label.hide()
        slider.totslice_label.hide()
        self.slider = slider

    # -- what the widget calls -------------------------------------------------------------------
    def show(self, t: int, n_frames: int) -> None:
        """Show frame ``t`` (0-based) of ``n_frames`` as ``t + 1`` of ``n_frames``."""
        if self.slider is None or not _alive(self.slider) or self.slider is not self._current_row():
            self.slider = self.current = self.total = None
            slider = self._napari_row()
            if slider is None:
                return
            self._take_over(slider)
        self._n = n_frames
        width = self.current.fontMetrics().horizontalAdvance("0" * len(str(n_frames))) + 12
        if self.current.width() != width:  # as napari sizes its own: room for the last frame's digits
            self.current.setFixedWidth(width)
        if not self.current.hasFocus() and self.current.text() != str(t + 1):  # never under a typist
            self.current.setText(str(t + 1))
        if self.total.text() != str(n_frames):
            self.total.setText(str(n_frames))

    def _typed(self) -> None:
        text = self.current.text()
        shown = int(self.viewer.dims.current_step[_TIME_AXIS]) + 1
        frame = min(max(int(text), 1), self._n) if text.isdigit() else shown
        self.current.setText(str(frame))
        self.current.clearFocus()
        try:  # as napari's own box does: keys go back to the viewer
            self.slider.qt_dims.setFocus()
        except (AttributeError, RuntimeError):
            pass
        self.viewer.dims.set_current_step(_TIME_AXIS, frame - 1)

    def restore(self) -> None:
        """napari's own numbers back, ours removed (clip closed, dock closed)."""
        slider, current, total = self.slider, self.current, self.total
        self.slider = self.current = self.total = None
        if slider is None or not _alive(slider):
            return  # napari rebuilt or removed the row: nothing of ours is left in it
        for ours in (current, total):
            if ours is not None and _alive(ours):
                ours.hide()
                slider.layout().removeWidget(ours)
                ours.deleteLater()
        slider.curslice_label.show()
        slider.totslice_label.show()
