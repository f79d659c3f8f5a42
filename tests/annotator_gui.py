"""Real input for annotator GUI tests: key presses and mouse clicks/drags on napari's canvas."""

from qtpy.QtCore import QPoint, Qt
from qtpy.QtGui import QKeySequence
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QApplication

_MODS = {"Shift": Qt.KeyboardModifier.ShiftModifier, "Control": Qt.KeyboardModifier.ControlModifier,
         "Alt": Qt.KeyboardModifier.AltModifier}
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
