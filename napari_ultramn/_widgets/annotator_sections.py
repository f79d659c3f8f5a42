"""Pieces that let the annotator fit a 1366x768 laptop: collapsible sections, elided labels, a scroll area.

The dock used to need ~1,136 px of height and squeezed napari's canvas to nothing on a laptop
(vispy then crashed drawing it). Now the controls scroll, sections fold, and a one-line label that
does not fit its width is cut with '…' and shows its whole text as a tooltip, never clipped.
"""

from __future__ import annotations

import contextlib

from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtWidgets import (
    QFrame,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

#: The dock's preferred width: leaves napari's canvas half of a 1366 px window beside its layer list.
DOCK_WIDTH = 320


class ElidedLabel(QLabel):
    """A one-line plain-text label that elides to its width; the full text is its tooltip."""

    def __init__(self, text: str = "", parent=None):
        super().__init__(parent)
        self._full = ""
        self._elided_at = -1  # the width the shown text was elided for
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        text = str(text)
        if text == self._full and self._elided_at == self.contentsRect().width():
            return  # the same line again (every action refreshes every status line): nothing to do
        self._full = text
        self._elide()

    def full_text(self) -> str:
        return self._full

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(self.fontMetrics().horizontalAdvance("…") * 4, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(self.fontMetrics().horizontalAdvance(self._full) + 4, super().sizeHint().height())

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        self._elide()

    def _elide(self) -> None:
        width = self._elided_at = self.contentsRect().width()
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(width, 1))
        super().setText(shown)
        self.setToolTip(self._full if shown != self._full else "")


class Section(QWidget):
    """A titled block whose body folds away under a click on its title."""

    def __init__(self, title: str, body: QWidget, expanded: bool = True):
        super().__init__()
        self.body = body
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setStyleSheet("QToolButton { border: none; font-weight: bold; }")
        self.toggle.toggled.connect(self.set_expanded)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 2, 0, 2)
        lay.setSpacing(2)
        lay.addWidget(self.toggle)
        lay.addWidget(body)
        lay.addWidget(line)
        self.toggle.setChecked(expanded)
        self.set_expanded(expanded)

    def set_expanded(self, expanded: bool) -> None:
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.body.setVisible(expanded)
        if self.toggle.isChecked() != expanded:
            self.toggle.setChecked(expanded)


class _Scroll(QScrollArea):
    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name): ask for a laptop-sized dock
        return QSize(DOCK_WIDTH, 480)


def scrolling(content: QWidget) -> QScrollArea:
    """``content`` in a scroll area that gives it the viewport's width (it is laid out to fit)."""
    area = _Scroll()
    area.setWidgetResizable(True)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)  # never cut anything off
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(content)
    return area


class LayoutBarrier(QWidget):
    """Holds ``child`` at its own width and tells its parent only when the child's height changes.

    Why: in napari every repaint of the main window is composited through OpenGL (its canvas is
    a ``QOpenGLWidget``): one frame costs ~6-10 ms on a software renderer (a laptop or a remote
    desktop without a GPU, Xvfb), whatever changed. A label's new text re-lays out every ancestor
    up to napari's main window, whose relayout repaints the dock separators once more: two
    composited frames for one status line. Here the chain ends unless the lines really need
    another height (the scroll area does the same for the controls above).
    """

    def __init__(self, child: QWidget):
        super().__init__()
        self.child = child
        child.setParent(self)
        self._height = -1

    def event(self, ev) -> bool:
        if ev.type() == QEvent.Type.LayoutRequest:  # the child's layout changed (we have none)
            self.fit()
            return True
        return super().event(ev)

    def _needed(self, width: int) -> int:
        c = self.child
        if c.hasHeightForWidth() and width >= c.minimumSizeHint().width():
            return c.heightForWidth(width)
        return c.sizeHint().height()  # not laid out yet: never the height of one letter per line

    def fit(self) -> None:
        height = self._needed(self.width())
        self.child.setGeometry(0, 0, self.width(), max(height, self.height()))
        if height != self._height:
            self._height = height
            self.updateGeometry()  # only now does napari's window have to make room

    def resizeEvent(self, ev) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(ev)
        self.fit()

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return self.child.hasHeightForWidth()

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return self._needed(width)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(self.child.sizeHint().width(), self._needed(self.width()))

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(self.child.minimumSizeHint().width(), self._needed(self.width()))


class LayoutFinisher:
    """Lay out now what an action changed in ``root``, so the window is composited once with it.

    A text change re-lays out its ancestors one level per pass of the event loop, and the
    repaint already queued runs between two levels: two composited frames per action instead of
    one (see :class:`LayoutBarrier`). Calling this at the end of an action delivers the pending
    layouts of ``root``'s own widgets now (``QLayout.activate``), children before parents, so the
    repaint finds every level done. Only ours, and without touching Qt's event queue: delivering
    the posted layout requests from inside an action (``sendPostedEvents``) made vispy crash in
    its next draw (napari's keys and dims events run our actions from inside its own handlers).
    """

    def __init__(self, root: QWidget):
        self.root = root
        self._hosts: list | None = None
        self._held = 0  # depth of :meth:`batch`: the outermost one lays out, once
        self._wanted = False

    def _collect(self) -> list:
        widgets = [*reversed(self.root.findChildren(QWidget)), self.root]  # children before parents
        hosts = [w for w in widgets if w.layout() is not None or isinstance(w, LayoutBarrier)]
        # (widget, None, or for a barrier the positions of the hosts inside it)
        return [
            (w, [i for i, o in enumerate(hosts[:k]) if w.isAncestorOf(o)] if isinstance(w, LayoutBarrier) else None)
            for k, w in enumerate(hosts)
        ]

    @contextlib.contextmanager
    def batch(self):
        """Within this, calls only note that a layout is wanted; the outermost exit lays out once.

        An action refreshes the clip's texts, the frame's and the message, each of which used to
        lay out the whole dock: the same work up to three times per key press.
        """
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held and self._wanted:
                self()

    def __call__(self) -> None:
        if self._held:
            self._wanted = True
            return
        self._wanted = False
        if self._hosts is None:
            self._hosts = self._collect()
        redone = [False] * len(self._hosts)
        try:
            for i, (w, layout) in enumerate(self._hosts):  # a layout with nothing to redo returns at once
                if isinstance(layout, list):  # a barrier: its height is asked again only if a
                    if not layout or any(redone[j] for j in layout):  # layout inside it was redone
                        w.fit()
                        redone[i] = True
                elif w.isVisible():
                    redone[i] = bool(w.layout().activate())
        except RuntimeError:  # a widget was deleted: collect again next time
            self._hosts = None
