"""Real input for annotator GUI tests: key presses and mouse clicks/drags on napari's canvas."""

from qtpy.QtCore import QPoint, Qt
from qtpy.QtGui import QKeySequence
from qtpy.QtTest import QTest
from qtpy.QtWidgets import (
    QApplication,
    QComboBox,
    QLabel,
    QPushButton,
    QStyle,
    QStyleOptionComboBox,
)

from napari_ultramn._widgets.annotator_sections import ElidedLabel

_MODS = {
    "Shift": Qt.KeyboardModifier.ShiftModifier,
    "Control": Qt.KeyboardModifier.ControlModifier,
    "Alt": Qt.KeyboardModifier.AltModifier,
}
LEFT = Qt.MouseButton.LeftButton


def canvas(viewer):
    return viewer.window._qt_viewer.canvas.native


def settle(n: int = 5) -> None:
    for _ in range(n):
        QApplication.processEvents()


def qt_key(spelling: str):
    """'Control-Shift-Z' -> (Qt.Key.Key_Z, Control|Shift)."""
    *mods, name = spelling.split("-")
    modifier = Qt.KeyboardModifier.NoModifier
    for m in mods:
        modifier |= _MODS[m]
    return QKeySequence(name)[0].key(), modifier


def key(viewer, qtbot, spelling: str) -> None:
    """Press and release ``spelling`` (napari's spelling, e.g. 'Shift-K') on the canvas."""
    k, modifier = qt_key(spelling)
    qtbot.keyClick(canvas(viewer), k, modifier)


def to_canvas(viewer, layer, row: float, col: float) -> QPoint:
    """Canvas pixel of ``layer``'s data point (row, col) in the current 2D view."""
    cam, native = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera, canvas(viewer)
    cy, cx = cam.center[-2:]
    sy, sx = layer.scale[-2:]
    x = (col * sx - cx) * cam.zoom + native.width() / 2
    y = (row * sy - cy) * cam.zoom + native.height() / 2
    return QPoint(int(round(x)), int(round(y)))


def click(viewer, layer, row: float, col: float) -> None:
    """Move to (row, col) as a hand does (a few moves, so napari tracks the cursor), then click."""
    p = to_canvas(viewer, layer, row, col)
    for off in (6, 3, 0):
        QTest.mouseMove(canvas(viewer), p + QPoint(off, off))
        settle(3)
    QTest.mouseClick(canvas(viewer), LEFT, Qt.KeyboardModifier.NoModifier, p)
    settle(3)


def drag(viewer, layer, points) -> None:
    """Press at the first (row, col), move through the others, release at the last."""
    native = canvas(viewer)
    ps = [to_canvas(viewer, layer, r, c) for r, c in points]
    QTest.mouseMove(native, ps[0])
    QTest.mousePress(native, LEFT, Qt.KeyboardModifier.NoModifier, ps[0])
    for p in ps[1:]:
        QTest.mouseMove(native, p)
        settle(1)
    QTest.mouseRelease(native, LEFT, Qt.KeyboardModifier.NoModifier, ps[-1])
    settle(2)


def open_annotator(make_napari_viewer, project, rater: str, clip_id: str, size=(1366, 768)):
    """A shown viewer of ``size`` (a laptop screen) with the Annotator docked on ``clip_id``."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(*size)
    _dock, w = viewer.window.add_plugin_dock_widget("napari-ultramn", "Annotator")
    w.open_project(project.root, rater)
    w.open_clip(clip_id)
    settle(10)
    return viewer, w


def clipped(w) -> list[str]:
    """Texts of visible labels and buttons that do not fit their width (elided ones must say so)."""
    bad = []
    for label in w.findChildren(QLabel):
        if not label.isVisible() or label.wordWrap() or not label.text():
            continue
        if isinstance(label, ElidedLabel):
            full = label.full_text()
            if label.text() != full and (not label.text().endswith("…") or label.toolTip() != full):
                bad.append(f"label {full!r} cut without '…' and tooltip")
            elif label.fontMetrics().horizontalAdvance(label.text()) > label.contentsRect().width():
                bad.append(f"label {label.text()!r} wider than {label.contentsRect().width()} px")
        elif label.sizeHint().width() > label.width():
            bad.append(f"label {label.text()!r} needs {label.sizeHint().width()} px, has {label.width()}")
    for button in w.findChildren(QPushButton):
        if button.isVisible() and button.fontMetrics().horizontalAdvance(button.text()) > button.contentsRect().width():
            bad.append(f"button {button.text()!r} ({button.width()} px)")
    for combo in w.findChildren(QComboBox):
        if not combo.isVisible() or not combo.currentText():
            continue
        opt = QStyleOptionComboBox()
        combo.initStyleOption(opt)
        field = combo.style().subControlRect(
            QStyle.ComplexControl.CC_ComboBox, opt, QStyle.SubControl.SC_ComboBoxEditField, combo
        )
        if combo.fontMetrics().horizontalAdvance(combo.currentText()) > field.width():
            bad.append(f"combo {combo.currentText()!r} ({field.width()} px)")
    header = w.measure_table.horizontalHeader()
    for j in range(w.measure_table.columnCount()):
        text = w.measure_table.horizontalHeaderItem(j).text()
        if header.fontMetrics().horizontalAdvance(text) > header.sectionSize(j):
            bad.append(f"column heading {text!r}")
    return bad
