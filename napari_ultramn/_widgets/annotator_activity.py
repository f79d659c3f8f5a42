"""Reports the rater's actions in the annotator's window to the controller's activity clock.

The annotation records the active time per clip (``active_seconds``, idle pauses excluded: see
:class:`napari_ultramn.annotation.controller.ActivityClock`) so that real effort can later be
compared with the simulated one and the queue can estimate the time left. An action is a key
press, a mouse press or release (a brush stroke's length counts at its release) or a wheel turn
anywhere in the viewer's window: the canvas, the dock's controls (typing a comment), napari's
layer controls. Mouse moves alone are not actions: a mouse nudged while away is not work.

Qt delivers an event to the widget under the cursor or in focus, never to its parents first, so
one filter on the application sees them all; it keeps only those whose receiver lies in this
viewer's window (another viewer's work is not this clip's) and never consumes an event.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QApplication, QWidget

#: The events that count as the rater doing something.
ACTIVITY_EVENTS = frozenset(
    {
        QEvent.Type.KeyPress,
        QEvent.Type.MouseButtonPress,
        QEvent.Type.MouseButtonRelease,
        QEvent.Type.Wheel,
    }
)


class ActivityFilter(QObject):
    """Calls ``widget.ctl.active()`` on each action in ``widget``'s viewer window.

    A child of ``widget``: Qt drops the application's filter when the widget is deleted.
    """

    def __init__(self, widget: QWidget):
        super().__init__(widget)
        self._widget = widget
        self.enabled = True
        QApplication.instance().installEventFilter(self)

    def _roots(self) -> list[QWidget]:
        """The window the dock is in and the top of its parent chain: napari's main window,
        also when the dock floats as a window of its own (no private napari attribute needed)."""
        top = self._widget
        while top.parentWidget() is not None:
            top = top.parentWidget()
        window = self._widget.window()
        return [window] if window is top else [window, top]

    def is_inside(self, obj) -> bool:
        return isinstance(obj, QWidget) and any(r is obj or r.isAncestorOf(obj) for r in self._roots())

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 (Qt's name)
        if self.enabled and ev.type() in ACTIVITY_EVENTS:
            try:
                if self.is_inside(obj):
                    self._widget.ctl.active()
            except RuntimeError:  # the widget is being deleted: nothing left to credit
                self.enabled = False
        return False  # only watching: every event goes on to its receiver

    def remove(self) -> None:
        """Stop watching (the dock was closed)."""
        self.enabled = False
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
