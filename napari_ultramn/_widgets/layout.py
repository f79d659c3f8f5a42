"""One way to lay widgets side by side in every dock widget."""

from __future__ import annotations

from qtpy.QtWidgets import QHBoxLayout, QWidget


def row(*widgets: QWidget) -> QWidget:
    """``widgets`` left to right in a margin-less box, to put in a form or a column."""
    box = QWidget()
    lay = QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        lay.addWidget(widget)
    return box
