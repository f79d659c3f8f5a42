"""Pieces that let the annotator fit a 1366x768 laptop: collapsible sections, elided labels, a scroll area.

The dock used to need ~1,136 px of height and squeezed napari's canvas to nothing on a laptop
(vispy then crashed drawing it). Now the controls scroll, sections fold, and a one-line label that
does not fit its width is cut with '…' and shows its whole text as a tooltip, never clipped.
"""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt
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
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        self._full = str(text)
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
        width = self.contentsRect().width()
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
